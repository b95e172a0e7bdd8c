"""The control loop hands ranks the root its CheckpointRoot names, not one of its own making."""

from __future__ import annotations

import time
from pathlib import Path

from trainyard.backends import LocalBackend
from trainyard.config import ServerConfig
from trainyard.control.loop import ControlLoop
from trainyard.spec import JobSpec, LaunchEnv
from trainyard.storage import BlobStore, LocalCheckpointRoot
from trainyard.store import Store, repo

PRINT_ROOT = f"import os; print('root=' + os.environ['{LaunchEnv.CHECKPOINT_DIR}'])"


def test_ranks_get_their_job_root_from_the_loops_checkpoint_root(tmp_path: Path):
    config = ServerConfig(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'trainyard.db'}")
    config.make_dirs()
    store = Store(config.database_url or "")
    elsewhere = LocalCheckpointRoot(tmp_path / "shared-disk" / "checkpoints")  # not under home
    loop = ControlLoop(store, LocalBackend(cpus=2, gpus=0, memory_gb=4), config,
                       BlobStore(str(tmp_path / "blobs")), elsewhere)
    try:
        with store.session() as s:
            job_id = repo.create_job(s, JobSpec(name="where", entrypoint=["python", "-c", PRINT_ROOT]), {}).id
        loop.reconcile_once()  # launches it
        log = config.logs / job_id / "attempt-1" / "rank-0.log"
        deadline = time.monotonic() + 60
        while "root=" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert f"root={tmp_path / 'shared-disk' / 'checkpoints' / job_id}\n" in log.read_text()
        assert Path(elsewhere.job_root(job_id)).is_dir()  # made before the ranks start writing
        assert not (config.checkpoints / job_id).exists()
    finally:
        for _ in range(50):  # until the rank's exit is seen and the job ends
            loop.reconcile_once()
            with store.session() as s:
                if repo.get_job(s, job_id).state not in repo.ACTIVE_STATES:
                    break
            time.sleep(0.2)
        store.close()
