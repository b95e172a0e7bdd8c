"""Teams, quotas and priority classes: kept in the store, seeded from the operator's file.

Changing them takes a platform admin (the api's `PlatformAdmin`); reading them, any caller:
team names, quotas and classes are what a person needs to write a spec and to read why a
job waits, and say nothing of any team's objects. The queue shows only the caller's teams' jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainyard.principal import Principal
from trainyard.scheduler.model import PriorityClass, Team
from trainyard.spec import (
    DEFAULT_PRIORITY_CLASSES,
    JobState,
    SchedulingSpec,
    SpecError,
    TeamSpec,
    field_errors,
    load_spec_file,
)
from trainyard.store import access
from trainyard.store.tables import Job, PriorityClassRow, TeamRow


def load_file(path: str | Path) -> SchedulingSpec:
    from pydantic import ValidationError

    try:
        return SchedulingSpec.model_validate(load_spec_file(path))
    except ValidationError as exc:
        raise SpecError(field_errors(exc)) from None


def put_team(s: Session, team: TeamSpec) -> None:
    row = s.get(TeamRow, team.name) or TeamRow(name=team.name)
    for key, value in team.model_dump().items():
        setattr(row, key, value)
    s.add(row)


def delete_team(s: Session, name: str) -> bool:
    row = s.get(TeamRow, name)
    if row is not None:
        s.delete(row)
    return row is not None


def put_priority_class(s: Session, name: str, value: int) -> None:
    row = s.get(PriorityClassRow, name) or PriorityClassRow(name=name)
    row.value = value
    s.add(row)


def seed(s: Session, spec: SchedulingSpec) -> None:
    """Apply the operator's file: its teams and classes replace what the store had of them."""
    for team in spec.teams:
        put_team(s, team)
    for name, value in spec.priority_classes.items():
        put_priority_class(s, name, value)


def teams(s: Session) -> list[TeamSpec]:
    rows = s.scalars(select(TeamRow).order_by(TeamRow.name)).all()
    return [TeamSpec.model_validate({c: getattr(r, c) for c in TeamSpec.model_fields}) for r in rows]


def priority_classes(s: Session) -> dict[str, int]:
    """The built-in classes, each replaced only by a stored class of the same name, plus the others
    stored: adding a class never takes the built-ins away (every default submit names `normal`)."""
    rows = s.scalars(select(PriorityClassRow)).all()
    classes = {**DEFAULT_PRIORITY_CLASSES, **{r.name: r.value for r in rows}}
    return dict(sorted(classes.items(), key=lambda kv: kv[1]))


def queue(s: Session, who: Principal) -> Sequence[Job]:
    """The jobs of `who`'s teams waiting to run, highest priority first, then oldest."""
    return s.scalars(select(Job).where(Job.state.in_([JobState.QUEUED, JobState.RESTARTING]),
                                       access.visible(who, Job.team, Job.id))
                     .order_by(Job.priority.desc(), Job.created_at)).all()


def policy_inputs(s: Session) -> tuple[tuple[Team, ...], tuple[PriorityClass, ...]]:
    """The store's config in the policy's words."""
    ts = tuple(Team(**t.model_dump()) for t in teams(s))
    pcs = tuple(PriorityClass(name, value) for name, value in priority_classes(s).items())
    return ts, pcs
