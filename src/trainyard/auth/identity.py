"""Users, service accounts, their roles per team, and their tokens: kept in the store.

The first server start creates the platform admin `admin` and writes a token for it to
`$TRAINYARD_HOME/token` (mode 0600), which the CLI on that machine uses; `make demo` and
`make test` need nothing else. A user's token carries at most the user's roles, fewer when it
is scoped; a rank's credential is its attempt's (`resolve_rank`).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainyard.auth import tokens
from trainyard.principal import Forbidden, Kind, Principal, Role
from trainyard.spec import AttemptState, SpecError
from trainyard.store.auth_tables import MembershipRow, TokenRow, UserRow
from trainyard.store.base import utcnow
from trainyard.store.repo import Conflict, NotFound, StaleAttemptError
from trainyard.store.tables import Attempt

ADMIN = "admin"
LOCAL_TOKEN_NAME = "local"
LIVE_ATTEMPT = (AttemptState.LAUNCHING, AttemptState.RUNNING)


def get_user(s: Session, name: str) -> UserRow:
    row = s.get(UserRow, name)
    if row is None:
        raise NotFound(f"no user {name!r}; see `yard users list`")
    return row


def ensure_admin(s: Session) -> None:
    """The platform admin of a new store, member-admin of the `default` team."""
    if s.get(UserRow, ADMIN) is None:
        s.add(UserRow(name=ADMIN, kind=Kind.USER, platform_admin=True))
        s.flush()  # the membership refers to it
        s.add(MembershipRow(team="default", user=ADMIN, role=Role.ADMIN))


def local_token(s: Session, path: Path) -> bool:
    """Make sure `path` holds a live token of the platform admin; True if one was written now.

    Whoever can write the server's home owns its database already, so a missing or dead token
    file is replaced: this is how the local machine's CLI always has a way in."""
    ensure_admin(s)
    if path.exists():
        current = path.read_text().strip()
        if current and resolve_user(s, current) is not None:
            return False
    token, _ = create_token(s, ADMIN, LOCAL_TOKEN_NAME)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return True


def create_user(s: Session, name: str, email: str | None = None, kind: Kind = Kind.USER,
                platform_admin: bool = False) -> UserRow:
    if s.get(UserRow, name) is not None:
        raise Conflict(f"user {name!r} exists already; see `yard users list`")
    row = UserRow(name=name, kind=kind, email=email, platform_admin=platform_admin)
    s.add(row)
    s.flush()
    return row


def users(s: Session) -> list[UserRow]:
    return list(s.scalars(select(UserRow).order_by(UserRow.name)))


def roles_of(s: Session, user: str) -> dict[str, Role]:
    rows = s.scalars(select(MembershipRow).where(MembershipRow.user == user))
    return {r.team: Role(r.role) for r in rows}


def members(s: Session, team: str) -> list[MembershipRow]:
    return list(s.scalars(select(MembershipRow).where(MembershipRow.team == team).order_by(MembershipRow.user)))


def set_member(s: Session, team: str, user: str, role: Role) -> None:
    get_user(s, user)
    row = s.get(MembershipRow, (team, user)) or MembershipRow(team=team, user=user)
    row.role = role
    s.add(row)


def remove_member(s: Session, team: str, user: str) -> None:
    row = s.get(MembershipRow, (team, user))
    if row is None:
        raise NotFound(f"{user!r} is not a member of team {team!r}")
    s.delete(row)


def create_token(s: Session, user: str, name: str, expires_in: timedelta | None = None,
                 scopes: dict[str, Role] | None = None) -> tuple[str, TokenRow]:
    """A new token of `user`, shown once (the string returned); only its digest is kept."""
    owner = get_user(s, user)
    if owner.disabled:
        raise SpecError([{"field": "user", "message": f"user {user!r} is disabled"}])
    token, token_id = tokens.new_token()
    row = TokenRow(id=token_id, digest=tokens.digest(token), user=user, name=name,
                   scopes={t: str(r) for t, r in scopes.items()} if scopes is not None else None,
                   expires_at=utcnow() + expires_in if expires_in else None)
    s.add(row)
    s.flush()
    return token, row


def token_rows(s: Session, user: str | None = None) -> list[TokenRow]:
    q = select(TokenRow).order_by(TokenRow.created_at)
    if user is not None:
        q = q.where(TokenRow.user == user)
    return list(s.scalars(q))


def missing_token(token_id: str) -> str:
    return f"no token {token_id!r}; see `yard tokens list`"


def token_row(s: Session, token_id: str) -> TokenRow:
    row = s.get(TokenRow, token_id)
    if row is None:
        raise NotFound(missing_token(token_id))
    return row


def revoke_token(s: Session, token_id: str) -> TokenRow:
    row = token_row(s, token_id)
    row.revoked_at = row.revoked_at or utcnow()
    return row


def _live(row: TokenRow, now: datetime) -> bool:
    return row.revoked_at is None and (row.expires_at is None or row.expires_at > now)


def resolve_user(s: Session, token: str) -> Principal | None:
    """The user or service account a token speaks for, with the roles it carries; None if the
    token is unknown, expired or revoked, or its owner disabled."""
    row = s.scalar(select(TokenRow).where(TokenRow.digest == tokens.digest(token)))
    if row is None or not _live(row, utcnow()):
        return None
    owner = s.get(UserRow, row.user)
    if owner is None or owner.disabled:
        return None
    roles = roles_of(s, owner.name)
    if row.scopes is not None:  # a scoped token: at most the named role in each named team
        roles = {t: min(r, Role(row.scopes[t]), key=lambda x: x.level)
                 for t, r in roles.items() if t in row.scopes}
    return Principal(name=owner.name, kind=Kind(owner.kind), platform_admin=owner.platform_admin and
                     row.scopes is None, roles=roles, token_id=row.id)


def resolve_rank(s: Session, token: str) -> Principal | None:
    """A rank's credential: good while its attempt is launching or running. After that it is
    dead, and every call with it is a stale attempt's (409), which tells the rank to stop."""
    att = s.scalar(select(Attempt).where(Attempt.token_digest == tokens.digest(token)))
    if att is None:
        return None
    if att.state not in LIVE_ATTEMPT:
        raise StaleAttemptError(f"attempt {att.number} of job {att.job_id} has ended ({att.state}); "
                                "its credential died with it")
    return Principal(name=f"{att.job_id}/attempt-{att.number}", kind=Kind.RANK, job_id=att.job_id,
                     attempt=att.number, token_id=f"attempt:{att.job_id}:{att.number}")


def resolve(s: Session, token: str) -> Principal | None:
    if len(token) > tokens.MAX_LENGTH:
        return None
    if token.startswith(tokens.RANK_PREFIX):
        return resolve_rank(s, token)
    if token.startswith(tokens.USER_PREFIX):
        return resolve_user(s, token)
    return None


def mint_rank_token(att: Attempt) -> str:
    """The credential of one attempt's ranks, minted as it launches: only its digest is kept."""
    token, _ = tokens.new_token(tokens.RANK_PREFIX)
    att.token_digest = tokens.digest(token)
    return token


def require_manage(who: Principal, team: str) -> None:
    if not who.may_manage(team):
        raise Forbidden(f"changing team {team!r} takes its admin role (or a platform admin)")


def require_platform_admin(who: Principal, what: str) -> None:
    if not who.platform_admin:
        raise Forbidden(f"{what} takes a platform admin")
