"""Calls from worker ranks, fenced by (job, attempt): a stale attempt gets 409."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from trainyard.api.platform import Platform, get_platform
from trainyard.api.schemas import CommitRequest, CorruptReport, EventRequest, HeartbeatRequest, MetricBatch
from trainyard.control import ranks

router = APIRouter(prefix="/v1/training-jobs/{job_id}/attempts/{attempt}", tags=["ranks"])


@router.post("/heartbeat")
def heartbeat(job_id: str, attempt: int, body: HeartbeatRequest,
              platform: Platform = Depends(get_platform)) -> dict:
    with platform.store.session() as s:
        return ranks.heartbeat(s, job_id, attempt, body.rank, body.host, body.pid, body.step)


@router.post("/metrics")
def metrics(job_id: str, attempt: int, body: MetricBatch,
            platform: Platform = Depends(get_platform)) -> dict:
    with platform.store.session() as s:
        n = ranks.metrics(s, job_id, attempt, [p.model_dump() for p in body.points])
    return {"accepted": n}


@router.post("/checkpoints", status_code=201)
def commit_checkpoint(job_id: str, attempt: int, body: CommitRequest,
                      platform: Platform = Depends(get_platform)) -> dict:
    with platform.store.session() as s:
        ranks.commit_checkpoint(s, job_id, attempt, body.step, body.uri, body.bytes,
                                body.manifest, body.metrics)
    return {"committed": True, "step": body.step}


@router.post("/checkpoints/{step}/corrupt")
def report_corrupt(job_id: str, attempt: int, step: int, body: CorruptReport,
                   platform: Platform = Depends(get_platform)) -> dict:
    with platform.store.session() as s:
        ranks.report_corrupt(s, job_id, attempt, step, body.reason)
    return {"recorded": True}


@router.post("/events", status_code=201)
def event(job_id: str, attempt: int, body: EventRequest,
          platform: Platform = Depends(get_platform)) -> dict:
    with platform.store.session() as s:
        ranks.event(s, job_id, attempt, body.kind, body.reason)
    return {"recorded": True}
