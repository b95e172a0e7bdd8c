"""/v1/teams, /v1/priority-classes and /v1/queue: who may use what, and who waits for what.

Anyone signed in reads teams and classes (control/teams.py says why); only a platform admin
changes them. The queue lists the caller's teams' jobs only.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from trainyard.api import views
from trainyard.api.auth import CurrentUser, PlatformAdmin
from trainyard.api.platform import Platform, get_platform
from trainyard.api.schemas import JobList
from trainyard.control import teams
from trainyard.spec import NAME_PATTERN, TeamSpec

router = APIRouter(tags=["scheduling"])


class TeamList(BaseModel):
    items: list[TeamSpec]


class PriorityClassBody(BaseModel):
    value: int = Field(ge=-1000, le=1000, description="Higher runs first and may preempt lower.")


@router.get("/v1/teams", response_model=TeamList)
def list_teams(platform: Platform = Depends(get_platform)) -> TeamList:
    with platform.store.session() as s:
        return TeamList(items=teams.teams(s))


@router.put("/v1/teams/{name}", response_model=TeamSpec)
def put_team(name: str, body: TeamSpec, _: PlatformAdmin, platform: Platform = Depends(get_platform)) -> TeamSpec:
    if body.name != name:
        raise HTTPException(422, {"errors": [{"field": "name", "message":
                                              f"body names team {body.name!r} but the path {name!r}"}]})
    with platform.store.session() as s:
        teams.put_team(s, body)
    platform.loop.nudge()
    return body


@router.delete("/v1/teams/{name}", status_code=204)
def delete_team(name: str, _: PlatformAdmin, platform: Platform = Depends(get_platform)) -> None:
    with platform.store.session() as s:
        if not teams.delete_team(s, name):
            raise HTTPException(404, f"no team {name!r}")


@router.get("/v1/priority-classes")
def list_priority_classes(platform: Platform = Depends(get_platform)) -> dict[str, int]:
    with platform.store.session() as s:
        return teams.priority_classes(s)


@router.put("/v1/priority-classes/{name}")
def put_priority_class(name: str, body: PriorityClassBody, _: PlatformAdmin,
                       platform: Platform = Depends(get_platform)) -> dict[str, int]:
    if not re.match(NAME_PATTERN, name):
        raise HTTPException(422, {"errors": [{"field": "name", "message":
                                              "use lowercase letters, digits, '.', '_', '-'"}]})
    with platform.store.session() as s:
        teams.put_priority_class(s, name, body.value)
        return teams.priority_classes(s)


@router.get("/v1/queue", response_model=JobList)
def queue(who: CurrentUser, platform: Platform = Depends(get_platform)) -> JobList:
    """Your teams' jobs waiting to run, highest priority first, each with the reason it waits."""
    with platform.store.session() as s:
        return JobList(items=[views.job_summary(j) for j in teams.queue(s, who)])
