"""Queries and writes over the sweep tables. Functions take an open Session."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from trainyard.spec import TERMINAL_STATES
from trainyard.store.repo import NotFound, metric_history
from trainyard.store.sweep_tables import Sweep, SweepEvent, SweepTrial
from trainyard.store.tables import Job, utcnow

FINISHED_TRIAL_STATES = ("COMPLETE", "PRUNED", "FAILED", "CANCELLED")
TERMINAL_JOB_STATES = [str(s) for s in TERMINAL_STATES]


def new_sweep_id(name: str) -> str:
    return f"{name[:40]}-{secrets.token_hex(3)}"


def add_sweep_event(s: Session, sweep_id: str, kind: str, reason: str) -> None:
    s.add(SweepEvent(sweep_id=sweep_id, kind=kind, reason=reason, time=utcnow()))


def set_sweep_state(s: Session, sweep: Sweep, state: str, kind: str, reason: str) -> None:
    sweep.state, sweep.reason = state, reason
    if state != "RUNNING":
        sweep.finished_at = utcnow()
    add_sweep_event(s, sweep.id, kind, reason)


def missing_sweep(sweep_id: str) -> str:
    """What a caller hears of a sweep that does not exist, or that it may not see: the same words."""
    return f"no sweep {sweep_id!r}; list sweeps with `yard sweep list`"


def get_sweep(s: Session, sweep_id: str) -> Sweep:
    sweep = s.get(Sweep, sweep_id)
    if sweep is None:
        raise NotFound(missing_sweep(sweep_id))
    return sweep


def list_sweeps(s: Session, limit: int = 100, where: ColumnElement[bool] | None = None) -> Sequence[Sweep]:
    """The newest sweeps first; `where`: only those (the caller's teams', `access.visible`)."""
    stmt = select(Sweep).order_by(Sweep.created_at.desc()).limit(limit)
    if where is not None:
        stmt = stmt.where(where)
    return s.scalars(stmt).all()


def trials_of(s: Session, sweep_id: str) -> Sequence[SweepTrial]:
    return s.scalars(select(SweepTrial).where(SweepTrial.sweep_id == sweep_id)
                     .order_by(SweepTrial.number)).all()


def trial_jobs(s: Session, sweep_id: str) -> dict[str, Job]:
    rows = s.scalars(select(Job).join(SweepTrial, SweepTrial.job_id == Job.id)
                     .where(SweepTrial.sweep_id == sweep_id)).all()
    return {j.id: j for j in rows}


def events_of(s: Session, sweep_id: str) -> Sequence[SweepEvent]:
    return s.scalars(select(SweepEvent).where(SweepEvent.sweep_id == sweep_id).order_by(SweepEvent.id)).all()


def sweeps_to_drive(s: Session) -> list[str]:
    """Running sweeps, and any whose stopped trials still have a job left to cancel."""
    running = s.scalars(select(Sweep.id).where(Sweep.state == "RUNNING").order_by(Sweep.created_at)).all()
    unstopped = s.scalars(
        select(SweepTrial.sweep_id).join(Job, SweepTrial.job_id == Job.id)
        .where(SweepTrial.state.in_(["PRUNED", "CANCELLED"]), Job.state.not_in(TERMINAL_JOB_STATES),
               Job.cancel_requested.is_(False))
        .distinct()).all()
    return list(dict.fromkeys([*running, *unstopped]))


def trial_points(s: Session, job_id: str, metric: str, resource: str) -> list[tuple[int, float]]:
    """The metric's points as (resource, value) in step order.

    A point's resource is the `resource` metric the trial logged at the same
    step (e.g. epoch); where there is none, the point's 1-based position.
    """
    budget = {p["step"]: p["value"] for p in metric_history(s, job_id, resource)}
    points = []
    for i, p in enumerate(metric_history(s, job_id, metric), start=1):
        used = budget.get(p["step"])
        value = float("nan") if p["value"] is None else float(p["value"])  # the store keeps NaN as NULL
        points.append((int(used) if used is not None else i, value))
    return points


def trial_record_fields(trial: SweepTrial) -> dict[str, Any]:
    return {"number": trial.number, "params": trial.params, "state": trial.state, "value": trial.value,
            "system_attrs": trial.system_attrs or {}}
