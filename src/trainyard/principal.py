"""Who is asking (layer 1): roles, and the principal every route is authorized as.

A principal is resolved from a bearer token (api/auth.py) and handed to the services, which
filter every list and refuse every object by it. Three kinds ask:

- a **user** or **service account**: roles per team (viewer < member < admin), and maybe
  platform admin (teams, priority classes, nodes, users);
- a **rank**: one attempt of one job, with its own credential minted at launch. It may write
  only that attempt's records and read only its own job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    VIEWER = "viewer"  # read the team's objects
    MEMBER = "member"  # submit, cancel, write runs, datasets, models
    ADMIN = "admin"  # the team's members, quotas, secrets

    @property
    def level(self) -> int:
        return _LEVELS[self]


_LEVELS = {Role.VIEWER: 1, Role.MEMBER: 2, Role.ADMIN: 3}


class Kind(StrEnum):
    USER = "user"
    SERVICE = "service"
    RANK = "rank"


@dataclass(frozen=True)
class Principal:
    name: str  # the actor in events and audit rows: a user's name, or "job/attempt" for a rank
    kind: Kind = Kind.USER
    platform_admin: bool = False
    roles: Mapping[str, Role] = field(default_factory=dict)
    job_id: str | None = None  # a rank's job and attempt
    attempt: int | None = None
    token_id: str | None = None

    def has(self, team: str, role: Role) -> bool:
        """At least `role` in `team` (platform admins hold every role in every team)."""
        if self.platform_admin:
            return True
        held = self.roles.get(team)
        return held is not None and held.level >= role.level

    def may_read(self, team: str) -> bool:
        return self.has(team, Role.VIEWER)

    def may_write(self, team: str) -> bool:
        return self.has(team, Role.MEMBER)

    def may_manage(self, team: str) -> bool:
        return self.has(team, Role.ADMIN)

    @property
    def readable_teams(self) -> frozenset[str] | None:
        """The teams whose objects a list may show; None: all of them (a platform admin)."""
        return None if self.platform_admin else frozenset(self.roles)

    def writable_teams(self) -> list[str]:
        return sorted(t for t, r in self.roles.items() if r.level >= Role.MEMBER.level)

    @property
    def is_rank(self) -> bool:
        return self.kind == Kind.RANK


SYSTEM = Principal(name="trainyard", kind=Kind.SERVICE, platform_admin=True)  # the control loop's own work


class Forbidden(PermissionError):
    """The caller may see this object (or team) but not do this to it: a 403 saying what role it takes."""
