"""/v1/runs: create and end runs, log params, tags and metrics, search and compare, artifacts.

Every job is a run (same id); any process can also create one. The metric route is the
ingestion hot path: it reads the raw body (JSON or MessagePack) and writes in bulk, with
no per-point pydantic model (see tracking/ingest.py).

A run belongs to a team (a job's run to the job's): the services read the caller's roles
(tracking/runs.py). Lists hold only the caller's teams' runs; another team's run answers
exactly as a missing one; writing takes member.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from trainyard.api import views
from trainyard.api.auth import CurrentUser
from trainyard.api.deps import HistoryQuery, LogQuery
from trainyard.api.platform import Platform, get_platform
from trainyard.api.schemas import MetricBatch
from trainyard.principal import Principal
from trainyard.spec import NAME_PATTERN
from trainyard.store import repo
from trainyard.store.tracking_tables import RunArtifact
from trainyard.tracking import artifacts, ingest, runs, search

router = APIRouter(tags=["runs"])


class CreateRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: str | None = Field(None, pattern=NAME_PATTERN, max_length=64, description=(
        "The team the run belongs to, which you must be a member of; default: your only team, "
        "else 'default'."))
    name: str = Field("run", pattern=NAME_PATTERN, max_length=64)
    project: str = Field("default", pattern=NAME_PATTERN, max_length=64)
    experiment: str | None = Field(None, pattern=NAME_PATTERN, max_length=64)
    params: dict[str, Any] = Field({}, description="Hyperparameters; nested objects become dotted keys.")
    tags: dict[str, str] = {}


class UpdateRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["SUCCEEDED", "FAILED", "CANCELLED"]
    reason: str | None = Field(None, max_length=2000)


class ParamsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any]


class TagsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: dict[str, str]


class RunView(BaseModel):
    id: str
    team: str
    name: str
    project: str
    experiment: str | None
    source: str = Field(description="'job' (the run of job `id`) or 'client'.")
    state: str
    created_at: datetime
    ended_at: datetime | None
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, Any] = Field(description="The latest point of each key: {value, step, timestamp}.")


class RunPage(BaseModel):
    items: list[RunView]
    next_page_token: str | None


class ArtifactView(BaseModel):
    path: str
    uri: str
    bytes: int
    sha256: str
    created_at: datetime


def _artifact_view(row: RunArtifact) -> ArtifactView:
    return ArtifactView(path=row.path, uri=row.uri, bytes=row.bytes, sha256=row.sha256, created_at=row.created_at)


def readable_run(run_id: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> str:
    """A run id the caller may read (a role in its team, or its job's rank): else 404, as if missing."""
    with platform.store.session() as s:
        runs.readable(s, who, run_id)
    return run_id


ReadableRun = Annotated[str, Depends(readable_run)]


def _view(platform: Platform, who: Principal, run_id: str) -> RunView:
    with platform.store.session() as s:
        return RunView(**search.view(s, who, run_id))


@router.post("/v1/runs", status_code=201, response_model=RunView)
def create_run(body: CreateRun, who: CurrentUser, platform: Platform = Depends(get_platform)) -> RunView:
    with platform.store.session() as s:
        run = runs.create_run(s, who, body.name, body.project, body.experiment, body.params, body.tags, body.team)
    return _view(platform, who, run.id)


@router.get("/v1/runs", response_model=RunPage)
def search_runs(
    who: CurrentUser,
    team: str | None = Query(None, max_length=64, description="Only this team's runs (of those you may read)."),
    project: str | None = Query(None, max_length=64),
    experiment: str | None = Query(None, max_length=64),
    filter: str | None = Query(None, description="e.g. val_acc > 0.95 and params.lr < 0.01"),
    order_by: list[str] = Query([], description="e.g. 'metrics.val_acc desc'; repeat for ties"),
    limit: int = Query(100, ge=1, le=search.MAX_LIMIT),
    page_token: str | None = Query(None, max_length=200),
    platform: Platform = Depends(get_platform),
) -> RunPage:
    query = search.RunQuery(team, project, experiment, filter, order_by, limit, page_token)
    with platform.store.session() as s:
        ids, token = search.search_runs(s, who, query)
        return RunPage(items=[RunView(**v) for v in search.run_views(s, ids)], next_page_token=token)


@router.get("/v1/runs/compare")
def compare_runs(
    who: CurrentUser,
    ids: list[str] = Query(..., min_length=1, max_length=search.MAX_LIMIT),
    platform: Platform = Depends(get_platform),
) -> dict:
    with platform.store.session() as s:
        result = search.compare(s, who, ids)
    result["runs"] = [RunView(**r).model_dump(mode="json") for r in result["runs"]]
    return result


@router.get("/v1/experiments")
def list_experiments(who: CurrentUser, project: str | None = Query(None, max_length=64),
                     platform: Platform = Depends(get_platform)) -> dict:
    with platform.store.session() as s:
        return {"items": search.experiments(s, who, project)}


@router.get("/v1/runs/{run_id}", response_model=RunView)
def get_run(run_id: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> RunView:
    return _view(platform, who, run_id)


@router.patch("/v1/runs/{run_id}", response_model=RunView)
def end_run(run_id: str, body: UpdateRun, who: CurrentUser, platform: Platform = Depends(get_platform)) -> RunView:
    with platform.store.session(lock=True) as s:
        runs.end_run(s, who, run_id, body.state, body.reason)
    return _view(platform, who, run_id)


@router.get("/v1/runs/{run_id}/events")
def run_events(run_id: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> dict:
    with platform.store.session() as s:
        rows = runs.events_of(s, who, run_id)
        return {"items": [{"time": e.time, "kind": e.kind, "reason": e.reason} for e in rows]}


@router.post("/v1/runs/{run_id}/params", response_model=RunView)
def log_params(run_id: str, body: ParamsBody, who: CurrentUser,
               platform: Platform = Depends(get_platform)) -> RunView:
    with platform.store.session(lock=True) as s:
        runs.log_params(s, who, run_id, body.params)
    return _view(platform, who, run_id)


@router.post("/v1/runs/{run_id}/tags", response_model=RunView)
def set_tags(run_id: str, body: TagsBody, who: CurrentUser, platform: Platform = Depends(get_platform)) -> RunView:
    with platform.store.session(lock=True) as s:  # tags set at once on one key: the last one wins
        runs.set_tags(s, who, run_id, body.tags)
    return _view(platform, who, run_id)


@router.delete("/v1/runs/{run_id}/tags/{key:path}", response_model=RunView)
def delete_tag(run_id: str, key: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> RunView:
    with platform.store.session() as s:
        runs.delete_tag(s, who, run_id, key)
    return _view(platform, who, run_id)


# -- metrics --------------------------------------------------------------------

_BATCH_BODY = {
    "required": True,
    "content": {
        ingest.JSON: {"schema": MetricBatch.model_json_schema()},
        ingest.MSGPACK: {"schema": {"type": "string", "format": "binary",
                                    "description": "The same document as MessagePack."}},
    },
}


def _ingest(platform: Platform, who: Principal, run_id: str, body: bytes, content_type: str | None) -> int:
    return platform.run_points.write(who, run_id, ingest.columns(ingest.decode(body, content_type)))


@router.post("/v1/runs/{run_id}/metrics", openapi_extra={"requestBody": _BATCH_BODY})
async def log_metrics(run_id: str, request: Request, who: CurrentUser) -> Response:
    """Append points (takes the member role in the run's team); the whole batch is written in one
    transaction or refused with a 422."""
    body, content_type = await request.body(), request.headers.get("content-type")
    try:  # decoding a batch of up to 16 MiB is CPU work: off the event loop, with the write
        n = await run_in_threadpool(_ingest, request.app.state.platform, who, run_id, body, content_type)
    except ingest.UnsupportedEncoding as exc:
        return JSONResponse({"detail": str(exc)}, status_code=415)
    return Response(b'{"accepted":%d}' % n, media_type="application/json")


@router.get("/v1/runs/{run_id}/metrics")
def latest_metrics(run_id: ReadableRun, platform: Platform = Depends(get_platform)) -> dict:
    with platform.store.session() as s:
        return {"items": repo.last_metrics(s, run_id)}


@router.get("/v1/runs/{run_id}/metrics/{key:path}")
def metric_history(run_id: ReadableRun, key: str, query: HistoryQuery = Depends(),
                   platform: Platform = Depends(get_platform)) -> Response:
    return views.metric_history(platform, run_id, key, query.max_points, query.format)


@router.get("/v1/runs/{run_id}/logs")
def run_logs(run_id: str, who: CurrentUser, query: LogQuery = Depends(),
             platform: Platform = Depends(get_platform)) -> dict:
    """stdout and stderr of one rank (a job's run; a client run's output stays with its process)."""
    with platform.store.session() as s:
        runs.job_run(s, who, run_id)
    return views.log_chunk(platform, run_id, query.rank, query.attempt, query.offset)


# -- artifacts --------------------------------------------------------------------


@router.put("/v1/runs/{run_id}/artifacts/{path:path}", status_code=201, response_model=ArtifactView,
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_artifact(run_id: str, path: str, request: Request, who: CurrentUser,
                          platform: Platform = Depends(get_platform)) -> ArtifactView:
    """Stream the body into the blob store under the run (takes the member role in its team, checked
    before the body is read); recorded once all bytes are in place."""
    row = await artifacts.upload(platform.store, platform.blobs, who, run_id, path, request.stream())
    return _artifact_view(row)


@router.get("/v1/runs/{run_id}/artifacts")
def list_artifacts(run_id: str, who: CurrentUser, prefix: str = Query(""),
                   platform: Platform = Depends(get_platform)) -> dict:
    with platform.store.session() as s:
        items = [_artifact_view(a) for a in artifacts.list_artifacts(s, who, run_id, prefix)]
    return {"items": [i.model_dump(mode="json") for i in items]}


@router.get("/v1/runs/{run_id}/artifacts/{path:path}")
def download_artifact(
    run_id: str, path: str, who: CurrentUser, platform: Platform = Depends(get_platform)
) -> StreamingResponse:
    row, chunks = artifacts.open_artifact(platform.store, platform.blobs, who, run_id, path)
    headers = {"content-length": str(row.bytes), "x-checksum-sha256": row.sha256}
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)
