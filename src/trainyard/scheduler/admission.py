"""The admission interface the control loop calls, and the spine's FIFO policy.

The control loop hands over a snapshot (pending jobs in submit order, what the
cluster has, what running jobs hold) and launches exactly the jobs returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from trainyard.spec import Resources


@dataclass(frozen=True)
class Capacity:
    cpus: float
    gpus: int
    memory_gb: float

    def fits(self, r: Resources, used: Capacity) -> bool:
        return (
            used.cpus + r.total_cpus <= self.cpus + 1e-9
            and used.gpus + r.total_gpus <= self.gpus
            and used.memory_gb + r.total_memory_gb <= self.memory_gb + 1e-9
        )

    def plus(self, r: Resources) -> Capacity:
        return Capacity(self.cpus + r.total_cpus, self.gpus + r.total_gpus,
                        self.memory_gb + r.total_memory_gb)


@dataclass(frozen=True)
class PendingJob:
    id: str
    team: str
    priority: int
    resources: Resources
    restarting: bool = False  # a gang being relaunched keeps its place ahead of new work


class Admission(Protocol):
    def admit(self, pending: list[PendingJob], capacity: Capacity, used: Capacity) -> list[str]:
        """Ids of the pending jobs to launch now, in launch order."""
        ...


class FifoAdmission:
    """Strict first-in-first-out with restarts first: the head blocks everyone behind it."""

    def admit(self, pending: list[PendingJob], capacity: Capacity, used: Capacity) -> list[str]:
        order = [p for p in pending if p.restarting] + [p for p in pending if not p.restarting]
        admitted = []
        for job in order:
            if not capacity.fits(job.resources, used):
                break
            used = used.plus(job.resources)
            admitted.append(job.id)
        return admitted
