"""What ranks tell the platform, each call fenced by (job, attempt) before any write."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainyard.control import retention
from trainyard.faults import crash_point
from trainyard.spec import CHECKPOINT_MANIFEST, CheckpointPolicy, CheckpointState, SpecError
from trainyard.storage import CheckpointRoot
from trainyard.store import Store, repo
from trainyard.store.tables import Checkpoint, utcnow

log = logging.getLogger("trainyard.control")


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


def commit_checkpoint(store: Store, root: CheckpointRoot, job_id: str, attempt: int, step: int,
                      nbytes: int, manifest: dict[str, Any], metrics: dict[str, float],
                      uri: str | None = None) -> str:
    """Record the checkpoint the rank made durable where the server keeps (job, attempt, step);
    returns that location.

    The record and retention's marks commit together; the files of checkpoints retention let go
    of are deleted only after that commit. A retried commit (its answer lost) is recorded once.
    `uri`, sent by ranks of older runtimes, is accepted only when it names that same location.
    """
    location = root.location(job_id, attempt, step)
    _check_request(uri, location, step, attempt, manifest)
    with store.session(durable=True, lock=True) as s:  # on disk before any file retention lets go of is deleted
        job, _ = repo.fenced_attempt(s, job_id, attempt)
        if not (root.owns(job_id, location) and root.has_manifest(location)):
            raise SpecError([{"field": "step", "message": (
                f"no {CHECKPOINT_MANIFEST} at {location}, where step {step} of attempt {attempt} "
                f"is kept: write the checkpoint's files there, its manifest last, then commit")}])
        if _recorded(s, job_id, attempt, step) is None:
            job.step = max(job.step or 0, step)  # progress even before its step's metrics arrive
            s.add(Checkpoint(job_id=job_id, attempt=attempt, step=step, uri=location, bytes=nbytes,
                             manifest=manifest, metrics=metrics, state=CheckpointState.COMMITTED,
                             created_at=utcnow()))
            s.flush()
            retention.mark(s, job_id, CheckpointPolicy.model_validate(job.spec["checkpoint"]))
    crash_point("checkpoint_commit.after_record")  # recorded durably; nothing deleted, no answer sent
    try:
        retention.sweep(store, root, job_id)
    except Exception:  # noqa: BLE001 - the commit stands; the loop's sweeper deletes them later
        log.exception("job %s: deleting checkpoints retention let go of failed; the sweeper retries", job_id)
    return location


def _check_request(uri: str | None, location: str, step: int, attempt: int, manifest: dict[str, Any]) -> None:
    errors = []
    if uri is not None and uri.removeprefix("file://").rstrip("/") != location:
        errors.append({"field": "uri", "message": (
            f"the server names checkpoint locations: step {step} of attempt {attempt} is kept at "
            f"{location}; omit uri")})
    if manifest.get("step", step) != step:
        errors.append({"field": "manifest.step", "message": f"must be the committed step {step}"})
    if manifest.get("attempt", attempt) != attempt:
        errors.append({"field": "manifest.attempt", "message": f"must be the committing attempt {attempt}"})
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        errors.append({"field": "manifest.files", "message": "must list the checkpoint's files"})
        files = []
    for i, entry in enumerate(files):
        name = entry.get("path") if isinstance(entry, dict) else None
        if not _inside_directory(name):
            errors.append({"field": f"manifest.files.{i}.path", "message": (
                f"{name!r} is not a file inside the checkpoint's directory: name files relative to it, "
                "without '..'")})
    if errors:
        raise SpecError(errors)


def _inside_directory(name: object) -> bool:
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name:
        return False
    path = PurePosixPath(name)
    return not path.is_absolute() and bool(path.parts) and ".." not in path.parts


def _recorded(s: Session, job_id: str, attempt: int, step: int) -> Checkpoint | None:
    return s.scalars(select(Checkpoint).where(
        Checkpoint.job_id == job_id, Checkpoint.attempt == attempt, Checkpoint.step == step).limit(1)).first()


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
