"""Checkpoint retention: keep what the policy asks for, delete the rest from disk.

Runs when a checkpoint is committed. A checkpoint leaves the COMMITTED set in
the store before its files are removed, so no restore ever picks a half-deleted one.
A checkpoint a model version points to is kept whatever the policy says.
"""

from __future__ import annotations

import logging

import fsspec
from sqlalchemy.orm import Session

from trainyard.registry.pins import pinned_steps
from trainyard.spec import CheckpointPolicy, CheckpointState, CheckpointSummary
from trainyard.store import repo

log = logging.getLogger("trainyard.retention")


def apply(s: Session, job_id: str, policy: CheckpointPolicy) -> list[str]:
    """Mark checkpoints outside the policy DELETED and remove their files; returns their uris."""
    committed = repo.committed_checkpoints(s, job_id)
    keep = policy.retained([CheckpointSummary(step=c.step, metrics=c.metrics) for c in committed])
    keep |= pinned_steps(s, job_id)
    doomed = [c for c in committed if c.step not in keep]
    for c in doomed:
        c.state = CheckpointState.DELETED
    s.flush()
    for c in doomed:
        remove_files(c.uri)
    return [c.uri for c in doomed]


def remove_files(uri: str) -> None:
    try:
        fs, path = fsspec.core.url_to_fs(uri)
        if fs.exists(path):
            fs.rm(path, recursive=True)
    except OSError as exc:  # leftover files waste space but break nothing: the store says DELETED
        log.warning("could not remove checkpoint files at %s: %s", uri, exc)
