"""Orphans: files under the server's roots that no row points at, deleted once they are old.

A checkpoint directory with no row is one a rank wrote whose commit never counted: the server
refused it (a stale attempt, a bad manifest), or its rank died mid-write. An upload blob with
no row is one an artifact replaced (its delete failed), or one the server stopped in before
recording. Neither is ever read; `Sweeper` deletes them.

What is never deleted: anything a row names (a checkpoint in any state, a model version's
checkpoint, an artifact); anything of an attempt that may still commit (it owns its job); anything
written within the grace period (an upload or a checkpoint in progress); anything outside the
roots, or that `checkpoint_dir_name` did not name. Deleting is idempotent: a sweep cut off
half-way is finished by the next.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainyard.control.retention import Every
from trainyard.spec import AttemptState, checkpoint_dir_name
from trainyard.storage import CheckpointDir, CheckpointRoot
from trainyard.store import Store, repo
from trainyard.store.registry_tables import ModelVersion
from trainyard.store.tables import Checkpoint, Job
from trainyard.tracking.artifacts import delete_orphan_uploads

if TYPE_CHECKING:
    from trainyard.control.loop import ControlLoop

log = logging.getLogger("trainyard.orphans")


def delete_orphan_checkpoints(store: Store, root: CheckpointRoot, grace_s: float) -> int:
    """Delete the checkpoint directories no row names, of attempts that can no longer commit,
    unwritten for `grace_s`. Returns how many were deleted; one that fails is left for the next call."""
    cutoff = time.time() - grace_s
    deleted = 0
    for job_id in root.job_ids():
        stale = [d for d in root.checkpoint_dirs(job_id) if d.modified < cutoff]
        if not stale:
            continue
        with store.session() as s:  # read after the listing: a row committed since is seen
            orphans = _unnamed(s, root, job_id, stale)
        for d in orphans:
            if not root.owns(job_id, d.uri):
                continue
            try:
                root.remove_manifest(d.uri)  # first: a directory without one is never taken for a checkpoint
                root.remove(d.uri)
            except OSError as exc:
                log.warning("job %s: could not delete the uncommitted checkpoint directory %s: %s; will retry",
                            job_id, d.uri, exc)
                continue
            log.info("job %s: deleted %s, a checkpoint of attempt %d that no row names", job_id, d.uri, d.attempt)
            deleted += 1
    return deleted


def _unnamed(s: Session, root: CheckpointRoot, job_id: str, found: list[CheckpointDir]) -> list[CheckpointDir]:
    """Those of `found` that no row names and that no attempt may still commit."""
    job = s.get(Job, job_id)
    if job is None:  # a root the store knows nothing of is not the server's to judge
        return []
    current = repo.current_attempt(s, job)
    live = current is not None and AttemptState(current.state).owns_job

    def may_commit(attempt: int) -> bool:  # an ended attempt's commits are refused for good
        return attempt > job.attempt or (attempt == job.attempt and live)

    rows = s.execute(select(Checkpoint.attempt, Checkpoint.step).where(Checkpoint.job_id == job_id)).all()
    located = {root.location(job_id, r.attempt, r.step) for r in rows}  # where ranks read them from
    candidates = [d for d in found if not may_commit(d.attempt) and d.uri not in located]
    if not candidates:
        return []
    # Rows stored before the server named every location may name any path, in any job.
    return [d for d in candidates if not any(root.within(uri, d.uri) for uri in _uris_naming(s, d))]


def _uris_naming(s: Session, d: CheckpointDir) -> list[str]:
    """The stored uris that may name `d` (or something in it): those holding its directory's name."""
    name = f"%{checkpoint_dir_name(d.attempt, d.step)}%"
    return [*s.scalars(select(Checkpoint.uri).where(Checkpoint.uri.like(name))),
            *s.scalars(select(ModelVersion.checkpoint_uri).where(ModelVersion.checkpoint_uri.like(name)))]


class Sweeper:
    """A control-loop driver that deletes orphan checkpoint directories and upload blobs.

    Sweeps on the loop's first pass (so right after a restart), then every `interval_s`
    (default: the grace period, at most 5 minutes), in the loop's own roots.
    """

    def __init__(self, grace_s: float, interval_s: float | None = None) -> None:
        self.grace_s = grace_s
        self.every = Every(min(grace_s, 300.0) if interval_s is None else interval_s)

    def __call__(self, loop: ControlLoop) -> None:
        if not self.every.due():
            return
        dirs = delete_orphan_checkpoints(loop.store, loop.checkpoints, self.grace_s)
        blobs = delete_orphan_uploads(loop.store, loop.blobs, self.grace_s)
        if dirs or blobs:
            log.info("deleted %d checkpoint directories and %d upload blobs that no row named", dirs, blobs)
