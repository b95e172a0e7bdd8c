"""The cluster as the policy sees it: nodes, running gangs, team usage — kept incrementally.

`schedule()` builds one of these from a snapshot for every call; the simulator
keeps one alive and tells it what changed, so a cycle never rescans the cluster.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from trainyard.scheduler.model import GangRequest, Node, PriorityClass, RunningGang, Team
from trainyard.scheduler.placement import NodeIndex, Placement
from trainyard.scheduler.quota import QuotaBook


@dataclass(slots=True)
class Held:
    gang: RunningGang
    nodes: Placement  # (node id, GPUs)
    level: int  # priority class value


class ClusterState:
    def __init__(self, nodes: Iterable[Node], teams: Iterable[Team] = (),
                 priority_classes: Iterable[PriorityClass] = ()) -> None:
        self.index = NodeIndex(nodes)
        self.quota = QuotaBook(teams, self.index.total_gpus, sum(n.cpus for n in self.index.nodes))
        self.classes = {pc.name: pc.value for pc in priority_classes}
        self.running: dict[str, Held] = {}
        # (team, class value, preemptible, opportunistic) -> GPUs held: who could be a victim
        self.held_by_kind: Counter[tuple[str, int, bool, bool]] = Counter()
        # kind -> node -> gangs of that kind there: where a victim search need look
        self.nodes_by_kind: dict[tuple[str, int, bool, bool], Counter[int]] = {}

    def priority(self, job: GangRequest) -> int:
        value = self.classes.get(job.priority)
        if value is None:
            try:
                return int(job.priority)
            except ValueError:
                return 0
        return value

    def start(self, job: GangRequest, placement: Placement, now: float, *,
              checkpoint_every_s: float | None = None, last_checkpoint_time: float | None = None,
              opportunistic: bool = False) -> RunningGang:
        names = self.index.nodes
        gang = RunningGang(job, {names[nid].name: g for nid, g in placement}, now,
                           last_checkpoint_time, checkpoint_every_s, opportunistic)
        self._hold(gang, placement)
        return gang

    def add_running(self, gang: RunningGang) -> None:
        """A gang already running (from a snapshot): count it where it is."""
        ids = self.index.ids
        self._hold(gang, [(ids[name], g) for name, g in gang.placement.items()])

    def _hold(self, gang: RunningGang, placement: Placement) -> None:
        job = gang.job
        self.index.take(job, placement, gang.expected_end)
        self.quota.add(job.team, job.gpus, job.cpus)
        held = Held(gang, placement, self.priority(job))
        self.running[job.id] = held
        kind = self._kind(held)
        self.held_by_kind[kind] += job.gpus
        where = self.nodes_by_kind.setdefault(kind, Counter())
        for nid, _ in placement:
            where[nid] += 1

    @staticmethod
    def _kind(held: Held) -> tuple[str, int, bool, bool]:
        return (held.gang.job.team, held.level, held.gang.job.preemptible, held.gang.opportunistic)

    def stop(self, job_id: str) -> RunningGang:
        held = self.running.pop(job_id)
        job = held.gang.job
        kind = self._kind(held)
        self.held_by_kind[kind] -= job.gpus
        if not self.held_by_kind[kind]:
            del self.held_by_kind[kind]
        where = self.nodes_by_kind[kind]
        for nid, _ in held.nodes:
            where[nid] -= 1
            if not where[nid]:
                del where[nid]
        self.index.give_back(job, held.nodes)
        self.quota.remove(job.team, job.gpus, job.cpus)
        return held.gang

    def cordon(self, node: str, cordoned: bool = True) -> None:
        self.index.set_schedulable(self.index.ids[node], not cordoned)

    def reclaim_node(self, node: str) -> list[RunningGang]:
        """A spot node taken back: nothing new lands there; its gangs stop (whole gangs)."""
        nid = self.index.ids[node]
        self.index.set_schedulable(nid, False)
        return [self.stop(job_id) for job_id in list(self.index.jobs_on[nid])]

    def restore_node(self, node: str) -> None:
        self.cordon(node, False)
