"""The modelled cluster and teams a replay runs on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from trainyard.scheduler.model import ON_DEMAND, SPOT, Node, Team

COHORT = "everyone"


@dataclass(frozen=True, slots=True)
class ClusterShape:
    nodes: int = 12_500
    gpus_per_node: int = 8
    spot_fraction: float = 0.0  # of nodes, in the spot pool
    cpus_per_node: float = 0.0  # 0: CPUs not modelled

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    def build(self) -> list[Node]:
        spot = round(self.nodes * self.spot_fraction)
        return [
            Node(f"node-{i:05d}", self.gpus_per_node, cpus=self.cpus_per_node,
                 pool=SPOT if i >= self.nodes - spot else ON_DEMAND)
            for i in range(self.nodes)
        ]


def equal_teams(names: Iterable[str], total_gpus: int) -> list[Team]:
    """Every team entitled to an equal slice, all in one cohort that lends idle quota freely."""
    names = sorted(set(names))
    if not names:
        return []
    share = total_gpus // len(names)
    return [Team(n, gpus=share, cohort=COHORT) for n in names]
