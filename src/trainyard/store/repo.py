"""Queries and writes over the tables, shared by the api and the control loop.

Functions take an open Session; the caller owns the transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainyard.spec import JobSpec, JobState
from trainyard.store.tables import Attempt, Checkpoint, Event, Job, Worker, utcnow
from trainyard.store.tracking_tables import LatestMetric

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


# Metric points go through the driver in bulk (one executemany per batch, no ORM objects):
# this is the ingestion hot path. `latest_metrics` is refreshed once per key per batch.
_UPSERT_POINT = (
    'INSERT INTO metrics (job_id, "key", step, timestamp, value) VALUES ({m}, {m}, {m}, {m}, {m}) '
    'ON CONFLICT (job_id, "key", step, timestamp) DO UPDATE SET value = excluded.value'
)
_REFRESH_LATEST = (
    'INSERT INTO latest_metrics (run_id, "key", step, timestamp, value) '
    'SELECT job_id, "key", step, timestamp, value FROM metrics WHERE job_id = {m} AND "key" = {m} '
    "ORDER BY step DESC, timestamp DESC LIMIT 1 "
    'ON CONFLICT (run_id, "key") DO UPDATE SET step = excluded.step, timestamp = excluded.timestamp, '
    "value = excluded.value"
)
_HISTORY = (
    'SELECT step, timestamp, value FROM metrics WHERE job_id = {m} AND "key" = {m} '
    "ORDER BY step, timestamp"
)


def driver_sql(s: Session, template: str) -> str:
    """`template` with the DB driver's placeholder (`?` for SQLite, `%s` for psycopg)."""
    return template.format(m="?" if s.get_bind().dialect.paramstyle == "qmark" else "%s")


MetricRow = tuple[str, str, int, float, float | None]  # (run_id, key, step, timestamp, value)


def insert_metric_rows(s: Session, rows: Sequence[MetricRow]) -> int:
    """Write points given as (run_id, key, step, timestamp, value) tuples, already validated."""
    if not rows:
        return 0
    conn = s.connection()
    conn.exec_driver_sql(driver_sql(s, _UPSERT_POINT), list(rows))
    series = {(r[0], r[1]) for r in rows}
    conn.exec_driver_sql(driver_sql(s, _REFRESH_LATEST), list(series))
    return len(rows)


def insert_metrics(s: Session, job_id: str, points: list[dict[str, Any]]) -> int:
    return insert_metric_rows(
        s, [(job_id, p["key"], p["step"], p["timestamp"], p["value"]) for p in points]
    )


def last_metrics(s: Session, job_id: str) -> dict[str, dict[str, Any]]:
    """The last value of each key: the point with the highest step (latest timestamp on ties).
    A NaN value reads back as None (JSON has no NaN)."""
    rows = s.execute(
        select(LatestMetric.key, LatestMetric.step, LatestMetric.timestamp, LatestMetric.value)
        .where(LatestMetric.run_id == job_id)
        .order_by(LatestMetric.key)
    ).all()
    return {r[0]: {"value": r[3], "step": r[1], "timestamp": r[2]} for r in rows}


def metric_rows(s: Session, job_id: str, key: str) -> list[tuple[int, float, float | None]]:
    """A key's whole history as (step, timestamp, value) tuples in step order, straight from the
    driver: one range scan of the metrics primary key, no ORM rows."""
    cur = s.connection().connection.cursor()
    try:
        cur.execute(driver_sql(s, _HISTORY), (job_id, key))
        return cur.fetchall()
    finally:
        cur.close()


def metric_history(s: Session, job_id: str, key: str) -> list[dict[str, Any]]:
    """History as dicts; NaN values (stored as NULL) read back as None."""
    return [{"step": r[0], "timestamp": r[1], "value": r[2]} for r in metric_rows(s, job_id, key)]


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
