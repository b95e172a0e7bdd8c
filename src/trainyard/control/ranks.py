"""What ranks tell the platform, each call fenced by (job, attempt) before any write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from trainyard.control import retention
from trainyard.spec import CheckpointPolicy, CheckpointState
from trainyard.store import repo
from trainyard.store.tables import Checkpoint, utcnow


def heartbeat(s: Session, job_id: str, attempt: int, rank: int, host: str, pid: int,
              step: int | None) -> dict[str, Any]:
    job, att = repo.fenced_attempt(s, job_id, attempt)
    repo.record_heartbeat(s, job, attempt, rank, host, pid, step, utcnow())
    if att.stop_requested or job.cancel_requested:
        return {"stop": True, "reason": att.stop_reason or "the job is being cancelled; checkpoint and exit"}
    return {"stop": False, "reason": None}


def metrics(s: Session, job_id: str, attempt: int, keys: Sequence[str], steps: Sequence[int],
            timestamps: Sequence[float], values: Sequence[float | None]) -> int:
    """Write a rank's batch (parallel columns); `system/` keys, sampled by the runtime, do not
    move the job's progress."""
    job, _ = repo.fenced_attempt(s, job_id, attempt)
    progress = [st for k, st in zip(keys, steps, strict=True) if not k.startswith("system/")]
    if progress:
        job.step = max(job.step or 0, max(progress))
    return repo.insert_metric_columns(s, job_id, keys, steps, timestamps, values)


def commit_checkpoint(s: Session, job_id: str, attempt: int, step: int, uri: str, nbytes: int,
                      manifest: dict[str, Any], metrics: dict[str, float]) -> None:
    """Record a checkpoint whose files and manifest the rank has made durable; apply retention."""
    job, _ = repo.fenced_attempt(s, job_id, attempt)
    job.step = max(job.step or 0, step)  # a checkpoint is progress even before its step's metrics arrive
    s.add(Checkpoint(job_id=job_id, attempt=attempt, step=step, uri=uri, bytes=nbytes,
                     manifest=manifest, metrics=metrics, state=CheckpointState.COMMITTED, created_at=utcnow()))
    s.flush()
    retention.apply(s, job_id, CheckpointPolicy.model_validate(job.spec["checkpoint"]))


def report_corrupt(s: Session, job_id: str, attempt: int, step: int, reason: str) -> None:
    repo.fenced_attempt(s, job_id, attempt)
    for c in repo.committed_checkpoints(s, job_id):
        if c.step == step:
            c.state = CheckpointState.CORRUPT
    repo.add_event(s, job_id, "checkpoint_corrupt",
                   f"checkpoint at step {step} failed verification: {reason}")


def event(s: Session, job_id: str, attempt: int, kind: str, reason: str) -> None:
    repo.fenced_attempt(s, job_id, attempt)
    repo.add_event(s, job_id, kind, reason)
