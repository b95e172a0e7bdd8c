"""Runs: the tracking record of a job (same id) or of any process that asked for one.

A job's run is made from the job on first sight (`ensure_job_runs`): its name,
project and experiment, its hyperparameters as params and its labels as tags;
its state is always the job's. A client run (POST /v1/runs, `trainyard.init()`
pointed at a server) has its own state, changed by its owner, with an event each time.

Who writes what (DESIGN.md, fencing): a job's metrics come only from its current attempt,
through the attempt's own route, and its params are its hyperparameters, so the run routes
refuse both for a job's run (409). A finished run's metrics and params are read-only (409).
Tags are people's annotations (MLflow's too): any run takes them, finished or not; nothing
that decides (gates, sweeps, retention) reads them.

Who may (store/access.py): a run belongs to a team, a job's run to its job's. Reading it, or
anything under it, takes a role in that team (or being that job's own rank); writing to it
takes member. A run the caller may not read is reported exactly as a missing one. Ranks
write their job's run only through their attempt's routes, never these.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.orm import Session

from trainyard.principal import Forbidden, Principal, Role
from trainyard.spec import JobState, SpecError, bounded_document
from trainyard.store import access, repo
from trainyard.store.repo import Conflict, NotFound
from trainyard.store.tables import Event, Job, utcnow
from trainyard.store.tracking_tables import Run, RunEvent, RunParam, RunTag

CLIENT_END_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
MAX_KEY = 250
MAX_VALUE = 6000


class RunError(SpecError):
    """A request about a run that cannot be done as asked (a 422 naming `field` and the fix)."""

    def __init__(self, field: str, message: str):
        super().__init__([{"field": field, "message": message}])


def new_run_id(name: str) -> str:
    return f"{name[:40]}-{secrets.token_hex(3)}"


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested hyperparameters as dotted keys: {"opt": {"lr": 0.1}} -> {"opt.lr": 0.1}."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def param_number(value: Any) -> float | None:
    """The number a param reads as, for < and > in search; None for text, bools and NaN."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        try:
            number = float(str(value))
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def _flat_params(params: Mapping[str, Any]) -> dict[str, Any]:
    try:
        bounded_document(params, "params")
    except ValueError as exc:
        raise RunError("params", str(exc)) from None
    flat = flatten(params)
    _check_keys("params", flat)
    return flat


def _check_keys(field: str, items: Mapping[str, Any]) -> None:
    for key, value in items.items():
        if not key or len(key) > MAX_KEY:
            raise RunError(f"{field}.{key}", f"a key is 1 to {MAX_KEY} characters")
        if len(param_text(value)) > MAX_VALUE:
            raise RunError(f"{field}.{key}", f"a value is at most {MAX_VALUE} characters")


def missing_run(run_id: str) -> str:
    """What a caller hears of a run that does not exist, or that it may not read: the same words."""
    return f"no run {run_id!r}; list runs with `yard runs list`, or create one with POST /v1/runs"


RANK_WRITES = ("a rank writes its job's run only through its attempt's routes "
               "(POST /v1/training-jobs/{id}/attempts/{attempt}/metrics), not the run routes")


def _job_of(run: Run) -> str | None:
    """The job whose ranks may read the run: a job's run's own job; none for a client run."""
    return run.id if run.source == "job" else None


def _require_write(who: Principal, team: str, run_id: str, job_id: str | None, action: str) -> None:
    """404 if `who` may not read the run, 403 if it may but is no member of its team (or is a rank)."""
    access.require_read(who, team, missing_run(run_id), job_id)
    if who.is_rank:
        raise Forbidden(RANK_WRITES)
    access.require_role(who, team, missing_run(run_id), Role.MEMBER, action)


def create_run(
    s: Session,
    who: Principal,
    name: str,
    project: str = "default",
    experiment: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    team: str | None = None,
) -> Run:
    """A client run of `team` (default: `who`'s only writable team, else "default"), which `who`
    must be a member of; the project is a label inside the team."""
    team = access.team_for_new(who, team, "runs")
    flat = _flat_params(params or {})
    _check_keys("tags", tags or {})
    run = Run(id=new_run_id(name), team=team, name=name, project=project, experiment=experiment,
              source="client", state=JobState.RUNNING, created_at=utcnow())
    s.add(run)
    s.flush()
    _write_params(s, run.id, flat)
    _set_tags(s, run, tags or {})
    where = f"team {team}, project {project}" + (f", experiment {experiment}" if experiment else "")
    s.add(RunEvent(run_id=run.id, kind="created", reason=f"run created by {who.name} in {where}"))
    return run


def _write_params(s: Session, run_id: str, flat: Mapping[str, Any]) -> None:
    s.add_all(RunParam(run_id=run_id, key=k, value=param_text(v), number=param_number(v))
              for k, v in flat.items())


def _run_from_job(job: Job) -> tuple[Run, dict[str, Any], dict[str, str]]:
    run = Run(id=job.id, team=job.team, name=job.name, project=job.project, experiment=job.experiment,
              source="job", state=None, created_at=job.created_at)
    tags = {"team": job.team, **(job.spec.get("labels") or {})}
    return run, flatten(job.spec.get("hyperparameters") or {}), tags


def ensure_job_runs(s: Session, job_ids: Iterable[str] | None = None) -> int:
    """Make the run of every job (or of `job_ids`) that has none yet; returns how many were made."""
    stmt = select(Job).outerjoin(Run, Run.id == Job.id).where(Run.id.is_(None))
    if job_ids is not None:
        stmt = stmt.where(Job.id.in_(list(job_ids)))
    made = 0
    for job in s.scalars(stmt).all():
        run, params, tags = _run_from_job(job)
        s.add(run)
        s.flush()
        _write_params(s, run.id, {k: v for k, v in params.items() if len(k) <= MAX_KEY})
        s.add_all(RunTag(run_id=run.id, key=k, value=str(v)) for k, v in tags.items())
        made += 1
    return made


def get_run(s: Session, run_id: str, lock: bool = False) -> Run:
    """The run; `lock` holds its row (PostgreSQL) for a check of its state and the write it guards."""
    run = s.get(Run, run_id, with_for_update=lock)
    if run is None and ensure_job_runs(s, [run_id]):
        run = s.get(Run, run_id, with_for_update=lock)
    if run is None:
        raise NotFound(missing_run(run_id))
    return run


def readable(s: Session, who: Principal, run_id: str) -> Run:
    """The run, if `who` may read it (a role in its team, or its job's own rank); else reported missing."""
    run = get_run(s, run_id)
    access.require_read(who, run.team, missing_run(run_id), _job_of(run))
    return run


def writable(s: Session, who: Principal, run_id: str, action: str, lock: bool = False) -> Run:
    """The run, if `who` may write to it (member of its team): 404 if unseen, else 403."""
    run = get_run(s, run_id, lock=lock)
    _require_write(who, run.team, run_id, _job_of(run), action)
    return run


def run_exists(s: Session, run_id: str) -> bool:
    """Cheap check for the metric paths: a run row, or a job whose run is not made yet."""
    return (s.scalar(select(Run.id).where(Run.id == run_id)) is not None
            or s.scalar(select(Job.id).where(Job.id == run_id)) is not None)


_JOB_WRITES = {
    "metrics": "its metrics come only from the job's current attempt, whose ranks send them to "
               "POST /v1/training-jobs/{id}/attempts/{{attempt}}/metrics",
    "params": "its params are the job's hyperparameters, fixed when it was submitted",
}


def check_writable(db: Session | Connection, who: Principal, run_id: str, what: str) -> None:
    """Refuse a write of `what` ("metrics" or "params") by `who` through the run routes: NotFound if
    there is no such run or `who` may not read it, Forbidden if `who` is no member of its team,
    Conflict for a job's run or a finished run. Cheap (one indexed read) for the ingestion path;
    the run's row is held for share (PostgreSQL) so it cannot end meanwhile."""
    row = db.execute(select(Run.source, Run.state, Run.team).where(Run.id == run_id)
                     .with_for_update(read=True)).first()
    job_team = None if row is not None else db.scalar(select(Job.team).where(Job.id == run_id))
    if row is not None:
        source, state, team = row
    elif job_team is not None:  # a job whose run is not made yet
        source, state, team = "job", None, job_team
    else:
        raise NotFound(missing_run(run_id))
    _require_write(who, team, run_id, run_id if source == "job" else None, f"log {what} to it")
    if source == "job":
        raise Conflict(f"run {run_id} is job {run_id}'s run: {_JOB_WRITES[what].format(id=run_id)}; "
                       f"the run routes do not write a job's {what}")
    if state != JobState.RUNNING:
        raise Conflict(f"run {run_id} ended as {state}: a finished run is read-only, so its {what} "
                       "cannot change; log them to a new run")


def run_state(s: Session, run: Run) -> str:
    if run.source == "job":
        return str(s.scalar(select(Job.state).where(Job.id == run.id)))
    return str(run.state)


def end_run(s: Session, who: Principal, run_id: str, state: str, reason: str | None = None) -> None:
    """Close a client run as SUCCEEDED, FAILED or CANCELLED (a job's run follows its job); takes member."""
    run = writable(s, who, run_id, "end it", lock=True)
    if run.source == "job":
        raise Conflict(f"run {run.id} is job {run.id}'s run and follows its state; "
                       f"stop the job with `yard cancel {run.id}`")
    if state not in CLIENT_END_STATES:
        raise RunError("state", f"{state!r} is not an end state; use one of "
                                f"{', '.join(s.value for s in CLIENT_END_STATES)}")
    if run.state == state:
        return
    if run.state != JobState.RUNNING:
        raise Conflict(f"run {run.id} already ended as {run.state}; a finished run is read-only")
    run.state, run.ended_at = state, utcnow()
    s.add(RunEvent(run_id=run.id, kind=state.lower(),
                   reason=reason or f"run ended as {state} by its client ({who.name})"))


def log_params(s: Session, who: Principal, run_id: str, params: Mapping[str, Any]) -> None:
    """Add params. A param is fixed once logged: the same value again is fine, a new one is refused."""
    run = get_run(s, run_id, lock=True)
    check_writable(s, who, run.id, "params")
    flat = _flat_params(params)
    have = {p.key: p for p in s.scalars(select(RunParam).where(RunParam.run_id == run.id,
                                                                RunParam.key.in_(list(flat))))}
    for key, value in flat.items():
        old = have.get(key)
        if old is not None and old.value != param_text(value):
            raise RunError(f"params.{key}", f"already logged as {old.value} for run {run.id}; "
                                            "params are fixed once logged (use a tag or a metric)")
    _write_params(s, run.id, {k: v for k, v in flat.items() if k not in have})


def set_tags(s: Session, who: Principal, run_id: str, tags: Mapping[str, Any]) -> None:
    """Set tags (annotations: any run takes them, finished or not); takes member."""
    _set_tags(s, writable(s, who, run_id, "tag it"), tags)


def _set_tags(s: Session, run: Run, tags: Mapping[str, Any]) -> None:
    _check_keys("tags", tags)
    for key, value in tags.items():
        s.merge(RunTag(run_id=run.id, key=key, value=str(value)))


def delete_tag(s: Session, who: Principal, run_id: str, key: str) -> None:
    run = writable(s, who, run_id, "untag it")
    s.execute(delete(RunTag).where(RunTag.run_id == run.id, RunTag.key == key))


def job_run(s: Session, who: Principal, run_id: str) -> Run:
    """The run of a job, if `who` may read it; RunError for a client's run, which has no job behind
    it (no logs, no ranks)."""
    run = readable(s, who, run_id)
    if run.source != "job":
        raise RunError("run_id", f"run {run_id} was created by a client, not launched as a job; "
                                 "its output is in the process that created it")
    return run


def events_of(s: Session, who: Principal, run_id: str) -> Sequence[Event | RunEvent]:
    """What happened to the run, oldest first: its job's events, or a client run's own."""
    run = readable(s, who, run_id)
    if run.source == "job":
        return repo.events_of(s, run.id)
    return list(s.scalars(select(RunEvent).where(RunEvent.run_id == run.id).order_by(RunEvent.id)))
