"""Queries and writes over the tables, shared by the api and the control loop.

Functions take an open Session; the caller owns the transaction.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from trainyard.spec import AttemptState, CheckpointState, JobSpec, JobState, WorkerState
from trainyard.store.base import Base
from trainyard.store.tables import Attempt, Checkpoint, Event, Job, Worker, utcnow
from trainyard.store.tracking_tables import LatestMetric

ACTIVE_STATES = (JobState.STARTING, JobState.RUNNING, JobState.RESTARTING)


class NotFound(LookupError):
    pass


class Conflict(Exception):
    """A write the object's current state refuses (a 409 saying why and what to do instead)."""


class StaleAttemptError(Conflict):
    """A write from an attempt that no longer owns its job (DESIGN.md, fencing)."""


def insert_absent(s: Session, table: type[Base], values: dict[str, Any]) -> bool:
    """INSERT the row unless one with its key exists (made by a concurrent request, say); True if
    inserted. Then `s.get(..., with_for_update=True)` locks the row either way: on PostgreSQL a
    lock on a row that does not exist yet would hold nothing back."""
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    return s.execute(insert(table).values(**values).on_conflict_do_nothing()).rowcount == 1  # type: ignore[attr-defined]


def new_job_id(name: str) -> str:
    return f"{name[:40]}-{secrets.token_hex(3)}"


def add_event(s: Session, job_id: str, kind: str, reason: str) -> None:
    s.add(Event(job_id=job_id, kind=kind, reason=reason, time=utcnow()))


def create_job(s: Session, spec: JobSpec, code: dict[str, Any], priority: int = 0) -> Job:
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
        priority=priority,
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
        raise NotFound(missing_job(job_id))
    return job


def missing_job(job_id: str) -> str:
    """What a caller hears of a job that does not exist, or that it may not see: the same words."""
    return f"no job {job_id!r}; list jobs with `yard jobs`"


def list_jobs(s: Session, states: Sequence[str] | None = None, limit: int = 100,
              where: ColumnElement[bool] | None = None) -> Sequence[Job]:
    stmt = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if where is not None:
        stmt = stmt.where(where)
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


def attempt_row(s: Session, job_id: str, number: int, lock: bool = False) -> Attempt | None:
    stmt = select(Attempt).where(Attempt.job_id == job_id, Attempt.number == number)
    return s.scalars(stmt.with_for_update() if lock else stmt).first()


def current_attempt(s: Session, job: Job) -> Attempt | None:
    return attempt_row(s, job.id, job.attempt) if job.attempt else None


def fenced_attempt(s: Session, job_id: str, number: int) -> tuple[Job, Attempt]:
    """The attempt if it still owns the job; else StaleAttemptError.

    The check and the caller's write are one transaction holding the job's and the attempt's
    rows (Store.session(lock=True); FOR UPDATE on PostgreSQL), so the attempt cannot be
    replaced between them.
    """
    if not s.info.get("locked"):
        raise RuntimeError("a fenced write needs its check in the same locked transaction: "
                           "open it with Store.session(lock=True)")
    job = get_job(s, job_id, lock=True)
    att = attempt_row(s, job_id, number, lock=True)
    if att is None or job.attempt != number or not AttemptState(att.state).owns_job:
        why = f"attempt {number} of job {job_id} is no longer current"
        why += f" (current attempt {job.attempt}, job {job.state})"
        raise StaleAttemptError(why)
    return job, att


def workers_of(s: Session, job_id: str, attempt: int) -> Sequence[Worker]:
    return s.scalars(
        select(Worker).where(Worker.job_id == job_id, Worker.attempt == attempt).order_by(Worker.rank)
    ).all()


def kill_workers(s: Session, job_id: str, attempt: int) -> None:
    """The attempt's gang is gone: its workers not yet exited or lost were KILLED."""
    for w in workers_of(s, job_id, attempt):
        if WorkerState(w.state).live:
            w.state = WorkerState.KILLED


def record_heartbeat(
    s: Session, job: Job, attempt: int, rank: int, host: str, pid: int, step: int | None, now: datetime
) -> None:
    w = s.scalars(
        select(Worker).where(Worker.job_id == job.id, Worker.attempt == attempt, Worker.rank == rank)
    ).first()
    if w is None:
        w = Worker(job_id=job.id, attempt=attempt, rank=rank, state=WorkerState.RUNNING)
        s.add(w)
    w.host, w.pid, w.last_heartbeat = host, pid, now
    if w.state == WorkerState.STARTING:
        w.state = WorkerState.RUNNING
    if step is not None:
        w.step = step
        job.step = max(job.step or 0, step)


# Metric points are stored columnar (tracking_tables.MetricChunk): a batch becomes one row per
# key with its steps, timestamps and values packed as little-endian arrays, written through the
# driver with no ORM objects. This is the ingestion hot path; `latest_metrics` is upserted once
# per key per batch, only when the batch's newest point is newer than the stored one.
_INSERT_CHUNK = (
    'INSERT INTO metric_chunks (job_id, "key", count, first_step, last_step, steps, timestamps, "values") '
    "VALUES ({m}, {m}, {m}, {m}, {m}, {m}, {m}, {m})"
)
_UPSERT_LATEST = (
    'INSERT INTO latest_metrics (run_id, "key", step, timestamp, value) VALUES ({m}, {m}, {m}, {m}, {m}) '
    'ON CONFLICT (run_id, "key") DO UPDATE SET step = excluded.step, timestamp = excluded.timestamp, '
    "value = excluded.value WHERE excluded.step > latest_metrics.step OR "
    "(excluded.step = latest_metrics.step AND excluded.timestamp >= latest_metrics.timestamp)"
)
_READ_CHUNKS = (
    'SELECT steps, timestamps, "values" FROM metric_chunks WHERE job_id = {m} AND "key" = {m} ORDER BY id'
)


def driver_sql(db: Session | Connection, template: str) -> str:
    """`template` with the DB driver's placeholder (`?` for SQLite, `%s` for psycopg)."""
    dialect = db.get_bind().dialect if isinstance(db, Session) else db.dialect
    return template.format(m="?" if dialect.paramstyle == "qmark" else "%s")


def _conn(db: Session | Connection) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def insert_metric_columns(
    db: Session | Connection, run_id: str, keys: Sequence[str], steps: Sequence[int],
    timestamps: Sequence[float], values: Sequence[float | None],
) -> int:
    """Write one batch of points, given as parallel columns already validated (None is NaN),
    in the caller's transaction (a Session's, or a Core connection's: cheaper on the hot path)."""
    n = len(steps)
    if not n:
        return 0
    st = np.asarray(steps, dtype="<i8")
    ts = np.asarray(timestamps, dtype="<f8")
    vs = np.asarray(values, dtype="<f8")  # None becomes NaN
    distinct = set(keys)
    if len(distinct) == 1:
        groups: list[tuple[str, Any]] = [(keys[0], slice(None))]
    else:
        where: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            where.setdefault(key, []).append(i)
        groups = [(key, np.asarray(ix)) for key, ix in where.items()]
    chunks, latest = [], []
    for key, ix in groups:
        gs, gt, gv = st[ix], ts[ix], vs[ix]
        chunks.append((run_id, key, len(gs), int(gs.min()), int(gs.max()),
                       gs.tobytes(), gt.tobytes(), gv.tobytes()))
        j = int(np.lexsort((gt, gs))[-1])
        value = float(gv[j])
        latest.append((run_id, key, int(gs[j]), float(gt[j]), None if math.isnan(value) else value))
    conn = _conn(db)
    conn.exec_driver_sql(driver_sql(conn, _INSERT_CHUNK), chunks)
    conn.exec_driver_sql(driver_sql(conn, _UPSERT_LATEST), latest)
    return n


def insert_metrics(s: Session, job_id: str, points: list[dict[str, Any]]) -> int:
    return insert_metric_columns(
        s, job_id, [p["key"] for p in points], [p["step"] for p in points],
        [p["timestamp"] for p in points], [p["value"] for p in points],
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


def metric_arrays(
    db: Session | Connection, job_id: str, key: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A key's whole history as (steps, timestamps, values) arrays in step order (ties in the order
    they were logged); NaN stays NaN. A few chunk rows read and concatenated, no row per point."""
    conn = _conn(db)
    rows = conn.exec_driver_sql(driver_sql(conn, _READ_CHUNKS), (job_id, key)).all()
    if not rows:
        return np.empty(0, "<i8"), np.empty(0, "<f8"), np.empty(0, "<f8")
    st = np.concatenate([np.frombuffer(r[0], "<i8") for r in rows])
    ts = np.concatenate([np.frombuffer(r[1], "<f8") for r in rows])
    vs = np.concatenate([np.frombuffer(r[2], "<f8") for r in rows])
    if len(st) > 1 and bool((st[1:] < st[:-1]).any()):  # a restarted attempt logged earlier steps again
        order = np.argsort(st, kind="stable")
        st, ts, vs = st[order], ts[order], vs[order]
    return st, ts, vs


def metric_history(s: Session, job_id: str, key: str) -> list[dict[str, Any]]:
    """History as dicts in step order; NaN values read back as None."""
    st, ts, vs = metric_arrays(s, job_id, key)
    return [{"step": a, "timestamp": b, "value": None if c != c else c}
            for a, b, c in zip(st.tolist(), ts.tolist(), vs.tolist(), strict=True)]


def committed_checkpoints(s: Session, job_id: str) -> Sequence[Checkpoint]:
    return s.scalars(
        select(Checkpoint)
        .where(Checkpoint.job_id == job_id, Checkpoint.state == CheckpointState.COMMITTED)
        .order_by(Checkpoint.step.desc(), Checkpoint.id.desc())
    ).all()


def all_checkpoints(s: Session, job_id: str) -> Sequence[Checkpoint]:
    return s.scalars(
        select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step.desc())
    ).all()


def events_of(s: Session, job_id: str) -> Sequence[Event]:
    return s.scalars(select(Event).where(Event.job_id == job_id).order_by(Event.id)).all()
