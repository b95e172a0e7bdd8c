"""Calls from worker ranks, with their attempt's own credential, fenced by (job, attempt): a stale
attempt gets 409."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from trainyard.api.deps import rank_credential
from trainyard.api.params import AttemptNumber, CheckpointStep
from trainyard.api.platform import Platform, get_platform
from trainyard.api.schemas import CommitRequest, CorruptReport, EventRequest, HeartbeatRequest, MetricBatch
from trainyard.control import ranks
from trainyard.tracking import ingest

router = APIRouter(prefix="/v1/training-jobs/{job_id}/attempts/{attempt}", tags=["ranks"],
                   dependencies=[Depends(rank_credential)])


@router.post("/heartbeat")
def heartbeat(job_id: str, attempt: AttemptNumber, body: HeartbeatRequest,
              platform: Platform = Depends(get_platform)) -> dict:
    with platform.store.session(lock=True) as s:
        return ranks.heartbeat(s, job_id, attempt, body.rank, body.host, body.pid, body.step)


def _write_metrics(platform: Platform, job_id: str, attempt: int, body: bytes, content_type: str | None) -> int:
    batch = ingest.columns(ingest.decode(body, content_type))
    with platform.store.session(lock=True) as s:
        return ranks.metrics(s, job_id, attempt, *batch)


@router.post("/metrics", openapi_extra={"requestBody": {"required": True, "content": {
    ingest.JSON: {"schema": MetricBatch.model_json_schema()},
    ingest.MSGPACK: {"schema": {"type": "string", "format": "binary"}}}}})
async def metrics(job_id: str, attempt: AttemptNumber, request: Request) -> Response:
    """A rank's metric batch (JSON or MessagePack), bulk-written like POST /v1/runs/{id}/metrics."""
    body, content_type = await request.body(), request.headers.get("content-type")
    try:  # decoding is CPU work: off the event loop, with the write
        n = await run_in_threadpool(_write_metrics, request.app.state.platform, job_id, attempt, body,
                                    content_type)
    except ingest.UnsupportedEncoding as exc:
        return JSONResponse({"detail": str(exc)}, status_code=415)
    return Response(b'{"accepted":%d}' % n, media_type="application/json")


@router.post("/checkpoints", status_code=201)
def commit_checkpoint(job_id: str, attempt: AttemptNumber, body: CommitRequest,
                      platform: Platform = Depends(get_platform)) -> dict:
    uri = ranks.commit_checkpoint(platform.store, platform.checkpoints, job_id, attempt, body.step,
                                  body.bytes, body.manifest, body.metrics, uri=body.uri)
    return {"committed": True, "step": body.step, "uri": uri}


@router.post("/checkpoints/{step}/corrupt")
def report_corrupt(job_id: str, attempt: AttemptNumber, step: CheckpointStep, body: CorruptReport,
                   platform: Platform = Depends(get_platform)) -> dict:
    with platform.store.session(lock=True) as s:
        ranks.report_corrupt(s, job_id, attempt, step, body.reason)
    return {"recorded": True}


@router.post("/events", status_code=201)
def event(job_id: str, attempt: AttemptNumber, body: EventRequest,
          platform: Platform = Depends(get_platform)) -> dict:
    with platform.store.session(lock=True) as s:
        ranks.event(s, job_id, attempt, body.kind, body.reason)
    return {"recorded": True}
