"""The words of the scheduling policy: nodes, gangs, teams, priority classes, decisions.

Everything here is plain data. A snapshot of these goes into `schedule`; decisions
come out. Times are plain numbers (seconds) handed in by the caller: the policy
never reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

ON_DEMAND = "on-demand"
SPOT = "spot"


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    gpus: int
    gpu_type: str = "gpu"
    cpus: float = 0.0  # 0 means "not tracked": CPU requests are not checked on this node
    memory_gb: float = 0.0  # 0 means "not tracked"
    pool: str = ON_DEMAND  # ON_DEMAND or SPOT
    zone: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    cordoned: bool = False


@dataclass(frozen=True, slots=True)
class PriorityClass:
    name: str
    value: int  # higher runs first and may preempt lower


DEFAULT_PRIORITY_CLASSES: tuple[PriorityClass, ...] = (
    PriorityClass("low", 0),
    PriorityClass("normal", 1),
    PriorityClass("high", 2),
    PriorityClass("critical", 3),
)


@dataclass(frozen=True, slots=True)
class Team:
    """A team's nominal quota, and what it may borrow from its cohort.

    `None` quota means unlimited (a team nobody configured). A borrowing limit of
    `None` means "as much as the cohort has idle".
    """

    name: str
    gpus: int | None = None
    cpus: float | None = None
    weight: float = 1.0
    cohort: str | None = None
    borrowing_limit_gpus: int | None = None
    borrowing_limit_cpus: float | None = None


@dataclass(frozen=True, slots=True)
class GangRequest:
    """A job waiting to run: all `gpus` (in ranks of `gpus_per_worker`) start together or not at all."""

    id: str
    gpus: int
    team: str = "default"
    priority: str = "normal"
    submit_time: float = 0.0
    gpus_per_worker: int = 1
    cpus: float = 0.0  # whole gang, spread like its GPUs
    memory_gb: float = 0.0  # whole gang
    gpu_type: str | None = None  # None: any type
    zone: str | None = None  # None: any zone
    allow_spot: bool = False
    preemptible: bool = False
    expected_duration: float | None = None  # seconds; lets backfill and ordering use it
    max_nodes: int | None = None  # None: the fewest nodes the gang can fit on


@dataclass(slots=True)
class RunningGang:
    """A gang holding GPUs: where it runs and how much work a preemption would lose."""

    job: GangRequest
    placement: dict[str, int]  # node name -> GPUs
    start_time: float
    last_checkpoint_time: float | None = None  # when its newest verified checkpoint was taken
    checkpoint_every_s: float | None = None  # lets the policy infer newer checkpoints by itself
    opportunistic: bool = False  # backfilled onto a reservation; any equal-or-higher class may evict

    @property
    def expected_end(self) -> float:
        d = self.job.expected_duration
        return float("inf") if d is None else self.start_time + d

    def lost_seconds(self, now: float) -> float:
        """Seconds of progress a preemption now would throw away (since the last checkpoint)."""
        last = self.start_time if self.last_checkpoint_time is None else self.last_checkpoint_time
        if self.checkpoint_every_s:
            beats = (now - self.start_time) // self.checkpoint_every_s
            last = max(last, self.start_time + beats * self.checkpoint_every_s)
        return max(0.0, now - last)


@dataclass(frozen=True, slots=True)
class Admit:
    job_id: str
    placement: dict[str, int]  # node name -> GPUs
    borrowing: bool = False  # admitted on quota lent by the cohort; reclaimable
    opportunistic: bool = False  # backfilled onto the reservation's nodes; evictable


class PreemptCause(StrEnum):
    """Why a running gang is stopped. `explain.describe_preemption` says each in words."""

    HIGHER_PRIORITY = "higher-priority"  # a job of a higher priority class needs its place
    QUOTA_RECLAIM = "quota-reclaim"  # it borrowed the job's team's quota; the lender takes it back
    BACKFILL_EVICTION = "backfill-eviction"  # it ran opportunistically on a reservation's nodes
    SHORTER_WORK = "shorter-work"  # long work gives way, just after its checkpoint, to much shorter work
    MOVE = "move"  # moved to defragment: there is room for it elsewhere already
    SPOT_RECLAIM = "spot-reclaim"  # the spot node under it was taken back


@dataclass(frozen=True, slots=True)
class Preempt:
    job_id: str
    for_job: str  # the job it makes room for; "" when none asked (a spot reclaim)
    cause: PreemptCause
    reason: str  # the cause in words, from `explain.describe_preemption`

    @property
    def move(self) -> bool:
        """Stopped to defragment: there is room for it elsewhere already."""
        return self.cause is PreemptCause.MOVE


@dataclass(slots=True)
class Decisions:
    admit: list[Admit] = field(default_factory=list)
    preempt: list[Preempt] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # pending job id -> why it waits
    reservation: Reservation | None = None


@dataclass(frozen=True, slots=True)
class Reservation:
    job_id: str
    at: float  # time by which the reserved nodes are expected free (inf: when they drain)
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """Everything one scheduling cycle looks at."""

    nodes: tuple[Node, ...]
    running: tuple[RunningGang, ...]
    pending: tuple[GangRequest, ...]
    teams: tuple[Team, ...] = ()
    priority_classes: tuple[PriorityClass, ...] = DEFAULT_PRIORITY_CLASSES
    now: float = 0.0
    usage: Mapping[str, float] = field(default_factory=dict)  # team -> GPUs held on average lately
