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
from trainyard.spec import SpecError
from trainyard.store.repo import NotFound

DEFAULT_TEAM = "default"  # what a new store's admin belongs to, and objects made before teams owned them


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


def team_for_new(who: Principal, team: str | None, what: str) -> str:
    """The team a new object of `who`'s belongs to: the one named, which `who` must be a member of;
    else `who`'s only writable team; else "default" if `who` may write it; else a 422 on `team`
    naming the teams `who` may choose from (a 403 if none)."""
    mine = who.writable_teams()
    if team is not None:
        if who.is_rank or not who.may_write(team):
            yours = f"you may create them in {', '.join(mine)}" if mine else "you are a member of no team yet"
            raise Forbidden(f"team: {who.name!r} may not create {what} in team {team!r}; {yours} "
                            "(or ask that team's admin to add you)")
        return team
    if len(mine) == 1:
        return mine[0]
    if not who.is_rank and who.may_write(DEFAULT_TEAM):
        return DEFAULT_TEAM
    if not mine:
        raise Forbidden(f"to create {what} takes the member role in some team; you are a member of no team "
                        "yet: ask a team's admin to add you")
    raise SpecError([{"field": "team", "message": f"say which team owns it: one of the teams you may write, "
                                                  f"{', '.join(mine)}"}])


def require_writer(who: Principal, action: str) -> None:
    """Refuse (403) a caller who is a member of no team: `action` stores content any team may use."""
    if who.is_rank or not (who.platform_admin or who.writable_teams()):
        raise Forbidden(f"to {action} takes the member role in some team; ask a team's admin to add you "
                        "(`yard teams add-member TEAM <user> --role member`)")
