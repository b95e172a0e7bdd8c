"""The reservation for the job at the head of the queue (EASY backfill).

The head gets the nodes expected to be free soonest (by running gangs' expected
ends) and a time by which they will be. Other gangs may use those nodes only if
they are expected to end before that time, or if they are preemptible (then they
run opportunistically and the head may evict them). The next cycle's choice can
only be as early or earlier, so backfill never delays the head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainyard.scheduler.model import GangRequest
from trainyard.scheduler.state import ClusterState


@dataclass(frozen=True, slots=True)
class NodeReservation:
    job_id: str
    at: float
    nodes: frozenset[int]

    def admits(self, job: GangRequest, now: float) -> bool:
        """May `job` start on the reserved nodes without delaying the head?"""
        d = job.expected_duration
        return d is not None and now + d <= self.at


def reserve(state: ClusterState, job: GangRequest, groups: list[int], now: float) -> NodeReservation | None:
    index = state.index
    best: tuple[float, list[int]] | None = None
    # One copy of the per-node lists as arrays, then every group is a fancy index into them.
    free_all = np.array(index.free, dtype=np.int64)
    ends_all = np.array(index.end_max, dtype=np.float64)
    schedulable = np.array(index.schedulable, dtype=bool)
    for gid in groups:
        group = index.groups[gid]
        fewest = index.min_nodes(job, gid)
        members = np.array(group.nodes, dtype=np.int64)
        ids = members[schedulable[members]]
        if fewest == 0 or len(ids) < fewest:
            continue
        nodes = ids.tolist() if job.cpus or job.memory_gb else []
        need = job.gpus if fewest == 1 else group.gpus_per_node
        free = free_all[ids]
        ends = ends_all[ids]
        if job.cpus or job.memory_gb:  # room means CPUs and memory too, where tracked
            share = job.gpus if fewest == 1 else index.per_node(job, group.gpus_per_node)
            roomy = np.fromiter((not any(index.shortfall(job, n, share)) for n in nodes), dtype=bool,
                                count=len(nodes))
        else:
            roomy = free >= need
        # A node is ready now if it already has room, else when its last gang is expected to end.
        ready = np.where(roomy, now, np.maximum(ends, now))
        order = np.lexsort((-free, ready))[:fewest]
        at = float(ready[order[-1]])
        if best is None or at < best[0]:
            best = (at, [int(i) for i in ids[order]])
    if best is None:
        return None
    return NodeReservation(job.id, best[0], frozenset(best[1]))
