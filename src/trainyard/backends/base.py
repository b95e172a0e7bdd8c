"""The backend contract: capacity, launch, poll, signal.

A backend starts a gang's ranks where the scheduler placed them and reports on
them; it decides nothing. The handle `launch` returns is plain JSON, stored
with the attempt, so a restarted control loop can find and re-adopt a gang it
did not start; its "placement" says where the ranks run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainyard.scheduler.model import Node
from trainyard.spec import Resources


@dataclass(frozen=True)
class Capacity:
    """CPUs, GPUs and memory: what a backend can ever run at once, or what is left of it."""

    cpus: float
    gpus: int
    memory_gb: float

    def fits(self, r: Resources) -> bool:
        return (r.total_cpus <= self.cpus + 1e-9 and r.total_gpus <= self.gpus
                and r.total_memory_gb <= self.memory_gb + 1e-9)

    def minus(self, r: Resources) -> Capacity:
        return Capacity(self.cpus - r.total_cpus, self.gpus - r.total_gpus, self.memory_gb - r.total_memory_gb)


@dataclass(frozen=True)
class GangLaunch:
    job_id: str
    attempt: int
    entrypoint: list[str]
    code_dir: Path
    log_dir: Path
    resources: Resources
    env: dict[str, str] = field(default_factory=dict)  # common to all ranks
    # Names in `env` whose values are the team's secrets: a backend keeps them out of the logs it captures.
    secret_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class RankStatus:
    rank: int
    running: bool
    exit_code: int | None = None  # negative: killed by that signal
    lost: bool = False  # gone without a recorded exit

    def describe(self) -> str:
        if self.running:
            return f"worker rank {self.rank} is running"
        if self.lost:
            return f"worker rank {self.rank} disappeared without an exit status"
        if self.exit_code is not None and self.exit_code < 0:
            return f"worker rank {self.rank} exited with signal {-self.exit_code}"
        return f"worker rank {self.rank} exited with code {self.exit_code}"


Handle = dict[str, Any]
Placement = dict[str, int]  # node name -> GPUs, as the scheduler decides and the handle records


class Backend(ABC):
    name: str

    @abstractmethod
    def capacity(self) -> Capacity:
        """What this backend can ever run at once."""

    @abstractmethod
    def nodes(self) -> list[Node]:
        """The inventory the scheduler places gangs on."""

    @abstractmethod
    def launch(self, gang: GangLaunch, placement: Placement) -> Handle:
        """Start every rank of the gang on `placement`; return a JSON handle to find them again,
        whose "placement" is where the ranks run."""

    @abstractmethod
    def poll(self, handle: Handle) -> list[RankStatus]:
        """One status per rank, by rank."""

    @abstractmethod
    def signal(self, handle: Handle, signum: int) -> None:
        """Send a signal to every process of every rank still alive."""

    @abstractmethod
    def abandon(self, job_id: str, attempt: int, log_dir: Path) -> int:
        """Stop whatever a launch of (job, attempt) may have started though no handle was ever
        recorded (the server died between starting ranks and confirming them); how many were
        stopped. `launch` itself stops what it started before raising."""
