"""Moving small gangs so a large one can start: defragmentation by preemption.

Best fit keeps whole nodes whole while small gangs arrive, but small gangs end at
random times. A cluster that was full drains into many nodes with a GPU or two still
in use and none free entirely, and a gang that needs whole nodes waits while the GPUs
around it sit idle. (On the Philly trace scaled to 100,000 GPUs, a day in: 14,000 GPUs
idle, not one node free, 4,900 gangs of 8 GPUs or more waiting.)

A move is a preemption with somewhere to go. The gang that needs room takes the nodes
whose movable gangs are fewest and have lost least since their checkpoints; there must
be room for each of those gangs on other nodes of the same kind, and that room is held
for the rest of the cycle so nothing else takes it. They stop (checkpointing in the
grace period) and go back to the queue with their place and their checkpoints. A gang
may be moved when it is preemptible, of the waiting gang's priority class or lower, and
on a single node (`VictimFinder(moving=True)`); its team keeps its quota. It loses the
work since its last checkpoint and a restart, which `worth_preempting` weighs against
what the waiting gang gains.

Moving runs only once a cycle's walk has placed everything that fits as things stand,
so it never takes free GPUs that a waiting small job could have used.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from trainyard.scheduler.model import GangRequest
from trainyard.scheduler.placement import INF, NodeIndex, Placement
from trainyard.scheduler.preemption import VictimPlan

HOLD = "~room-for-"  # a held room's id in the node index: never a running gang


def hold_room(index: NodeIndex, gid: int, plan: VictimPlan,
              exclude: Collection[int] = ()) -> list[tuple[GangRequest, Placement]] | None:
    """Find room for every gang the plan moves on the group's other nodes (GPUs, and CPUs and
    memory where tracked), and hold it in the index so nothing else this cycle takes it.
    None, holding nothing, when some gang has nowhere to go. The caller gives the rooms
    back (`release`) at the end of the cycle, when the moved gangs are queued again."""
    avoid = {*plan.nodes, *exclude}
    held: list[tuple[GangRequest, Placement]] = []
    for victim in sorted(plan.victims, key=lambda h: -h.gang.job.gpus):
        job = replace(victim.gang.job, id=HOLD + victim.gang.job.id)
        placement = index.find(job, gid, avoid)
        if placement is None:
            release(index, held)
            return None
        index.take(job, placement, INF)
        held.append((job, placement))
    return held


def release(index: NodeIndex, held: list[tuple[GangRequest, Placement]]) -> None:
    for job, placement in held:
        index.give_back(job, placement)
