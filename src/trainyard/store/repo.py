"""Queries and writes over the tables, shared by the api and the control loop.

Functions take an open Session; the caller owns the transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from trainyard.spec import JobSpec, JobState
from trainyard.store.tables import Attempt, Checkpoint, Event, Job, Metric, Worker, utcnow

ACTIVE_STATES = (JobState.STARTING, JobState.RUNNING, JobState.RESTARTING)


class NotFound(LookupError):
    pass


class StaleAttemptError(Exception):
    """A write from an attempt that no longer owns its job (DESIGN.md, fencing)."""


def new_job_id(name: str) -> str:
    return f"{name[:40]}-{secrets.token_hex(3)}"


def add_event(s: Session, job_id: str, kind: str, reason: str) -> None:
    s.add(Event(job_id=job_id, kind=kind, reason=reason, time=utcnow()))


def create_job(s: Session, spec: JobSpec, code: dict[str, Any]) -> Job:
    job = Job(
        id=new_job_id(spec.name),
        name=spec.name,
        team=spec.team,
        project=spec.project,
        experiment=spec.experiment,
        spec=spec.model_dump(mode="json"),
        code_digest=code.get("digest"),
        code_git_commit=code.get("git_commit"),
        code_git_dirty=code.get("git_dirty"),
        state=JobState.QUEUED,
        reason="waiting for capacity",
        priority=spec.priority,
    )
    s.add(job)
    s.flush()
    res = spec.resources
    add_event(s, job.id, "submitted", f"submitted by team {spec.team}: {res.workers} workers × "
              f"{res.cpus_per_worker:g} CPU, {res.gpus_per_worker} GPU, {res.memory_gb:g} GiB")
    return job


def get_job(s: Session, job_id: str, lock: bool = False) -> Job:
    stmt = select(Job).where(Job.id == job_id)
    if lock:
        stmt = stmt.with_for_update()
    job = s.scalars(stmt).first()
    if job is None:
        raise NotFound(f"no job {job_id!r}; list jobs with `yard jobs`")
    return job


def list_jobs(s: Session, states: Sequence[str] | None = None, limit: int = 100) -> Sequence[Job]:
    stmt = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if states:
        stmt = stmt.where(Job.state.in_(list(states)))
    return s.scalars(stmt).all()


def jobs_in(s: Session, states: Sequence[str]) -> Sequence[Job]:
    return s.scalars(select(Job).where(Job.state.in_(list(states))).order_by(Job.created_at)).all()


def set_state(s: Session, job: Job, state: JobState, kind: str, reason: str) -> None:
    """Every state change is an event with a reason a person can read."""
    job.state = state
    job.reason = reason
    now = utcnow()
    if state in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED):
        job.finished_at = now
    add_event(s, job.id, kind, reason)


def attempt_row(s: Session, job_id: str, number: int) -> Attempt | None:
    return s.scalars(select(Attempt).where(Attempt.job_id == job_id, Attempt.number == number)).first()


def current_attempt(s: Session, job: Job) -> Attempt | None:
    return attempt_row(s, job.id, job.attempt) if job.attempt else None


def fenced_attempt(s: Session, job_id: str, number: int) -> tuple[Job, Attempt]:
    """The attempt if it still owns the job; else StaleAttemptError."""
    job = get_job(s, job_id)
    att = attempt_row(s, job_id, number)
    if att is None or job.attempt != number or att.state != "RUNNING":
        why = f"attempt {number} of job {job_id} is no longer current"
        why += f" (current attempt {job.attempt}, job {job.state})"
        raise StaleAttemptError(why)
    return job, att


def workers_of(s: Session, job_id: str, attempt: int) -> Sequence[Worker]:
    return s.scalars(
        select(Worker).where(Worker.job_id == job_id, Worker.attempt == attempt).order_by(Worker.rank)
    ).all()


def record_heartbeat(
    s: Session, job: Job, attempt: int, rank: int, host: str, pid: int, step: int | None, now: datetime
) -> None:
    w = s.scalars(
        select(Worker).where(Worker.job_id == job.id, Worker.attempt == attempt, Worker.rank == rank)
    ).first()
    if w is None:
        w = Worker(job_id=job.id, attempt=attempt, rank=rank, state="RUNNING")
        s.add(w)
    w.host, w.pid, w.last_heartbeat = host, pid, now
    if w.state == "STARTING":
        w.state = "RUNNING"
    if step is not None:
        w.step = step
        job.step = max(job.step or 0, step)


def insert_metrics(s: Session, job_id: str, points: list[dict[str, Any]]) -> int:
    if not points:
        return 0
    rows = [{"job_id": job_id, "key": p["key"], "step": p["step"], "timestamp": p["timestamp"],
             "value": p["value"]} for p in points]
    s.execute(insert(Metric), rows)
    return len(rows)



def last_metrics(s: Session, job_id: str) -> dict[str, dict[str, Any]]:
    """The last value of each key: the point with the highest step (latest id on ties)."""
    newest = (
        select(Metric.key, func.max(Metric.id).label("id"))
        .where(Metric.job_id == job_id)
        .group_by(Metric.key)
        .subquery()
    )
    rows = s.execute(select(Metric).join(newest, Metric.id == newest.c.id)).scalars().all()
    return {m.key: {"value": m.value, "step": m.step, "timestamp": m.timestamp} for m in rows}


def metric_history(s: Session, job_id: str, key: str) -> list[dict[str, Any]]:
    rows = s.execute(
        select(Metric.step, Metric.timestamp, Metric.value)
        .where(Metric.job_id == job_id, Metric.key == key)
        .order_by(Metric.step, Metric.id)
    ).all()
    return [{"step": r[0], "timestamp": r[1], "value": r[2]} for r in rows]


def committed_checkpoints(s: Session, job_id: str) -> Sequence[Checkpoint]:
    return s.scalars(
        select(Checkpoint)
        .where(Checkpoint.job_id == job_id, Checkpoint.state == "COMMITTED")
        .order_by(Checkpoint.step.desc(), Checkpoint.id.desc())
    ).all()


def all_checkpoints(s: Session, job_id: str) -> Sequence[Checkpoint]:
    return s.scalars(
        select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step.desc())
    ).all()


def events_of(s: Session, job_id: str) -> Sequence[Event]:
    return s.scalars(select(Event).where(Event.job_id == job_id).order_by(Event.id)).all()
