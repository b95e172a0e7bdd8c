"""Checkpoint retention: the store lets go of a checkpoint first, durably; its files go after.

When a checkpoint is committed, `mark` moves those the policy no longer keeps to DELETING in
the same transaction, so the store stops pointing at them before any file is touched. Once that
transaction has committed, `sweep` deletes their files (the manifest first) and marks them
DELETED. A crash in between leaves DELETING rows, which the control loop's `Sweeper` finishes
on its first pass after the restart: deleting is idempotent.

A checkpoint a model version points to is kept whatever the policy says. Nothing outside the
job's own checkpoint root is ever deleted, not even for a row stored before the server named
every location.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainyard.faults import crash_point
from trainyard.registry.pins import pinned_steps
from trainyard.spec import CheckpointPolicy, CheckpointState, CheckpointSummary
from trainyard.storage import CheckpointRoot
from trainyard.store import Store, repo
from trainyard.store.tables import Checkpoint

if TYPE_CHECKING:
    from trainyard.control.loop import ControlLoop

log = logging.getLogger("trainyard.retention")

DELETING, DELETED = CheckpointState.DELETING, CheckpointState.DELETED


def mark(s: Session, job_id: str, policy: CheckpointPolicy) -> list[Checkpoint]:
    """Move the committed checkpoints outside the policy to DELETING; their files stay for `sweep`."""
    committed = repo.committed_checkpoints(s, job_id)
    keep = policy.retained([CheckpointSummary(step=c.step, metrics=c.metrics) for c in committed])
    keep |= pinned_steps(s, job_id)
    doomed = [c for c in committed if c.step not in keep]
    for c in doomed:
        c.state = DELETING
    return doomed


def sweep(store: Store, root: CheckpointRoot, job_id: str | None = None) -> int:
    """Delete the files of every DELETING checkpoint (of `job_id`, or of all jobs), then mark it
    DELETED. Returns how many were finished; one that fails stays DELETING for the next sweep."""
    query = select(Checkpoint.id, Checkpoint.job_id, Checkpoint.step, Checkpoint.uri).where(
        Checkpoint.state == DELETING)
    if job_id is not None:
        query = query.where(Checkpoint.job_id == job_id)
    with store.session() as s:
        doomed = s.execute(query.order_by(Checkpoint.id)).all()
    finished = 0
    for row in doomed:
        try:
            kept_because = _delete_files(store, root, row.job_id, row.step, row.uri)
            with store.session() as s:
                c = s.get(Checkpoint, row.id)
                if c is not None and c.state == DELETING:
                    c.state = DELETED
                    if kept_because:
                        repo.add_event(s, row.job_id, "checkpoint_files_kept", kept_because)
        except Exception as exc:  # noqa: BLE001 - one checkpoint's trouble must not stop the others
            log.warning("could not finish deleting checkpoint at step %d of job %s (%s): %s; will retry",
                        row.step, row.job_id, row.uri, exc)
            continue
        finished += 1
    return finished


def _delete_files(store: Store, root: CheckpointRoot, job_id: str, step: int, uri: str) -> str | None:
    """Delete one doomed checkpoint's files; or say why they are kept (None when deleted)."""
    if not root.owns(job_id, uri):
        why = (f"checkpoint at step {step} left retention, but its files at {uri!r} are outside the "
               "job's checkpoint root, so they were not deleted")
        log.warning("job %s: %s", job_id, why)
        return why
    with store.session() as s:  # an older duplicate row may name the same directory
        still_named = s.scalar(select(Checkpoint.id).where(
            Checkpoint.job_id == job_id, Checkpoint.uri == uri,
            Checkpoint.state.not_in((DELETING, DELETED))).limit(1))
    if still_named is not None:
        return None
    crash_point("retention.after_mark")  # the store let go durably; no file deleted yet
    root.remove_manifest(uri)
    crash_point("retention.mid_delete")  # the manifest is gone, the other files not yet
    root.remove(uri)
    return None


class Every:
    """A driver's clock: due on the loop's first pass (right after a restart), then once every
    `interval_s` of the passes that follow."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: float | None = None

    def due(self) -> bool:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        return True


class Sweeper:
    """A control-loop driver that finishes deletions a crash or an error left DELETING.

    Sweeps on the loop's first pass (so right after a restart), then every `interval_s`. A
    commit sweeps its own job at once, so between crashes this finds nothing to do.
    """

    def __init__(self, root: CheckpointRoot, interval_s: float = 30.0) -> None:
        self.root = root
        self.every = Every(interval_s)

    def __call__(self, loop: ControlLoop) -> None:
        if not self.every.due():
            return
        if swept := sweep(loop.store, self.root):
            log.info("swept the files of %d checkpoints retention had let go of", swept)
