"""What one server runs: the store, the backend, the control loop, the blob store."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from trainyard.auth import identity, secrets
from trainyard.backends import Backend, LocalBackend
from trainyard.config import ServerConfig
from trainyard.control import orphans, retention, teams
from trainyard.control.evaluations import EvaluationDriver
from trainyard.control.loop import ControlLoop
from trainyard.control.sweeps import SweepDriver
from trainyard.scheduler.policy import PRESETS
from trainyard.storage import ArchiveChecks, BlobStore, CheckpointRoot, LocalCheckpointRoot
from trainyard.store import Store
from trainyard.tracking.ingest import RunPoints


@dataclass
class Platform:
    config: ServerConfig
    store: Store
    backend: Backend
    loop: ControlLoop
    blobs: BlobStore
    run_points: RunPoints
    archive_checks: ArchiveChecks = field(default_factory=ArchiveChecks)  # code archives, in worker processes

    @classmethod
    def open(cls, config: ServerConfig) -> Platform:
        config.make_dirs()
        secrets.keyring(config)  # the key is made (or checked) now: a bad one stops the start, not a launch
        store = Store(config.database_url or "", busy_timeout_s=config.database_busy_timeout_s)
        with store.session(lock=True) as s:  # the first start makes the admin; the local CLI's token
            identity.local_token(s, config.token_file)
        backend = LocalBackend(cpus=config.cpus, gpus=config.gpus, memory_gb=config.memory_gb)
        if config.teams_file is not None:
            scheduling = teams.load_file(config.teams_file)
            with store.session() as s:
                teams.seed(s, scheduling)
        blobs = BlobStore(config.blob_url or "")
        checkpoints = LocalCheckpointRoot(config.checkpoints)
        loop = ControlLoop(store, backend, config, blobs, checkpoints, policy=PRESETS[config.policy])
        loop.add_driver(SweepDriver())
        loop.add_driver(EvaluationDriver())
        loop.add_driver(retention.Sweeper(checkpoints))
        loop.add_driver(orphans.Sweeper(config.orphan_grace_s))
        return cls(config, store, backend, loop, blobs, RunPoints(store))

    def close(self) -> None:
        """Stop the control loop, if it runs in this process, and release the database; twice is harmless."""
        self.loop.stop()
        self.archive_checks.close()
        self.store.close()

    @property
    def checkpoints(self) -> CheckpointRoot:
        """Where the jobs' checkpoints live: the loop's own root, which it hands ranks at launch."""
        return self.loop.checkpoints


def get_platform(request: Request) -> Platform:
    return request.app.state.platform
