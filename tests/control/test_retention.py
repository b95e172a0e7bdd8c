"""Retention lets go of a checkpoint in the store first; its files go after, and only inside the job's root."""

from __future__ import annotations

from pathlib import Path

import torch
from sqlalchemy import select

from trainyard.control import ranks, retention
from trainyard.runtime.manifest import MANIFEST, write_checkpoint
from trainyard.spec import JobSpec
from trainyard.storage import LocalCheckpointRoot
from trainyard.store import Store, repo
from trainyard.store.tables import Attempt, Checkpoint, utcnow


def running_job(store: Store, keep_last: int = 1) -> str:
    spec = JobSpec(name="kept", entrypoint=["python", "train.py"], checkpoint={"keep_last": keep_last})
    with store.session() as s:
        job = repo.create_job(s, spec, {})
        s.add(Attempt(job_id=job.id, number=1, state="RUNNING", launch={}, started_at=utcnow()))
        job.attempt = 1
        return job.id


def commit(store: Store, root: LocalCheckpointRoot, job_id: str, step: int) -> Path:
    directory = Path(root.location(job_id, 1, step))
    manifest, nbytes = write_checkpoint(directory, {"w": torch.full((4,), float(step))}, step, 1, {})
    ranks.commit_checkpoint(store, root, job_id, 1, step, nbytes, manifest, {})
    return directory


def states(store: Store, job_id: str) -> dict[int, str]:
    with store.session() as s:
        return {c.step: c.state for c in repo.all_checkpoints(s, job_id)}


def store_row(store: Store, job_id: str, step: int, uri: str, state: str) -> None:
    """A row as an older server stored it, before it named every location."""
    with store.session() as s:
        s.add(Checkpoint(job_id=job_id, attempt=1, step=step, uri=uri, bytes=0, manifest={},
                         metrics={}, state=state, created_at=utcnow()))


def test_commit_lets_go_of_old_checkpoints_in_the_store_before_their_files_go(store, root, monkeypatch):
    job_id = running_job(store)
    first = commit(store, root, job_id, 1)
    seen_on_disk = []

    def remove_manifest(uri: str) -> None:  # the moment the first file goes, what does the store say?
        seen_on_disk.append(states(store, job_id))
        LocalCheckpointRoot.remove_manifest(root, uri)

    monkeypatch.setattr(root, "remove_manifest", remove_manifest)
    second = commit(store, root, job_id, 2)
    assert seen_on_disk == [{2: "COMMITTED", 1: "DELETING"}]
    assert states(store, job_id) == {2: "COMMITTED", 1: "DELETED"}
    assert not first.exists() and (second / MANIFEST).is_file()


def test_a_delete_interrupted_after_the_manifest_is_finished_by_the_next_sweep(store, root, monkeypatch):
    job_id = running_job(store)
    first = commit(store, root, job_id, 1)

    def power_cut(uri: str) -> None:
        raise OSError("the disk went away mid-delete")

    monkeypatch.setattr(root, "remove", power_cut)
    commit(store, root, job_id, 2)
    assert states(store, job_id) == {2: "COMMITTED", 1: "DELETING"}
    assert first.exists() and not (first / MANIFEST).exists()  # never again taken for a checkpoint
    monkeypatch.undo()
    assert retention.sweep(store, root) == 1
    assert states(store, job_id) == {2: "COMMITTED", 1: "DELETED"} and not first.exists()


def test_sweep_never_deletes_outside_the_job_root_even_for_rows_stored_before_the_fix(store, root, tmp_path):
    job_id = running_job(store)
    other_job = running_job(store)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep")
    neighbour = commit(store, root, other_job, 1)  # another job's checkpoint, inside *its* root
    for step, uri in enumerate([str(precious), "nosuchscheme://bucket/x", str(neighbour),
                                f"{root.job_root(job_id)}/../{other_job}/{neighbour.name}",
                                root.job_root(job_id), "relative/dir"], start=1):
        store_row(store, job_id, step, uri, "DELETING")
    assert retention.sweep(store, root, job_id) == 6
    assert (precious / "data.txt").read_text() == "keep"
    assert (neighbour / MANIFEST).is_file()
    assert set(states(store, job_id).values()) == {"DELETED"}
    with store.session() as s:
        kept = [e.reason for e in repo.events_of(s, job_id) if e.kind == "checkpoint_files_kept"]
    assert len(kept) == 6 and all("outside the job's checkpoint root" in r for r in kept)


def test_a_stored_uri_that_cannot_be_parsed_does_not_block_later_commits(store, root):
    job_id = running_job(store)
    store_row(store, job_id, 1, "nosuchscheme://bucket/x", "COMMITTED")
    for step in (2, 3):
        commit(store, root, job_id, step)
    assert states(store, job_id) == {3: "COMMITTED", 2: "DELETED", 1: "DELETED"}


def test_sweep_does_not_follow_links_out_of_the_job_root(store, root, tmp_path):
    job_id = running_job(store)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("keep")
    linked = Path(root.job_root(job_id)) / "a001-s000000001"
    linked.parent.mkdir(parents=True)
    linked.symlink_to(outside)  # the checkpoint directory is a link
    inner = commit(store, root, job_id, 2)
    (inner / "escape").symlink_to(outside)  # a link inside a checkpoint directory
    store_row(store, job_id, 1, str(linked), "DELETING")
    commit(store, root, job_id, 3)  # dooms step 2
    assert retention.sweep(store, root) == 0  # nothing left: the commit swept both
    assert (outside / "data.txt").read_text() == "keep"
    assert not linked.exists() and not inner.exists()
    assert states(store, job_id) == {3: "COMMITTED", 2: "DELETED", 1: "DELETED"}


def test_a_checkpoint_whose_directory_a_committed_row_still_names_keeps_its_files(store, root):
    job_id = running_job(store, keep_last=2)
    first = commit(store, root, job_id, 1)
    store_row(store, job_id, 1, str(first), "DELETING")  # a duplicate an older server recorded
    assert retention.sweep(store, root, job_id) == 1
    assert (first / MANIFEST).is_file()
    with store.session() as s:
        assert s.scalars(select(Checkpoint.state).where(Checkpoint.step == 1)).all() == ["COMMITTED", "DELETED"]
