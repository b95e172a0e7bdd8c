"""/v1/audit: the audit log, read-only (rows are added by the api's audit middleware, never changed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from trainyard.api.auth import CurrentUser
from trainyard.api.platform import Platform, get_platform
from trainyard.auth import audit
from trainyard.spec import INT64_MAX

router = APIRouter(tags=["audit"])


class AuditView(BaseModel):
    id: int
    time: datetime
    actor: str = Field(description="Who called: a user's name, `job/attempt-N` for a rank, or `anonymous`.")
    token_id: str | None = Field(description="The id of the token used (never the token).")
    action: str = Field(description="The route's name (submit_job, cancel_job, ...).")
    method: str
    route: str = Field(description="The route's template, e.g. /v1/training-jobs/{job_id}/cancel.")
    object: dict[str, Any] = Field(description="The path parameters, and a created object's id, name or version.")
    team: str | None = Field(description="The object's team, where the call said so.")
    outcome: int = Field(description="The HTTP status answered.")
    reason: str | None = Field(description="Why it was refused (the error's detail, cut short).")
    source: str | None = Field(description="The client's address.")


class AuditPage(BaseModel):
    items: list[AuditView]
    next: int | None = Field(description="Pass as `before` for the next (older) page; null: no more.")


@dataclass
class AuditQuery:
    since: str | None = Query(None, max_length=40, description="A time ago (1d, 12h, 30m) or an ISO 8601 time.")
    actor: str | None = Query(None, max_length=160, description="Only this actor's calls.")
    action: str | None = Query(None, max_length=64, description="Only this action (a route's name).")
    limit: int = Query(100, ge=1, le=audit.MAX_PAGE, description="At most this many rows, newest first.")
    before: int | None = Query(None, ge=1, le=INT64_MAX, description="Only rows older than this id: a page's `next`.")


@router.get("/v1/audit", response_model=AuditPage)
def list_audit(who: CurrentUser, query: AuditQuery = Depends(),
               platform: Platform = Depends(get_platform)) -> AuditPage:
    """Platform admins read every row; a team's admins the rows of their team's objects."""
    with platform.store.session() as s:
        rows, more = audit.page(s, who, query.since, query.actor, query.action, query.limit, query.before)
        return AuditPage(items=[AuditView.model_validate(r, from_attributes=True) for r in rows], next=more)
