"""Short reasons a person understands: what a job needs, what the cluster has, and why
a running gang is stopped.

The room is described in the resource the job is short of: GPUs for a GPU gang
that finds no node with enough free, CPUs or memory when the GPUs are there but
those are not (or when the gang asks for no GPUs at all).
"""

from __future__ import annotations

from typing import assert_never

from trainyard.scheduler.model import GangRequest, PreemptCause, RunningGang
from trainyard.scheduler.placement import NodeIndex, node_share


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _num(x: float) -> str:
    return f"{x:.4g}"


def describe_need(index: NodeIndex, job: GangRequest) -> str:
    groups = index.eligible_groups(job)
    fewest = min((index.min_nodes(job, g) for g in groups), default=0) or 1
    nodes = max(fewest, job.max_nodes or fewest)
    asks = [_plural(job.gpus, "GPU")] if job.gpus else []
    if job.cpus:
        asks.append(f"{_num(job.cpus)} CPU{'' if job.cpus == 1 else 's'}")
    if job.memory_gb:
        asks.append(f"{_num(job.memory_gb)} GB memory")
    if not asks:
        asks.append("nothing")
    where = f"on ≤ {_plural(nodes, 'node')}" if job.gpus else "on 1 node"
    text = f"needs {', '.join(asks)} {where}"
    extras = []
    if job.gpu_type:
        extras.append(job.gpu_type)
    if job.zone:
        extras.append(f"zone {job.zone}")
    extras.append("on-demand or spot" if job.allow_spot else "on-demand")
    return f"{text} ({', '.join(extras)})"


def describe_room(index: NodeIndex, groups: list[int], job: GangRequest | None = None) -> str:
    """Why the gang does not fit now: GPUs first; then CPUs or memory on the nodes that
    have room for its GPUs."""
    if job is None or job.gpus:
        gpu_text = _gpu_room(index, groups)
        if job is None or not (job.cpus or job.memory_gb):
            return gpu_text
        extra = _extra_room(index, groups, job)
        return gpu_text if extra is None else f"{gpu_text}; {extra}"
    extra = _extra_room(index, groups, job)
    return extra if extra is not None else "no schedulable node matches"


def _gpu_room(index: NodeIndex, groups: list[int]) -> str:
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


def _extra_room(index: NodeIndex, groups: list[int], job: GangRequest) -> str | None:
    """CPUs or memory on the nodes with room for the gang's GPUs there, when short."""
    fits_gpus: list[tuple[int, int]] = []  # (node id, GPUs the gang would put there)
    for gid in groups:
        group = index.groups[gid]
        per_node = index.per_node(job, group.gpus_per_node)
        want = min(job.gpus, per_node) if job.gpus else 0
        if job.gpus and not want:
            continue
        for f in range(group.gpus_per_node, want - 1, -1):
            fits_gpus.extend((nid, want) for nid in group.buckets[f])
    if not fits_gpus:
        return None
    parts = []
    for label, unit, ask_of, free, total in (
        ("CPUs", "", lambda g: node_share(job, g)[0], index.free_cpus, lambda n: n.cpus),
        ("memory", " GB", lambda g: node_share(job, g)[1], index.free_memory, lambda n: n.memory_gb),
    ):
        tracked = [(nid, g) for nid, g in fits_gpus if total(index.nodes[nid])]
        if not tracked or not ask_of(tracked[0][1]):
            continue
        nid, g = max(tracked, key=lambda t: free[t[0]] - ask_of(t[1]))
        if free[nid] + 1e-9 >= ask_of(g):
            continue  # some node has room for this resource
        node = index.nodes[nid]
        have = f"{_num(max(0.0, free[nid]))} of {_num(total(node))}{unit} {label} free"
        if len(tracked) == 1:
            parts.append(f"{have} on {node.name}")
        else:
            where = "the nodes with room for its GPUs" if job.gpus else f"{len(tracked)} nodes"
            parts.append(f"at most {have} on one of {where} ({node.name})")
    return "; ".join(parts) if parts else None


def describe_preemption(cause: PreemptCause, victim: RunningGang, job: GangRequest | None, now: float,
                        node: str = "", job_nodes: int = 0) -> str:
    """Why `victim` stops, in words: every preemption's reason text comes from here.

    `job` is the job it makes room for (None for a spot reclaim); `node` is the node it is
    moved off or the spot node reclaimed; `job_nodes` how many nodes a moving job lands on."""
    if cause is PreemptCause.SPOT_RECLAIM:
        return f"spot node {node} was reclaimed; {victim.lost_seconds(now):,.0f} s since its last checkpoint are lost"
    assert job is not None, f"a {cause} preemption makes room for a job"
    gang = victim.job
    match cause:
        case PreemptCause.HIGHER_PRIORITY:
            return f"preempted for {job.id} (priority {job.priority} over {gang.priority})"
        case PreemptCause.QUOTA_RECLAIM:
            return f"team {job.team} reclaims its quota lent to team {gang.team}, for {job.id}"
        case PreemptCause.BACKFILL_EVICTION:
            return f"evicted for {job.id} from the reservation's nodes, where it ran as opportunistic backfill"
        case PreemptCause.SHORTER_WORK:
            short = _gpu_hours((job.expected_duration or 0.0) * max(1, job.gpus))
            left = ("gave no estimate of its length" if gang.expected_duration is None else
                    f"has {_gpu_hours((victim.expected_end - now) * max(1, gang.gpus))} GPU-hours left")
            return (f"long work gives way to much shorter work: {job.id} expects {short} GPU-hours, "
                    f"this gang {left}; its last checkpoint was {victim.lost_seconds(now):,.0f} s ago")
        case PreemptCause.MOVE:
            return (f"moved off {node} to make room for {job.id} ({job.gpus} GPUs on {job_nodes} node(s)); "
                    f"room for it is free elsewhere")
        case _:
            assert_never(cause)


def _gpu_hours(gpu_s: float) -> str:
    return f"{gpu_s / 3600:,.1f}"
