"""Orphans: checkpoint directories and upload blobs no row names are deleted once old; nothing else is."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import torch

from tests.conftest import wait_for
from trainyard.control import orphans, ranks
from trainyard.principal import SYSTEM
from trainyard.runtime.manifest import MANIFEST, write_checkpoint
from trainyard.spec import JobSpec
from trainyard.storage import BlobStore, LocalCheckpointRoot
from trainyard.store import Store, repo
from trainyard.store.repo import StaleAttemptError
from trainyard.store.tables import Attempt, Checkpoint, utcnow
from trainyard.tracking import artifacts
from trainyard.tracking.runs import create_run

GRACE_S = 60.0
LONG_AGO = time.time() - 3600


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(str(tmp_path / "blobs"))


def age(path: Path, when: float = LONG_AGO) -> Path:
    """Make everything at `path` look unwritten since `when` (links themselves, not their targets)."""
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            os.utime(os.path.join(top, name), (when, when), follow_symlinks=False)
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def job_on_attempt(store: Store, attempts: dict[int, str]) -> str:
    """A job whose attempts ended or run as `attempts` says ({number: state}); the last is current."""
    with store.session() as s:
        job = repo.create_job(s, JobSpec(name="orphaned", entrypoint=["python", "train.py"],
                                         checkpoint={"keep_last": 5}), {})
        for number, state in attempts.items():
            s.add(Attempt(job_id=job.id, number=number, state=state, launch={}, started_at=utcnow()))
        job.attempt = max(attempts)
        return job.id


def end_attempt(store: Store, job_id: str, number: int) -> None:
    with store.session() as s:
        repo.attempt_row(s, job_id, number).state = "FAILED"


def write(root: LocalCheckpointRoot, job_id: str, attempt: int, step: int) -> tuple[Path, dict, int]:
    directory = Path(root.location(job_id, attempt, step))
    manifest, nbytes = write_checkpoint(directory, {"w": torch.full((4,), float(step))}, step, attempt, {})
    return directory, manifest, nbytes


def commit(store: Store, root: LocalCheckpointRoot, job_id: str, attempt: int, step: int) -> Path:
    directory, manifest, nbytes = write(root, job_id, attempt, step)
    ranks.commit_checkpoint(store, root, job_id, attempt, step, nbytes, manifest, {})
    return directory


def sweep(store: Store, root: LocalCheckpointRoot) -> int:
    return orphans.delete_orphan_checkpoints(store, root, GRACE_S)


def test_a_checkpoint_whose_commit_was_refused_is_deleted_once_older_than_the_grace_period(store, root):
    job_id = job_on_attempt(store, {1: "FAILED", 2: "RUNNING"})
    refused, manifest, nbytes = write(root, job_id, 1, 40)  # a zombie of attempt 1 wrote it after the restart
    with pytest.raises(StaleAttemptError):
        ranks.commit_checkpoint(store, root, job_id, 1, 40, nbytes, manifest, {})
    died_mid_write, _, _ = write(root, job_id, 1, 50)
    (died_mid_write / MANIFEST).unlink()
    fresh, _, _ = write(root, job_id, 1, 60)  # as old as the grace period allows: not yet
    for d in (refused, died_mid_write):
        age(d)
    assert sweep(store, root) == 2
    assert not refused.exists() and not died_mid_write.exists()
    assert (fresh / MANIFEST).is_file()
    assert sweep(store, root) == 0  # idempotent: nothing left to do, nothing fails


def test_checkpoints_rows_name_stay_however_old_in_every_state(store, root):
    job_id = job_on_attempt(store, {1: "RUNNING"})
    kept = [age(commit(store, root, job_id, 1, step)) for step in (10, 20, 30)]
    with store.session() as s:
        states = {c.step: c for c in repo.all_checkpoints(s, job_id)}
        states[20].state, states[30].state = "CORRUPT", "DELETING"
    end_attempt(store, job_id, 1)
    assert sweep(store, root) == 0
    assert all((d / MANIFEST).is_file() for d in kept)


def test_a_row_stored_before_locations_were_derived_keeps_what_it_names_even_in_another_job(store, root, tmp_path):
    job_id = job_on_attempt(store, {1: "FAILED"})
    other = job_on_attempt(store, {1: "SUCCEEDED"})
    named, _, _ = write(root, job_id, 1, 70)
    inside, _, _ = write(root, job_id, 1, 80)
    read_from, _, _ = write(root, job_id, 1, 85)
    by_a_link, _, _ = write(root, job_id, 1, 86)
    alias = tmp_path / "old-mount"
    alias.symlink_to(root.base, target_is_directory=True)
    with store.session() as s:  # an older server stored whatever uri a rank sent
        s.add(Checkpoint(job_id=job_id, attempt=1, step=85, uri="/old/disk/step-85", bytes=0, manifest={},
                         metrics={}, state="COMMITTED", created_at=utcnow()))  # restore reads (1, 85)'s place
        s.add(Checkpoint(job_id=other, attempt=1, step=86, uri=str(alias / job_id / by_a_link.name), bytes=0,
                         manifest={}, metrics={}, state="COMMITTED", created_at=utcnow()))
        s.add(Checkpoint(job_id=other, attempt=1, step=70, uri=f"file://{named}/", bytes=0, manifest={},
                         metrics={}, state="COMMITTED", created_at=utcnow()))
        s.add(Checkpoint(job_id=other, attempt=1, step=80, uri=str(inside / "state.pt"), bytes=0, manifest={},
                         metrics={}, state="COMMITTED", created_at=utcnow()))
    for d in (named, inside, read_from, by_a_link):
        age(d)
    assert sweep(store, root) == 0
    assert all((d / MANIFEST).is_file() for d in (named, inside, read_from, by_a_link))


def test_the_current_attempts_checkpoint_still_being_written_stays_until_the_attempt_ends(store, root):
    job_id = job_on_attempt(store, {1: "RUNNING"})
    writing, _, _ = write(root, job_id, 1, 90)
    (writing / MANIFEST).unlink()  # its rank is still writing: the manifest comes last
    age(writing)  # a slow disk: nothing written for a while
    assert sweep(store, root) == 0 and writing.is_dir()
    end_attempt(store, job_id, 1)  # its commit would be refused from now on
    assert sweep(store, root) == 1 and not writing.exists()


def test_a_file_being_written_inside_an_old_directory_keeps_it(store, root):
    job_id = job_on_attempt(store, {1: "FAILED"})
    directory, _, _ = write(root, job_id, 1, 95)
    age(directory)
    (directory / "shard-1.bin").write_bytes(b"still coming")  # written just now
    assert sweep(store, root) == 0 and directory.is_dir()


def test_nothing_outside_the_checkpoint_names_of_known_jobs_is_touched(store, root, tmp_path):
    job_id = job_on_attempt(store, {1: "FAILED"})
    job_root = Path(root.job_root(job_id))
    users_own = age(_tree(job_root / "tensorboard"))  # not a name the server gives a checkpoint
    unknown_job = age(_tree(Path(root.job_root("no-such-job")) / "a001-s000000001"))
    outside = _tree(tmp_path / "precious")
    link = job_root / "a001-s000000002"
    link.symlink_to(outside, target_is_directory=True)  # a rank pointed a checkpoint name elsewhere
    age(link)
    age(outside)
    linked_root = Path(root.base) / "linked-job"
    linked_root.symlink_to(outside, target_is_directory=True)
    assert sweep(store, root) == 1  # the link itself, never what it points to
    assert not os.path.lexists(link)
    assert (outside / "a001-s000000001" / "state.pt").is_file()
    assert (users_own / "state.pt").is_file() and (unknown_job / "state.pt").is_file()


def _tree(path: Path) -> Path:
    (path / "a001-s000000001").mkdir(parents=True)
    (path / "a001-s000000001" / "state.pt").write_bytes(b"x")
    (path / "state.pt").write_bytes(b"x")
    return path


# -- upload blobs ---------------------------------------------------------------


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def upload(store: Store, blobs: BlobStore, run_id: str, path: str, data: bytes) -> Path:
    row = anyio.run(artifacts.upload, store, blobs, SYSTEM, run_id, path, _body(data))
    return Path(blobs.path(blobs.key_of(row.uri)))


def test_upload_blobs_no_row_names_go_once_older_than_grace_and_named_or_fresh_ones_stay(store, blobs, monkeypatch):
    with store.session() as s:
        run_id = create_run(s, SYSTEM, "orphans").id
    monkeypatch.setattr(artifacts, "_delete_blob", lambda *_: None)  # the replaced blob's delete fails
    replaced = upload(store, blobs, run_id, "model.pt", b"first")
    named = upload(store, blobs, run_id, "model.pt", b"second")
    died = Path(blobs.path(artifacts.upload_key(run_id)))  # the server stopped before recording it
    died.write_bytes(b"never recorded")
    half = Path(blobs.path(artifacts.upload_key(run_id) + ".tmp-0badf00d"))  # ... or mid-stream
    half.write_bytes(b"half")
    fresh = Path(blobs.path(artifacts.upload_key(run_id)))  # an upload about to be recorded
    fresh.write_bytes(b"in flight")
    elsewhere = Path(blobs.path("datasets/ab/cdef"))  # not an upload: not this sweeper's to judge
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_bytes(b"data")
    for p in (replaced, named, died, half, elsewhere):
        age(p)
    assert artifacts.delete_orphan_uploads(store, blobs, GRACE_S) == 3
    assert not replaced.exists() and not died.exists() and not half.exists()
    assert named.read_bytes() == b"second" and fresh.exists() and elsewhere.exists()
    assert artifacts.delete_orphan_uploads(store, blobs, GRACE_S) == 0


def test_an_old_blob_a_row_names_stays_whichever_run_it_is_of_and_wherever_the_store_was(store, blobs):
    with store.session() as s:
        run_id, other = create_run(s, SYSTEM, "a").id, create_run(s, SYSTEM, "b").id
    copied, moved = artifacts.upload_key(run_id), artifacts.upload_key(run_id)
    Path(blobs.path(copied)).parent.mkdir(parents=True)
    with store.session() as s:
        s.add(artifacts.RunArtifact(run_id=other, path="copy.bin", uri=blobs.uri(copied), bytes=1,
                                    sha256="0" * 64, created_at=utcnow()))
        s.add(artifacts.RunArtifact(run_id=run_id, path="moved.bin", uri=f"s3://old-bucket/trainyard/{moved}",
                                    bytes=1, sha256="0" * 64, created_at=utcnow()))  # before the home moved
    for key in (copied, moved):
        Path(blobs.path(key)).write_bytes(b"x")
        age(Path(blobs.path(key)))
    assert artifacts.delete_orphan_uploads(store, blobs, GRACE_S) == 0
    assert Path(blobs.path(copied)).exists() and Path(blobs.path(moved)).exists()


# -- on a real server ------------------------------------------------------------


def test_a_server_deletes_orphans_after_its_grace_period_and_keeps_what_it_serves(make_server, tmp_path):
    srv = make_server("--orphan-grace-s", "1")
    client = srv.client()
    run = client.create_run("served")["id"]
    client.upload_artifact(run, "notes.txt", b"kept")
    orphan_blob = srv.home / "blobs" / "runs" / run / "uploads" / "0123456789abcdef"
    orphan_blob.write_bytes(b"left by a crash")
    code = tmp_path / "code"
    code.mkdir()
    (code / "main.py").write_text("pass\n")
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"name": "quick", "entrypoint": ["python", "main.py"], "code": str(code),
                                "resources": {"workers": 1, "cpus_per_worker": 0.5, "memory_gb": 0.5}}))
    res = srv.yard("submit", str(spec), "-q")
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.strip()
    wait_for(lambda: client.job(job_id)["state"] == "SUCCEEDED", 60, what="the job to succeed")
    orphan_dir = srv.home / "checkpoints" / job_id / "a001-s000000007"  # its rank died before committing
    orphan_dir.mkdir(parents=True)
    (orphan_dir / "state.pt").write_bytes(b"never committed")
    wait_for(lambda: not orphan_blob.exists() and not orphan_dir.exists(), 30, what="the orphans to go")
    out = tmp_path / "notes.txt"
    client.download_artifact(run, "notes.txt", out)
    assert out.read_bytes() == b"kept"
