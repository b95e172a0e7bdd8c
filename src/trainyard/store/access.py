"""Who may see and change which object: the checks every service makes with the caller's principal.

Each object belongs to one team. Reading takes a role in it (viewer or more); changing takes
member (admin for the team's own settings). An object the caller may not read is reported
exactly as a missing one, so a 404 never tells another team that it exists. A rank reads only
its own job (and that job's run, checkpoints, code and dataset).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, true
from sqlalchemy.orm import InstrumentedAttribute

from trainyard.principal import Forbidden, Principal, Role
from trainyard.store.repo import NotFound


def may_read(who: Principal, team: str, job_id: str | None = None) -> bool:
    """`job_id`: the job the object is part of, if any, which that job's ranks may read."""
    if who.is_rank:
        return job_id is not None and who.job_id == job_id
    return who.may_read(team)


def require_read(who: Principal, team: str, missing: str, job_id: str | None = None) -> None:
    """Refuse as missing (`missing` is the not-found message) what `who` may not read."""
    if not may_read(who, team, job_id):
        raise NotFound(missing)


def require_role(who: Principal, team: str, missing: str, role: Role = Role.MEMBER,
                 action: str = "change it", job_id: str | None = None) -> None:
    """Refuse as missing what `who` may not read, and with a 403 what it may read but not change."""
    require_read(who, team, missing, job_id)
    if who.is_rank or not who.has(team, role):
        raise Forbidden(f"to {action} takes the {role} role in team {team!r}; ask a team admin "
                        f"(`yard teams add-member {team} <user> --role {role}`)")


def visible(who: Principal, team_column: InstrumentedAttribute[str],
            job_column: InstrumentedAttribute[str] | None = None) -> ColumnElement[bool]:
    """The WHERE clause of a list: only rows of the teams `who` may read (a rank: its own job's)."""
    if who.is_rank:
        if job_column is None or who.job_id is None:
            return team_column.is_(None)  # nothing
        return job_column == who.job_id
    teams = who.readable_teams
    return true() if teams is None else team_column.in_(sorted(teams))
