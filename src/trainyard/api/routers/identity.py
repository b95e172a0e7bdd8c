"""/v1/users, /v1/whoami, /v1/teams/{team}/members and /v1/tokens: who may call, with which roles.

Who may do what is `auth.accounts`' to say: a platform admin makes users; a team's admin manages
its members and its service accounts' tokens; anyone makes, lists and revokes their own tokens.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainyard.api.auth import CurrentUser, PlatformAdmin
from trainyard.api.platform import Platform, get_platform
from trainyard.auth import tokens
from trainyard.auth.accounts import Accounts, Caller, Member, NewToken, Token, User
from trainyard.principal import Principal, Role
from trainyard.spec import NAME_PATTERN

router = APIRouter(tags=["identity"])

NAME_HELP = "Lowercase letters, digits, '.', '_', '-'; at most 64."
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description=NAME_HELP)]
TeamName = Annotated[str, Path(pattern=NAME_PATTERN, description="The team.")]
UserName = Annotated[str, Path(pattern=NAME_PATTERN, description="The user or service account.")]
TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{1,24}$", description="The token's id, as `yard tokens list` shows.")]
Limit = Annotated[int, Query(ge=1, le=10_000, description="At most this many.")]


def _accounts(request: Request, who: Principal, platform: Platform) -> Accounts:
    # The one place identity changes reach the token cache: each change drops it as it commits.
    return Accounts(platform.store, who, changed=request.app.state.authenticator.forget)


def caller_accounts(request: Request, who: CurrentUser, platform: Platform = Depends(get_platform)) -> Accounts:
    return _accounts(request, who, platform)


def admin_accounts(request: Request, who: PlatformAdmin, platform: Platform = Depends(get_platform)) -> Accounts:
    return _accounts(request, who, platform)


CallerAccounts = Annotated[Accounts, Depends(caller_accounts)]
AdminAccounts = Annotated[Accounts, Depends(admin_accounts)]


class UserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    email: str | None = Field(None, max_length=254, pattern=EMAIL_PATTERN, description="name@domain.")


class MemberRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role = Field(description="viewer reads the team's objects; member also submits and changes them; "
                                   "admin also manages its members and service accounts.")


class Lifetime(BaseModel):
    expires: str = Field(tokens.DEFAULT_LIFETIME, max_length=8,
                         description=f"How long the token lives: 90m, 12h, 30d; at most {tokens.MAX_LIFETIME.days}d.")

    @field_validator("expires")
    @classmethod
    def _bounded(cls, value: str) -> str:
        tokens.lifetime(value)
        return value


class TokenRequest(Lifetime):
    model_config = ConfigDict(extra="forbid")
    name: Name = Field("default", description="What it is for (e.g. laptop); " + NAME_HELP)
    user: Name | None = Field(None, description="Whose token (default: the caller's); another's takes a "
                                                "platform admin.")
    scopes: dict[Name, Role] | None = Field(None, max_length=64, description=(
        "At most this role in each team named, none elsewhere; default: all the owner's roles. A role "
        "above the owner's own is refused."))


class ServiceTokenRequest(Lifetime):
    model_config = ConfigDict(extra="forbid")
    name: Name = Field("default", description="What it is for (e.g. ci); " + NAME_HELP)
    role: Role = Field(description="The role the service account gets in the team, and all the token carries.")


class UserList(BaseModel):
    items: list[User]


class MemberList(BaseModel):
    items: list[Member]


class TokenList(BaseModel):
    items: list[Token]


@router.get("/v1/whoami", response_model=Caller)
def whoami(accounts: CallerAccounts) -> Caller:
    """Who the token speaks for: name, kind, platform admin, and the roles it carries."""
    return accounts.whoami()


@router.post("/v1/users", status_code=201, response_model=User)
def create_user(body: UserRequest, accounts: AdminAccounts) -> User:
    return accounts.create_user(body.name, body.email)


@router.get("/v1/users", response_model=UserList)
def list_users(accounts: AdminAccounts, limit: Limit = 1000) -> UserList:
    return UserList(items=accounts.users(limit))


@router.get("/v1/teams/{team}/members", response_model=MemberList)
def list_members(team: TeamName, accounts: CallerAccounts) -> MemberList:
    return MemberList(items=accounts.members(team))


@router.put("/v1/teams/{team}/members/{user}", response_model=Member)
def put_member(team: TeamName, user: UserName, body: MemberRequest, accounts: CallerAccounts) -> Member:
    """Give `user` a role in `team` (or change it): the team's admin or a platform admin."""
    return accounts.set_member(team, user, body.role)


@router.delete("/v1/teams/{team}/members/{user}", status_code=204)
def delete_member(team: TeamName, user: UserName, accounts: CallerAccounts) -> None:
    accounts.remove_member(team, user)


@router.post("/v1/tokens", status_code=201, response_model=NewToken)
def create_token(body: TokenRequest, accounts: CallerAccounts) -> NewToken:
    """A new token, shown in this answer only: the server keeps its digest."""
    return accounts.create_token(body.name, tokens.lifetime(body.expires), body.user, body.scopes)


@router.post("/v1/teams/{team}/service-accounts/{user}/tokens", status_code=201, response_model=NewToken)
def create_service_token(team: TeamName, user: UserName, body: ServiceTokenRequest,
                         accounts: CallerAccounts) -> NewToken:
    """A token of service account `user` (made if new), given `role` in `team` and scoped to it."""
    return accounts.create_service_token(user, team, body.role, body.name, tokens.lifetime(body.expires))


@router.get("/v1/tokens", response_model=TokenList)
def list_tokens(accounts: CallerAccounts, limit: Limit = 1000,
                user: str | None = Query(None, pattern=NAME_PATTERN, description="Only this owner's.")) -> TokenList:
    """The tokens the caller may revoke, newest first; never their secrets."""
    return TokenList(items=accounts.tokens(user, limit))


@router.post("/v1/tokens/{token_id}/revoke", response_model=Token)
def revoke_token(token_id: TokenId, accounts: CallerAccounts) -> Token:
    """The token stops working at once on this server (within seconds on its other api processes)."""
    return accounts.revoke(token_id)
