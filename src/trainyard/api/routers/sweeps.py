"""/v1/sweeps: start a sweep, follow its trials, find its best, cancel it (its template's team's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from trainyard.api.auth import CurrentUser
from trainyard.api.platform import Platform, get_platform
from trainyard.api.schemas import CodeSnapshotRef, EventView
from trainyard.control import sweeps
from trainyard.principal import Principal
from trainyard.store import repo, sweep_repo
from trainyard.store.sweep_tables import Sweep, SweepTrial
from trainyard.store.tables import Job
from trainyard.tuning import SweepSpec, parse_sweep_spec

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])


class SweepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: dict[str, Any] = Field(
        description="A SweepSpec, as in a sweep.yaml, with `job` given as a mapping.")
    code_snapshot: CodeSnapshotRef | None = Field(
        None, description="The trials' code, uploaded with POST /v1/code-archives.")


class TrialView(BaseModel):
    number: int
    job_id: str
    state: str = Field(description="RUNNING while its job is live (job_state says how), then COMPLETE, "
                       "PRUNED, FAILED or CANCELLED.")
    job_state: str
    params: dict[str, Any]
    value: float | None = Field(
        description="The sweep metric: final if COMPLETE, where it stopped if PRUNED.")
    pruned_at: int | None
    resource: int | None = Field(description="How far it got: the highest resource (e.g. epoch) it reported.")
    metrics: dict[str, float | None] = Field(description="The last value of each metric its job logged.")
    reason: str
    created_at: datetime
    finished_at: datetime | None


class SweepSummary(BaseModel):
    id: str
    name: str
    team: str
    state: str
    reason: str
    sampler: str
    early_stopping: str
    metric: str
    goal: str
    max_trials: int
    parallelism: int
    trials: dict[str, int] = Field(description="How many trials are in each state.")
    created_at: datetime
    finished_at: datetime | None


class SweepDetail(SweepSummary):
    spec: dict[str, Any]
    best: TrialView | None


class SweepList(BaseModel):
    items: list[SweepSummary]


class TrialList(BaseModel):
    items: list[TrialView]


def trial_view(s: Session, trial: SweepTrial, job: Job, spec: SweepSpec) -> TrialView:
    points = sweep_repo.trial_points(s, job.id, spec.metric.name, spec.early_stopping.resource)
    return TrialView(number=trial.number, job_id=trial.job_id, state=trial.state, job_state=job.state,
                     params=trial.params, value=trial.value, pruned_at=trial.pruned_at,
                     resource=max((r for r, _ in points), default=None),
                     metrics={k: v["value"] for k, v in repo.last_metrics(s, job.id).items()},
                     reason=trial.reason or job.reason, created_at=trial.created_at,
                     finished_at=trial.finished_at)


def _summary(s: Session, sweep: Sweep) -> dict[str, Any]:
    spec = SweepSpec.model_validate(sweep.spec)
    counts: dict[str, int] = {}
    for t in sweep_repo.trials_of(s, sweep.id):
        counts[t.state] = counts.get(t.state, 0) + 1
    return dict(id=sweep.id, name=sweep.name, team=sweep.team, state=sweep.state, reason=sweep.reason,
                sampler=spec.sampler, early_stopping=spec.early_stopping.type, metric=spec.metric.name,
                goal=spec.metric.goal, max_trials=spec.budget, parallelism=spec.parallelism, trials=counts,
                created_at=sweep.created_at, finished_at=sweep.finished_at)


def best_trial(s: Session, sweep: Sweep) -> TrialView | None:
    spec = SweepSpec.model_validate(sweep.spec)
    done = [t for t in sweep_repo.trials_of(s, sweep.id) if t.state == "COMPLETE" and t.value is not None]
    if not done:
        return None
    pick = min if spec.metric.goal == "minimize" else max
    best = pick(done, key=lambda t: t.value or 0.0)
    return trial_view(s, best, repo.get_job(s, best.job_id), spec)


def sweep_detail(platform: Platform, who: Principal, sweep_id: str) -> SweepDetail:
    with platform.store.session() as s:
        sweep = sweeps.readable(s, who, sweep_id)
        return SweepDetail(**_summary(s, sweep), spec=sweep.spec, best=best_trial(s, sweep))


@router.post("", status_code=201, response_model=SweepDetail)
def create_sweep(body: SweepRequest, who: CurrentUser, platform: Platform = Depends(get_platform)) -> SweepDetail:
    spec = parse_sweep_spec(body.spec)
    code = body.code_snapshot.model_dump() if body.code_snapshot else None
    sweep = sweeps.submit(platform.store, platform.loop, platform.blobs, spec, code, who)
    return sweep_detail(platform, who, sweep.id)


@router.get("", response_model=SweepList)
def list_sweeps(who: CurrentUser, limit: int = Query(100, ge=1, le=1000),
                platform: Platform = Depends(get_platform)) -> SweepList:
    """The newest sweeps of the teams you may read."""
    with platform.store.session() as s:
        return SweepList(items=[SweepSummary(**_summary(s, w)) for w in sweeps.visible(s, who, limit)])


@router.get("/{sweep_id}", response_model=SweepDetail)
def get_sweep(sweep_id: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> SweepDetail:
    return sweep_detail(platform, who, sweep_id)


@router.get("/{sweep_id}/trials", response_model=TrialList)
def sweep_trials(sweep_id: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> TrialList:
    with platform.store.session() as s:
        sweep, trials, trial_jobs = sweeps.trials(s, who, sweep_id)
        spec = SweepSpec.model_validate(sweep.spec)
        return TrialList(items=[trial_view(s, t, trial_jobs[t.job_id], spec) for t in trials])


@router.get("/{sweep_id}/events")
def sweep_events(sweep_id: str, who: CurrentUser,
                 platform: Platform = Depends(get_platform)) -> dict[str, list[EventView]]:
    with platform.store.session() as s:
        return {"items": [EventView(time=e.time, kind=e.kind, reason=e.reason)
                          for e in sweeps.events(s, who, sweep_id)]}


@router.post("/{sweep_id}/cancel", response_model=SweepDetail)
def cancel_sweep(sweep_id: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> SweepDetail:
    sweeps.cancel(platform.store, platform.loop, sweep_id, who)
    return sweep_detail(platform, who, sweep_id)


__all__ = ["router"]
