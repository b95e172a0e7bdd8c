"""Who may change users, team memberships and tokens, and the changes themselves.

A platform admin may do anything here. A team's admin manages the team's members and its
service accounts' tokens. Anyone may make, list and revoke their own tokens; a token carries at
most its owner's roles (a scope naming a role above them is refused), and a token made with a
scoped token is scoped no wider. A team the caller holds no role in, or a token not theirs to
manage, is reported missing. Every change ends in `changed()`, which the api points at its cache
of resolved tokens: a revoked token or a lost role counts at once in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from trainyard.auth import identity
from trainyard.principal import Forbidden, Kind, Principal, Role
from trainyard.store import Store, access
from trainyard.store.auth_tables import MembershipRow, TokenRow, UserRow
from trainyard.store.base import utcnow
from trainyard.store.repo import Conflict, NotFound


@dataclass(frozen=True)
class User:
    """A person or a service account, with its role in each team."""

    name: str
    kind: str
    email: str | None
    platform_admin: bool
    disabled: bool
    created_at: datetime
    roles: dict[str, str]


@dataclass(frozen=True)
class Member:
    """One account's role in one team."""

    team: str
    user: str
    kind: str
    role: str


@dataclass(frozen=True)
class Token:
    """A token as lists show it: never its secret. `state`: live, expired or revoked."""

    id: str
    name: str
    user: str
    scopes: dict[str, str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    state: str


@dataclass(frozen=True)
class NewToken(Token):
    """A token just made: `token` is its secret, shown this once and kept nowhere."""

    token: str


@dataclass(frozen=True)
class Caller:
    """Who a token speaks for, and the roles it carries (fewer than its owner's if it is scoped)."""

    name: str
    kind: str
    platform_admin: bool
    roles: dict[str, str]
    token_id: str | None
    job_id: str | None
    attempt: int | None


def missing_team(team: str) -> str:
    return f"no team {team!r} that you hold a role in; `yard whoami` lists yours"


def _state(row: TokenRow) -> str:
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at is not None and row.expires_at <= utcnow() else "live"


def _token(row: TokenRow) -> Token:
    return Token(id=row.id, name=row.name, user=row.user, scopes=row.scopes, created_at=row.created_at,
                 expires_at=row.expires_at, revoked_at=row.revoked_at, state=_state(row))


def _user(row: UserRow, roles: Mapping[str, str]) -> User:
    return User(name=row.name, kind=row.kind, email=row.email, platform_admin=row.platform_admin,
                disabled=row.disabled, created_at=row.created_at, roles=dict(sorted(roles.items())))


class Accounts:
    """The identity changes one caller may make; `changed` runs after each one commits."""

    def __init__(self, store: Store, who: Principal, changed: Callable[[], None]) -> None:
        self.store = store
        self.who = who
        self.changed = changed

    @contextmanager
    def _change(self, lock: bool = False) -> Iterator[Session]:
        with self.store.session(lock=lock) as s:
            yield s
        self.changed()  # committed: every token is resolved afresh from here on

    def _not_rank(self, what: str) -> None:
        if self.who.is_rank:
            raise Forbidden(f"{what} takes a user's or a service account's token, not a rank's")

    def whoami(self) -> Caller:
        w = self.who
        return Caller(name=w.name, kind=str(w.kind), platform_admin=w.platform_admin,
                      roles={t: str(r) for t, r in sorted(w.roles.items())}, token_id=w.token_id,
                      job_id=w.job_id, attempt=w.attempt)

    # -- users ------------------------------------------------------------------

    def create_user(self, name: str, email: str | None) -> User:
        identity.require_platform_admin(self.who, "creating users")
        with self._change() as s:
            return _user(identity.create_user(s, name, email), {})

    def users(self, limit: int) -> list[User]:
        identity.require_platform_admin(self.who, "listing users")
        with self.store.session() as s:
            rows = list(s.scalars(select(UserRow).order_by(UserRow.name).limit(limit)))
            roles: dict[str, dict[str, str]] = {r.name: {} for r in rows}
            for m in s.scalars(select(MembershipRow).where(MembershipRow.user.in_(list(roles)))):
                roles[m.user][m.team] = m.role
            return [_user(r, roles[r.name]) for r in rows]

    # -- team members ---------------------------------------------------------------

    def members(self, team: str) -> list[Member]:
        access.require_read(self.who, team, missing_team(team))
        with self.store.session() as s:
            q = (select(MembershipRow, UserRow.kind).join(UserRow, UserRow.name == MembershipRow.user)
                 .where(MembershipRow.team == team).order_by(MembershipRow.user))
            return [Member(team=team, user=m.user, kind=kind, role=m.role) for m, kind in s.execute(q)]

    def set_member(self, team: str, user: str, role: Role) -> Member:
        access.require_role(self.who, team, missing_team(team), Role.ADMIN, action="manage its members")
        with self._change(lock=True) as s:
            identity.set_member(s, team, user, role)
            return Member(team=team, user=user, kind=identity.get_user(s, user).kind, role=str(role))

    def remove_member(self, team: str, user: str) -> None:
        access.require_role(self.who, team, missing_team(team), Role.ADMIN, action="manage its members")
        with self._change() as s:
            identity.remove_member(s, team, user)

    # -- tokens ---------------------------------------------------------------------

    def create_token(self, name: str, lifetime: timedelta, user: str | None = None,
                     scopes: Mapping[str, Role] | None = None) -> NewToken:
        """A token of `user` (default: the caller's own); only a platform admin makes one for another."""
        self._not_rank("making a token")
        owner = user or self.who.name
        if owner != self.who.name:
            identity.require_platform_admin(self.who, f"making a token for {owner!r}")
        with self._change() as s:
            identity.get_user(s, owner)
            token, row = identity.create_token(s, owner, name, lifetime, self._scopes(s, owner, scopes))
            return NewToken(**vars(_token(row)), token=token)

    def _scopes(self, s: Session, owner: str, scopes: Mapping[str, Role] | None) -> dict[str, Role] | None:
        """What a new token may carry: the scopes asked for, if the roles it would be made with hold
        them (the caller's token's roles for a token of one's own, else the owner's); none asked for
        means all of the owner's roles, unless the caller's own token is scoped: then as its roles."""
        own = owner == self.who.name
        if scopes is None:
            current = s.get(TokenRow, self.who.token_id) if own and self.who.token_id else None
            return dict(self.who.roles) if current is not None and current.scopes is not None else None
        held = self.who.roles if own else identity.roles_of(s, owner)
        for team, role in scopes.items():
            mine = held.get(team)
            if mine is None or mine.level < role.level:
                raise Forbidden(f"scopes.{team}: the {role} role in team {team!r} is above what {owner!r} holds "
                                f"there ({mine or 'no role'}); a token carries at most its owner's roles: ask "
                                f"that team's admin (`yard teams add-member {team} {owner} --role {role}`)")
        return dict(scopes)

    def create_service_token(self, service: str, team: str, role: Role, name: str,
                             lifetime: timedelta) -> NewToken:
        """A token of service account `service` (made now if it is new), holding `role` in `team` and
        scoped to it: for the team's automation (CI, schedulers), revocable by the team's admins."""
        self._not_rank("making a token")
        access.require_role(self.who, team, missing_team(team), Role.ADMIN,
                            action="make tokens for its service accounts")
        with self._change(lock=True) as s:
            account = s.get(UserRow, service)
            if account is None:
                identity.create_user(s, service, kind=Kind.SERVICE)
            elif account.kind != Kind.SERVICE:
                raise Conflict(f"{service!r} is a user, not a service account: give the service account "
                               "another name")
            identity.set_member(s, team, service, role)
            token, row = identity.create_token(s, service, name, lifetime, {team: role})
            return NewToken(**vars(_token(row)), token=token)

    def _may_manage(self, row: TokenRow, owner_kind: str) -> bool:
        """The caller's own tokens; a platform admin's, any; a team admin's, its service accounts' tokens
        scoped to teams that admin manages."""
        w = self.who
        if w.platform_admin or (row.user == w.name and not w.is_rank):
            return True
        if owner_kind != Kind.SERVICE or not row.scopes:
            return False
        return all(w.may_manage(t) for t in row.scopes)

    def tokens(self, user: str | None, limit: int) -> list[Token]:
        """Newest first: the tokens the caller may revoke (their own, their teams' service accounts')."""
        q = (select(TokenRow, UserRow.kind).join(UserRow, UserRow.name == TokenRow.user)
             .order_by(TokenRow.created_at.desc()))
        if user is not None:
            q = q.where(TokenRow.user == user)
        if self.who.platform_admin:
            q = q.limit(limit)
        else:
            q = q.where(or_(TokenRow.user == self.who.name, UserRow.kind == Kind.SERVICE))
        with self.store.session() as s:
            rows = [row for row, kind in s.execute(q) if self._may_manage(row, kind)]
            return [_token(r) for r in rows[:limit]]

    def revoke(self, token_id: str) -> Token:
        with self._change() as s:
            row = identity.token_row(s, token_id)
            if not self._may_manage(row, identity.get_user(s, row.user).kind):
                raise NotFound(identity.missing_token(token_id))
            return _token(identity.revoke_token(s, token_id))
