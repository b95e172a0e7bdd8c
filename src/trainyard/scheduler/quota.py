"""Team quotas, borrowing within a cohort, and dominant resource shares.

Usage is counted per team and per cohort as gangs start and stop, so a quota
check is a few dictionary reads whatever the size of the cluster.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from trainyard.scheduler.model import GangRequest, Team

WITHIN = "within"
BORROW = "borrow"
BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class QuotaVerdict:
    kind: str  # WITHIN, BORROW or BLOCKED
    reason: str = ""


def _fmt(x: float) -> str:
    return f"{x:g}"


class QuotaBook:
    def __init__(self, teams: Iterable[Team], total_gpus: int, total_cpus: float) -> None:
        self.teams = {t.name: t for t in teams}
        self.total_gpus = max(1, total_gpus)
        self.total_cpus = total_cpus if total_cpus > 0 else 1.0
        self.used_gpus: defaultdict[str, int] = defaultdict(int)
        self.used_cpus: defaultdict[str, float] = defaultdict(float)
        self.cohort_used_gpus: defaultdict[str, int] = defaultdict(int)
        self.cohort_used_cpus: defaultdict[str, float] = defaultdict(float)
        self.cohort_gpus: dict[str, float] = {}
        self.cohort_cpus: dict[str, float] = {}
        # GPUs each team has held on average lately (decayed), and the clock of that average
        self.history: dict[str, float] = {}
        self._history_weight = 0.0  # decayed seconds the history covers
        self._clock: float | None = None
        for t in self.teams.values():
            if t.cohort is not None:
                inf = float("inf")
                self.cohort_gpus[t.cohort] = self.cohort_gpus.get(t.cohort, 0) + (
                    inf if t.gpus is None else t.gpus)
                self.cohort_cpus[t.cohort] = self.cohort_cpus.get(t.cohort, 0) + (
                    inf if t.cpus is None else t.cpus)

    def team(self, name: str) -> Team:
        found = self.teams.get(name)
        if found is None:
            found = self.teams[name] = Team(name)
        return found

    def add(self, team: str, gpus: int, cpus: float, sign: int = 1) -> None:
        self.used_gpus[team] += sign * gpus
        self.used_cpus[team] += sign * cpus
        cohort = self.team(team).cohort
        if cohort is not None:
            self.cohort_used_gpus[cohort] += sign * gpus
            self.cohort_used_cpus[cohort] += sign * cpus

    def remove(self, team: str, gpus: int, cpus: float) -> None:
        self.add(team, gpus, cpus, -1)

    # -- usage over time ------------------------------------------------------------

    def set_history(self, average_gpus: Mapping[str, float], now: float) -> None:
        """Start from averages measured elsewhere (the control loop reads them from the store)."""
        self.history = dict(average_gpus)
        self._history_weight = 1.0 if average_gpus else 0.0  # any weight: only ratios are kept
        self._clock = now

    def advance(self, now: float, half_life_s: float) -> None:
        """Fold the GPUs held since the last call into each team's decaying average."""
        if self._clock is None or now <= self._clock:
            self._clock = now if self._clock is None else self._clock
            return
        dt = now - self._clock
        self._clock = now
        rate = math.log(2) / half_life_s
        keep = math.exp(-rate * dt)
        gained = (1.0 - keep) / rate  # decayed seconds in the interval just past
        total = self._history_weight * keep + gained
        for team in self.history.keys() | self.used_gpus.keys():
            held = self.history.get(team, 0.0) * self._history_weight * keep + self.used_gpus.get(team, 0) * gained
            self.history[team] = held / total
        self._history_weight = total

    def average_gpus(self, team: str) -> float:
        """GPUs held on average lately; the current usage when there is no history yet."""
        return self.history.get(team, self.used_gpus[team]) if self._history_weight else self.used_gpus[team]

    def share(self, team: str) -> float:
        """Dominant resource share over the team's weight: DRF orders teams by this."""
        t = self.team(team)
        dominant = max(self.used_gpus[team] / self.total_gpus, self.used_cpus[team] / self.total_cpus)
        return dominant / t.weight

    def borrowing(self, team: str, less_gpus: int = 0, less_cpus: float = 0.0) -> bool:
        t = self.team(team)
        return (t.gpus is not None and self.used_gpus[team] - less_gpus > t.gpus) or (
            t.cpus is not None and self.used_cpus[team] - less_cpus > t.cpus + 1e-9)

    def check(self, job: GangRequest, freed_team: tuple[int, float] = (0, 0.0),
              freed_cohort: tuple[int, float] = (0, 0.0), why: bool = True) -> QuotaVerdict:
        """May `job` start, given what preempting others would give back? (`why`: False
        leaves the verdict's reason empty, for callers that never show it.)"""
        t = self.team(job.team)
        verdict = WITHIN
        reasons = []
        for res, ask, used, nominal, limit, cohort_used, cohort_nominal, f_team, f_cohort in (
            ("GPUs", job.gpus, self.used_gpus[t.name], t.gpus, t.borrowing_limit_gpus,
             self.cohort_used_gpus, self.cohort_gpus, freed_team[0], freed_cohort[0]),
            ("CPUs", job.cpus, self.used_cpus[t.name], t.cpus, t.borrowing_limit_cpus,
             self.cohort_used_cpus, self.cohort_cpus, freed_team[1], freed_cohort[1]),
        ):
            if nominal is None or ask == 0:
                continue
            after = used - f_team + ask
            if after <= nominal + 1e-9:
                continue
            at = f"team {t.name} at quota {_fmt(used)}/{_fmt(nominal)} {res}" if why else ""
            if t.cohort is None:
                reasons.append(f"{at}, no cohort to borrow from")
                continue
            idle = cohort_nominal[t.cohort] - (cohort_used[t.cohort] - f_cohort)
            borrow = after - nominal
            if limit is not None and borrow > limit + 1e-9:
                reasons.append(f"{at}, borrowing limit {_fmt(limit)}" if why else "")
            elif ask > idle + 1e-9:
                reasons.append(f"{at}, cohort {t.cohort} has {_fmt(max(0, idle))} idle" if why else "")
            else:
                verdict = BORROW
        if reasons:
            return QuotaVerdict(BLOCKED, "; ".join(reasons))
        return QuotaVerdict(verdict)
