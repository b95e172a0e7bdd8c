"""/v1/training-jobs: submit, list, inspect, cancel; logs, events, checkpoints, metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from trainyard.api import views
from trainyard.api.auth import CurrentUser
from trainyard.api.deps import HistoryQuery, LogQuery, ReadableJob
from trainyard.api.platform import Platform, get_platform
from trainyard.api.schemas import CheckpointList, EventList, JobDetail, JobList, SubmitRequest
from trainyard.control import jobs
from trainyard.spec import JobState, parse_job_spec
from trainyard.store import access, repo
from trainyard.store.tables import Job

router = APIRouter(prefix="/v1/training-jobs", tags=["training-jobs"])


@router.post("", status_code=201, response_model=JobDetail)
def submit_job(body: SubmitRequest, who: CurrentUser, platform: Platform = Depends(get_platform)) -> JobDetail:
    spec = parse_job_spec(body.spec)
    code = body.code_snapshot.model_dump() if body.code_snapshot else None
    job = jobs.submit(platform.store, platform.loop, platform.blobs, spec, code, who)
    return views.job_detail(platform, job.id)


@router.get("", response_model=JobList)
def list_jobs(
    who: CurrentUser,
    state: list[str] | None = Query(None, max_length=len(JobState)), limit: int = Query(100, ge=1, le=1000),
    platform: Platform = Depends(get_platform),
) -> JobList:
    with platform.store.session() as s:
        rows = repo.list_jobs(s, state, limit, where=access.visible(who, Job.team, Job.id))
        return JobList(items=[views.job_summary(j) for j in rows])


@router.get("/{job_id}", response_model=JobDetail)
def get_job(job_id: ReadableJob, platform: Platform = Depends(get_platform)) -> JobDetail:
    return views.job_detail(platform, job_id)


@router.post("/{job_id}/cancel", response_model=JobDetail)
def cancel_job(job_id: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> JobDetail:
    jobs.cancel(platform.store, platform.loop, job_id, who)
    return views.job_detail(platform, job_id)


@router.get("/{job_id}/events", response_model=EventList)
def job_events(job_id: ReadableJob, platform: Platform = Depends(get_platform)) -> EventList:
    with platform.store.session() as s:
        return EventList(items=[views.event_view(e) for e in repo.events_of(s, job_id)])


@router.get("/{job_id}/checkpoints", response_model=CheckpointList)
def job_checkpoints(
    job_id: ReadableJob, all: bool = Query(False, description="Include deleted and corrupt ones."),
    platform: Platform = Depends(get_platform),
) -> CheckpointList:
    with platform.store.session() as s:
        rows = repo.all_checkpoints(s, job_id) if all else repo.committed_checkpoints(s, job_id)
        return CheckpointList(items=[views.checkpoint_view(c) for c in rows])


@router.get("/{job_id}/metrics/{key:path}")
def metric_history(job_id: ReadableJob, key: str, query: HistoryQuery = Depends(),
                   platform: Platform = Depends(get_platform)) -> Response:
    """A job's metric history: its run's (job id == run id)."""
    return views.metric_history(platform, job_id, key, query.max_points, query.format)


@router.get("/{job_id}/logs")
def job_logs(job_id: ReadableJob, query: LogQuery = Depends(), platform: Platform = Depends(get_platform)) -> dict:
    return views.log_chunk(platform, job_id, query.rank, query.attempt, query.offset)
