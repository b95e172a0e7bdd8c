"""The audit log: who changed what, when, from where, and how it ended.

Every state-changing API call is one `Entry`, written by the api's audit middleware
(api/audit.py) after the call is answered and before the answer is sent. Rows are only ever
added: no route updates or deletes them. Platform admins read every row; a team's admins read
the rows whose object is in their team (`AuditRow.team`); nobody else reads any.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from trainyard.principal import Forbidden, Principal, Role
from trainyard.spec import SpecError
from trainyard.store.audit_tables import AuditRow
from trainyard.store.base import utcnow

ANONYMOUS = "anonymous"  # the actor of a call that presented no valid token
MAX_PAGE = 1000
REASON_CHARS = 200
VALUE_CHARS = 256
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"(\d{1,6})([smhdw])")
MAX_LOOKBACK = timedelta(days=100 * 365)


@dataclass
class Entry:
    """One call as the audit log keeps it; never a request body, a header or a token."""

    actor: str
    action: str
    method: str
    route: str
    outcome: int
    token_id: str | None = None
    object: dict[str, Any] = field(default_factory=dict)
    team: str | None = None
    reason: str | None = None
    source: str | None = None
    time: datetime = field(default_factory=utcnow)


def _cut(value: str | None, n: int) -> str | None:
    return value if value is None or len(value) <= n else value[: n - 1] + "…"


def record(s: Session, entry: Entry) -> None:
    s.add(AuditRow(time=entry.time, actor=_cut(entry.actor, 160), token_id=_cut(entry.token_id, 64),
                   action=_cut(entry.action, 64), method=entry.method[:8], route=_cut(entry.route, 256),
                   object=entry.object, team=_cut(entry.team, 64), outcome=entry.outcome,
                   reason=_cut(entry.reason, REASON_CHARS), source=_cut(entry.source, 64)))


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`1d`, `12h`, `30m`, `45s`, `2w` ago, or an ISO 8601 time (UTC unless it says otherwise)."""
    now = now or utcnow()
    if m := _RELATIVE.fullmatch(text.strip()):
        ago = timedelta(seconds=int(m[1]) * _UNITS[m[2]])
        return now - min(ago, MAX_LOOKBACK)
    try:
        t = datetime.fromisoformat(text.strip())
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # not a time; or one whose offset runs past year 1 or 9999
        raise SpecError([{"field": "since", "message": f"{text!r} is neither a time ago (1d, 12h, 30m, 45s, "
                                                       "2w) nor an ISO 8601 time (2026-12-01T09:00:00Z)"}]) from None


def managed_teams(who: Principal) -> list[str]:
    return sorted(t for t, r in who.roles.items() if r == Role.ADMIN)


def _readable(who: Principal) -> ColumnElement[bool]:
    """Every row for a platform admin; a team admin's teams' rows; a 403 for anyone else."""
    if who.platform_admin:
        return true()
    teams = managed_teams(who)
    if not teams:
        raise Forbidden("reading the audit log takes a platform admin, or a team's admin role "
                        "(for the rows of that team's objects)")
    return AuditRow.team.in_(teams)


def page(s: Session, who: Principal, since: str | datetime | None = None, actor: str | None = None,
         action: str | None = None, limit: int = 100, before: int | None = None) -> tuple[list[AuditRow], int | None]:
    """Rows the caller may read, newest first, and the `before` of the next page (None: no more).
    `since`: a time, or text for `parse_since`."""
    q = select(AuditRow).where(_readable(who))
    if since is not None:
        q = q.where(AuditRow.time >= (parse_since(since) if isinstance(since, str) else since))
    if actor is not None:
        q = q.where(AuditRow.actor == actor)
    if action is not None:
        q = q.where(AuditRow.action == action)
    if before is not None:
        q = q.where(AuditRow.id < before)
    limit = max(1, min(limit, MAX_PAGE))
    rows = list(s.scalars(q.order_by(AuditRow.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, rows[-1].id if more else None
