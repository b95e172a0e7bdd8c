"""/v1/teams/{team}/secrets: a team's secrets, set and deleted by its admins, listed by name to its
members. A value goes in and never comes back out: no route answers with one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from trainyard.api.auth import CurrentUser
from trainyard.api.platform import Platform, get_platform
from trainyard.auth import secrets
from trainyard.spec import NAME_PATTERN

router = APIRouter(prefix="/v1/teams/{team}/secrets", tags=["secrets"])

TeamName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=64, description="The team the secrets belong to.")]
SecretName = Annotated[str, Path(pattern=secrets.NAME_PATTERN, max_length=128,
                                 description="The secret's name, unique in its team; specs name it as "
                                             "`env: {VAR: {secret: NAME}}`.")]


class SecretValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: str = Field(min_length=1, max_length=secrets.MAX_VALUE,
                       description="The secret's value: encrypted at rest, given only to the team's jobs' ranks, "
                                   "never shown again.")


class SecretView(BaseModel):
    """A secret as anyone sees it: its name and when it changed, never its value."""

    model_config = ConfigDict(from_attributes=True)
    team: str
    name: str
    created_at: datetime
    updated_at: datetime
    updated_by: str


class SecretList(BaseModel):
    items: list[SecretView]


@router.put("/{name}", response_model=SecretView)
def set_secret(team: TeamName, name: SecretName, body: SecretValue, who: CurrentUser,
               platform: Platform = Depends(get_platform)) -> SecretView:
    """Set or replace a secret (the team's admin role); jobs launched from now on get the new value."""
    with platform.store.session(lock=True) as s:
        return SecretView.model_validate(secrets.put(s, secrets.keyring(platform.config), who, team, name,
                                                     body.value))


@router.get("", response_model=SecretList)
def list_secrets(team: TeamName, who: CurrentUser, platform: Platform = Depends(get_platform)) -> SecretList:
    """The team's secrets by name, with when each was last set (a member of the team)."""
    with platform.store.session() as s:
        return SecretList(items=[SecretView.model_validate(r) for r in secrets.listing(s, who, team)])


@router.delete("/{name}", status_code=204)
def delete_secret(team: TeamName, name: SecretName, who: CurrentUser,
                  platform: Platform = Depends(get_platform)) -> None:
    """Delete a secret (the team's admin role); a queued job that names it fails at launch, saying so."""
    with platform.store.session() as s:
        secrets.delete(s, who, team, name)
