"""Request and response bodies of the jobs api, as they appear in OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainyard.spec import INT32_MAX, INT64_MAX, MAX_WORKERS


class CodeSnapshotRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    git_commit: str | None = None
    git_dirty: bool | None = None


class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: dict[str, Any] = Field(description="A JobSpec, as in a job.yaml.")
    code_snapshot: CodeSnapshotRef | None = Field(
        None, description="An archive uploaded with POST /v1/code-archives; omit for no code.")


class WorkerView(BaseModel):
    rank: int
    host: str
    pid: int | None
    state: str
    step: int | None
    exit_code: int | None
    last_heartbeat: datetime | None


class CheckpointView(BaseModel):
    step: int
    attempt: int
    uri: str
    bytes: int
    verified: bool
    state: str
    metrics: dict[str, float]
    manifest: dict[str, Any]
    created_at: datetime


class EventView(BaseModel):
    time: datetime
    kind: str
    reason: str


class JobSummary(BaseModel):
    id: str
    name: str
    team: str
    project: str
    experiment: str | None
    state: str
    reason: str
    attempt: int
    restarts: int
    max_restarts: int
    step: int | None
    priority: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobDetail(JobSummary):
    spec: dict[str, Any]
    code: dict[str, Any]
    workers: list[WorkerView]
    checkpoints: list[CheckpointView]
    metrics: dict[str, Any] = Field(description="The last value of each metric key.")


class JobList(BaseModel):
    items: list[JobSummary]


class EventList(BaseModel):
    items: list[EventView]


class CheckpointList(BaseModel):
    items: list[CheckpointView]


class HeartbeatRequest(BaseModel):
    rank: int = Field(ge=0, lt=MAX_WORKERS)
    host: str = Field("", max_length=255)
    pid: int = Field(ge=0, le=INT32_MAX)
    step: int | None = Field(None, ge=-INT64_MAX - 1, le=INT64_MAX)  # as a metric step


class MetricPoint(BaseModel):
    key: str = Field(min_length=1, max_length=250)
    step: int = Field(ge=-INT64_MAX - 1, le=INT64_MAX)
    timestamp: float = Field(description="Seconds since the epoch; a finite number.")
    value: float | None = Field(description="null for NaN.")


class MetricBatch(BaseModel):
    rank: int = Field(0, ge=0, lt=MAX_WORKERS)
    points: list[MetricPoint]


class CommitRequest(BaseModel):
    """A checkpoint the rank made durable where the server keeps it: the job's checkpoint root
    (TRAINYARD_CHECKPOINT_DIR), directory a{attempt:03d}-s{step:09d}, manifest written last."""

    step: int = Field(ge=0, description="The step checkpointed; with the attempt, it names the location.")
    bytes: int = Field(ge=0)
    manifest: dict[str, Any] = Field(description="MANIFEST.json as written: files named relative to the "
                                     "checkpoint's directory, with sizes and sha256.")
    metrics: dict[str, float] = {}
    uri: str | None = Field(None, description="Deprecated; omit. The server names the location; sent by "
                            "older runtimes, it is accepted only when it is that location.")


class CorruptReport(BaseModel):
    reason: str


class EventRequest(BaseModel):
    kind: str = Field(min_length=1, max_length=40)
    reason: str
