"""/v1/models: models, versions from runs' checkpoints, aliases with history, evaluation gates.

A model is its team's (registry/models.py says who may do what); "who" in its history is the
caller's token's owner.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from trainyard.api.auth import CurrentUser
from trainyard.api.platform import Platform, get_platform
from trainyard.api.schemas import CodeSnapshotRef
from trainyard.control import models as control_models
from trainyard.principal import Principal
from trainyard.registry import aliases, evaluation, models
from trainyard.registry.spec import parse_model_spec
from trainyard.spec import MAX_VERSION
from trainyard.store.registry_tables import Model, ModelEvent, ModelVersion

router = APIRouter(prefix="/v1/models", tags=["models"])


class DeclareModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: dict[str, Any] = Field(description="A ModelSpec, as in a model.yaml.")
    code_snapshot: CodeSnapshotRef | None = Field(None, description="The evaluation's code archive.")


class RegisterVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str = Field(min_length=1, max_length=80, description="The job whose checkpoint becomes the version.")
    checkpoint: str = Field("best", description="'best' (by the job's keep_best metric), 'latest' or a step.")
    description: str = Field("", max_length=10_000)
    tags: dict[str, str] = {}


class UpdateVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str | None = Field(None, max_length=10_000)
    tags: dict[str, str] = {}
    remove_tags: list[str] = []


class UpdateModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = Field(max_length=10_000)


class MoveAlias(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=MAX_VERSION)
    reason: str = Field(min_length=1, max_length=2000, description="Why, for the alias's history.")


class Rollback(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class VersionView(BaseModel):
    model: str
    version: int
    ref: str
    run_id: str
    checkpoint_step: int
    checkpoint_uri: str
    checkpoint_metrics: dict[str, float]
    description: str
    tags: dict[str, str]
    aliases: list[str]
    evaluation: dict[str, Any] = Field(description="{state: NONE|PENDING|RUNNING|PASSED|FAILED, job_id, "
                                                   "metrics, reason}")
    created_at: datetime
    created_by: str


class ModelView(BaseModel):
    name: str
    team: str
    project: str
    description: str
    evaluation: dict[str, Any] | None
    code: dict[str, Any]
    aliases: dict[str, int]
    latest_version: int | None
    created_at: datetime
    created_by: str


class ModelDetail(ModelView):
    versions: list[VersionView]


class EventItem(BaseModel):
    time: datetime
    kind: str
    version: int | None
    alias: str | None
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str


def version_view(row: ModelVersion, alias_map: dict[str, int]) -> VersionView:
    return VersionView(
        model=row.model, version=row.version, ref=f"{row.model}@v{row.version}", run_id=row.run_id,
        checkpoint_step=row.checkpoint_step, checkpoint_uri=row.checkpoint_uri,
        checkpoint_metrics=row.checkpoint_metrics, description=row.description, tags=row.tags,
        aliases=sorted(a for a, v in alias_map.items() if v == row.version),
        evaluation={"state": row.eval_state, "job_id": row.eval_job_id, "metrics": row.eval_metrics,
                    "reason": row.eval_reason},
        created_at=row.created_at, created_by=row.created_by)


def _model_view(s: Session, m: Model) -> dict[str, Any]:
    versions = models.versions_of(s, m.name)
    return dict(name=m.name, team=m.team, project=m.project, description=m.description, evaluation=m.evaluation,
                code={"digest": m.code_digest, "git_commit": m.code_git_commit, "git_dirty": m.code_git_dirty},
                aliases=models.aliases_of(s, m.name), latest_version=versions[-1].version if versions else None,
                created_at=m.created_at, created_by=m.created_by)


def _event(e: ModelEvent) -> EventItem:
    return EventItem(time=e.time, kind=e.kind, version=e.version, alias=e.alias, from_version=e.from_version,
                     to_version=e.to_version, actor=e.actor, reason=e.reason)


def model_detail(platform: Platform, who: Principal, name: str) -> ModelDetail:
    with platform.store.session() as s:
        m = models.readable(s, who, name)
        alias_map = models.aliases_of(s, name)
        return ModelDetail(**_model_view(s, m),
                           versions=[version_view(v, alias_map) for v in models.versions_of(s, name)])


def _version(platform: Platform, who: Principal, name: str, which: str) -> VersionView:
    with platform.store.session() as s:
        return version_view(models.readable_version(s, who, name, which), models.aliases_of(s, name))


@router.post("", status_code=201, response_model=ModelDetail)
def declare_model(body: DeclareModel, who: CurrentUser, platform: Platform = Depends(get_platform)) -> ModelDetail:
    """Create a model, or change its description and evaluation (applies to later evaluations). A name
    another team holds is refused as taken (409): names are unique on the server."""
    spec = parse_model_spec(body.spec)
    code = body.code_snapshot.model_dump() if body.code_snapshot else None
    control_models.declare(platform.store, platform.blobs, spec, code, who)
    return model_detail(platform, who, spec.name)


@router.get("")
def list_models(who: CurrentUser, project: str | None = Query(None, max_length=64),
                platform: Platform = Depends(get_platform)) -> dict:
    """The models of the teams you may read."""
    with platform.store.session() as s:
        rows = models.list_models(s, who, project)
        items = [ModelView(**_model_view(s, m)).model_dump(mode="json") for m in rows]
    return {"items": items}


@router.get("/{name}", response_model=ModelDetail)
def get_model(name: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> ModelDetail:
    return model_detail(platform, who, name)


@router.patch("/{name}", response_model=ModelDetail)
def update_model(name: str, body: UpdateModel, who: CurrentUser,
                 platform: Platform = Depends(get_platform)) -> ModelDetail:
    with platform.store.session() as s:
        models.describe(s, who, name, body.description)
    return model_detail(platform, who, name)


@router.post("/{name}/versions", status_code=201, response_model=VersionView)
def register_version(name: str, body: RegisterVersion, who: CurrentUser,
                     platform: Platform = Depends(get_platform)) -> VersionView:
    """A new version from a run's checkpoint; its evaluation (if declared) starts on the next pass."""
    with platform.store.session(lock=True) as s:
        row = models.register(s, who, name, body.run_id, body.checkpoint, body.description, body.tags)
        number = row.version
    platform.loop.nudge()
    return _version(platform, who, name, str(number))


@router.get("/{name}/versions/{which}", response_model=VersionView)
def get_version(name: str, which: str, who: CurrentUser, platform: Platform = Depends(get_platform)) -> VersionView:
    """A version by number (3 or v3) or by alias (production)."""
    return _version(platform, who, name, which)


@router.patch("/{name}/versions/{which}", response_model=VersionView)
def update_version(name: str, which: str, body: UpdateVersion, who: CurrentUser,
                   platform: Platform = Depends(get_platform)) -> VersionView:
    with platform.store.session() as s:
        number = models.update_version(s, who, name, which, body.description, body.tags, body.remove_tags).version
    return _version(platform, who, name, str(number))


@router.post("/{name}/versions/{which}/evaluate", response_model=VersionView)
def evaluate_version(name: str, which: str, who: CurrentUser,
                     platform: Platform = Depends(get_platform)) -> VersionView:
    """Run the model's evaluation on this version again (e.g. after the evaluation changed)."""
    with platform.store.session() as s:
        number = evaluation.request(s, who, name, which).version
    platform.loop.nudge()
    return _version(platform, who, name, str(number))


@router.put("/{name}/aliases/{alias}", response_model=VersionView)
def move_alias(name: str, alias: str, body: MoveAlias, who: CurrentUser,
               platform: Platform = Depends(get_platform)) -> VersionView:
    """Point an alias at a version. A gated alias (production) takes only a version that passed its
    evaluation, checked again against the current holder; a refusal is recorded with its reason."""
    aliases.request_move(platform.store, who, name, alias, body.version, body.reason)
    return _version(platform, who, name, alias)


@router.post("/{name}/aliases/{alias}/rollback", response_model=VersionView)
def rollback_alias(name: str, alias: str, body: Rollback, who: CurrentUser,
                   platform: Platform = Depends(get_platform)) -> VersionView:
    """Move the alias back to the version that held it before the current one."""
    with platform.store.session() as s:
        aliases.rollback(s, who, name, alias, body.reason)
    return _version(platform, who, name, alias)


@router.get("/{name}/events")
def model_events(name: str, who: CurrentUser,
                 alias: str | None = Query(None, max_length=64, description="Only this alias's moves."),
                 platform: Platform = Depends(get_platform)) -> dict:
    """Everything that happened to the model, oldest first: registrations, evaluations, alias moves."""
    with platform.store.session() as s:
        return {"items": [_event(e).model_dump(mode="json") for e in models.readable_events(s, who, name, alias)]}
