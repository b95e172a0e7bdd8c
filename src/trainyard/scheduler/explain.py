"""Short reasons a person understands: what a job needs and what the cluster has."""

from __future__ import annotations

from trainyard.scheduler.model import GangRequest
from trainyard.scheduler.placement import NodeIndex


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def describe_need(index: NodeIndex, job: GangRequest) -> str:
    groups = index.eligible_groups(job)
    fewest = min((index.min_nodes(job, g) for g in groups), default=0) or 1
    nodes = max(fewest, job.max_nodes or fewest)
    text = f"needs {_plural(job.gpus, 'GPU')} on ≤ {_plural(nodes, 'node')}"
    if job.gpus == 0:
        text = f"needs {job.cpus:g} CPUs on 1 node"
    extras = []
    if job.gpu_type:
        extras.append(job.gpu_type)
    if job.zone:
        extras.append(f"zone {job.zone}")
    extras.append("on-demand or spot" if job.allow_spot else "on-demand")
    return f"{text} ({', '.join(extras)})"


def describe_room(index: NodeIndex, groups: list[int]) -> str:
    free = sum(index.groups[g].free_gpus for g in groups)
    largest = 0
    whole = 0
    for gid in groups:
        group = index.groups[gid]
        whole += len(group.buckets[group.gpus_per_node])
        for f in range(group.gpus_per_node, largest, -1):
            if group.buckets[f]:
                largest = f
                break
    return (f"{free} matching GPUs free, at most {largest} on one node, "
            f"{_plural(whole, 'whole node')} free")
