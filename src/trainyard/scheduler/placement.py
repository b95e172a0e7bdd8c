"""Gang placement over free-GPU buckets: all ranks on the fewest nodes, or nowhere.

Nodes of one kind (GPU type, pool, zone, GPUs per node) form a group; each group
keeps its schedulable nodes bucketed by free GPUs, so finding the best-fitting
node is a walk over at most `gpus_per_node + 1` buckets, never over the nodes.
Small gangs take the fullest node they fit on (best fit), which keeps whole
nodes whole for the large gangs that need them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from trainyard.scheduler.model import SPOT, GangRequest, Node

INF = float("inf")
NO_EXCLUDE: frozenset[int] = frozenset()


@dataclass(slots=True)
class NodeGroup:
    key: tuple[str, str, str, int]  # gpu_type, pool, zone, gpus per node
    gpus_per_node: int
    nodes: list[int] = field(default_factory=list)
    buckets: list[set[int]] = field(default_factory=list)  # free GPUs -> schedulable nodes
    free_gpus: int = 0  # on schedulable nodes

    @property
    def gpu_type(self) -> str:
        return self.key[0]

    @property
    def pool(self) -> str:
        return self.key[1]

    @property
    def zone(self) -> str:
        return self.key[2]


Placement = list[tuple[int, int]]  # (node id, GPUs)


def node_share(job: GangRequest, gpus: int) -> tuple[float, float]:
    """CPUs and memory a gang holds on a node where it has `gpus` of its GPUs (a CPU-only
    gang sits on one node and holds all of its own there)."""
    if job.gpus:
        part = gpus / job.gpus
        return job.cpus * part, job.memory_gb * part
    return job.cpus, job.memory_gb


class NodeIndex:
    """Nodes, their free resources, and which gangs sit on each; updated in O(gang size)."""

    def __init__(self, nodes: Iterable[Node] = ()) -> None:
        self.nodes: list[Node] = []
        self.ids: dict[str, int] = {}
        self.free: list[int] = []
        self.free_cpus: list[float] = []
        self.free_memory: list[float] = []
        self.group_of: list[int] = []
        self.groups: list[NodeGroup] = []
        self.jobs_on: list[dict[str, tuple[int, float]]] = []  # node -> job id -> (GPUs, expected end)
        self.end_max: list[float] = []  # node -> latest expected end of its gangs
        self.schedulable: list[bool] = []
        self._group_ids: dict[tuple[str, str, str, int], int] = {}
        self._eligible: dict[tuple[str | None, str | None, bool], list[int]] = {}
        for node in nodes:
            self.add_node(node)

    # -- inventory ---------------------------------------------------------------

    def add_node(self, node: Node) -> int:
        key = (node.gpu_type, node.pool, node.zone, node.gpus)
        gid = self._group_ids.get(key)
        if gid is None:
            gid = len(self.groups)
            self._group_ids[key] = gid
            self.groups.append(NodeGroup(key, node.gpus, buckets=[set() for _ in range(node.gpus + 1)]))
            self._eligible.clear()
        nid = len(self.nodes)
        self.nodes.append(node)
        self.ids[node.name] = nid
        self.free.append(node.gpus)
        self.free_cpus.append(node.cpus)
        self.free_memory.append(node.memory_gb)
        self.group_of.append(gid)
        self.jobs_on.append({})
        self.end_max.append(-INF)
        self.schedulable.append(False)
        self.groups[gid].nodes.append(nid)
        self.set_schedulable(nid, not node.cordoned)
        return nid

    def set_schedulable(self, nid: int, schedulable: bool) -> None:
        """Cordoning keeps a node's gangs running but places nothing new on it."""
        if self.schedulable[nid] == schedulable:
            return
        group = self.groups[self.group_of[nid]]
        self.schedulable[nid] = schedulable
        if schedulable:
            group.buckets[self.free[nid]].add(nid)
            group.free_gpus += self.free[nid]
        else:
            group.buckets[self.free[nid]].discard(nid)
            group.free_gpus -= self.free[nid]

    def eligible_groups(self, job: GangRequest) -> list[int]:
        """Groups a gang may use, spot first for gangs that allow it (spot is the cheaper pool)."""
        sig = (job.gpu_type, job.zone, job.allow_spot)
        found = self._eligible.get(sig)
        if found is None:
            found = [
                gid
                for gid, g in enumerate(self.groups)
                if (job.gpu_type is None or g.gpu_type == job.gpu_type)
                and (job.zone is None or g.zone == job.zone)
                and (job.allow_spot or g.pool != SPOT)
            ]
            found.sort(key=lambda gid: self.groups[gid].pool != SPOT)
            self._eligible[sig] = found
        return found

    @property
    def total_gpus(self) -> int:
        return sum(n.gpus for n in self.nodes)

    @property
    def free_gpus(self) -> int:
        return sum(g.free_gpus for g in self.groups)

    # -- taking and giving back ---------------------------------------------------

    def take(self, job: GangRequest, placement: Placement, end: float) -> None:
        for nid, gpus in placement:
            self._move(nid, -gpus)
            cpus, memory = node_share(job, gpus)
            self.free_cpus[nid] -= cpus
            self.free_memory[nid] -= memory
            self.jobs_on[nid][job.id] = (gpus, end)
            if end > self.end_max[nid]:
                self.end_max[nid] = end

    def give_back(self, job: GangRequest, placement: Placement) -> None:
        for nid, gpus in placement:
            self._move(nid, gpus)
            cpus, memory = node_share(job, gpus)
            self.free_cpus[nid] += cpus
            self.free_memory[nid] += memory
            on = self.jobs_on[nid]
            on.pop(job.id, None)
            self.end_max[nid] = max((e for _, e in on.values()), default=-INF)

    def _move(self, nid: int, delta: int) -> None:
        if self.schedulable[nid]:
            group = self.groups[self.group_of[nid]]
            group.buckets[self.free[nid]].discard(nid)
            group.buckets[self.free[nid] + delta].add(nid)
            group.free_gpus += delta
        self.free[nid] += delta

    # -- finding a placement ------------------------------------------------------

    def min_nodes(self, job: GangRequest, gid: int) -> int:
        if job.gpus == 0:
            return 1  # a CPU-only gang sits on one node
        per_node = self.per_node(job, self.groups[gid].gpus_per_node)
        return max(1, -(-job.gpus // per_node)) if per_node else 0

    @staticmethod
    def per_node(job: GangRequest, gpus_per_node: int) -> int:
        unit = max(1, job.gpus_per_worker)
        return gpus_per_node // unit * unit

    def find(self, job: GangRequest, gid: int, exclude: Collection[int] = NO_EXCLUDE) -> Placement | None:
        """A placement of the whole gang in one group, or None. Does not take anything."""
        group = self.groups[gid]
        if group.free_gpus < job.gpus:
            return None
        if job.gpus == 0:
            return self._find_cpu_only(job, group, exclude)
        per_node = self.per_node(job, group.gpus_per_node)
        if per_node == 0:
            return None
        fewest = -(-job.gpus // per_node)
        limit = max(fewest, job.max_nodes or fewest)
        placement = self._find_packed(job, group, per_node, exclude)
        if placement is None and limit > fewest:
            placement = self._find_spread(job, group, limit, exclude)
        return placement

    def _fits_extra(self, job: GangRequest, nid: int, gpus: int) -> bool:
        """CPU and memory on a node, where the node tracks them."""
        node = self.nodes[nid]
        cpus, memory = node_share(job, gpus)
        if node.cpus and cpus > self.free_cpus[nid] + 1e-9:
            return False
        return not (node.memory_gb and memory > self.free_memory[nid] + 1e-9)

    def shortfall(self, job: GangRequest, nid: int, gpus: int) -> tuple[float, float, float]:
        """What a node lacks to hold `gpus` of the gang: (GPUs, CPUs, memory), zeros where it
        has room or does not track the resource."""
        node = self.nodes[nid]
        cpus, memory = node_share(job, gpus)
        return (
            float(max(0, gpus - self.free[nid])),
            max(0.0, cpus - self.free_cpus[nid]) if node.cpus else 0.0,
            max(0.0, memory - self.free_memory[nid]) if node.memory_gb else 0.0,
        )

    def _pick(self, job: GangRequest, bucket: set[int], gpus: int, exclude: Collection[int],
              taken: Collection[int] = ()) -> int | None:
        plain = not exclude and not taken and not job.cpus and not job.memory_gb
        if plain:
            for nid in bucket:
                return nid
            return None
        for nid in bucket:
            if nid not in exclude and nid not in taken and self._fits_extra(job, nid, gpus):
                return nid
        return None

    def _find_packed(self, job: GangRequest, group: NodeGroup, per_node: int,
                     exclude: Collection[int]) -> Placement | None:
        whole, rest = divmod(job.gpus, per_node)
        if whole and rest == 0:
            whole, rest = whole - 1, per_node
        buckets = group.buckets
        top = group.gpus_per_node
        chosen: list[tuple[int, int]] = []
        taken: set[int] = set()
        # The remainder goes on the fullest node it fits on, so whole nodes stay whole.
        for f in range(rest, top + 1):
            if buckets[f]:
                nid = self._pick(job, buckets[f], rest, exclude, taken)
                if nid is not None:
                    chosen.append((nid, rest))
                    taken.add(nid)
                    break
        if not chosen:
            return None
        if whole and not self._add_whole_nodes(job, group, per_node, whole, chosen, taken, exclude):
            return None
        return chosen

    def _add_whole_nodes(self, job: GangRequest, group: NodeGroup, per_node: int, count: int,
                         chosen: list[tuple[int, int]], taken: set[int],
                         exclude: Collection[int]) -> bool:
        want = len(chosen) + count
        for f in range(group.gpus_per_node, per_node - 1, -1):
            for nid in group.buckets[f]:
                if nid not in taken and nid not in exclude and self._fits_extra(job, nid, per_node):
                    chosen.append((nid, per_node))
                    taken.add(nid)
                    if len(chosen) == want:
                        return True
        return False

    def _find_spread(self, job: GangRequest, group: NodeGroup, limit: int,
                     exclude: Collection[int]) -> Placement | None:
        unit = max(1, job.gpus_per_worker)
        remaining = job.gpus
        chosen: list[tuple[int, int]] = []
        for f in range(group.gpus_per_node, unit - 1, -1):
            for nid in group.buckets[f]:
                if nid in exclude:
                    continue
                take = min(remaining, f // unit * unit)
                if not self._fits_extra(job, nid, take):
                    continue
                chosen.append((nid, take))
                remaining -= take
                if remaining == 0:
                    return chosen
                if len(chosen) == limit:
                    return None
        return None

    def _find_cpu_only(self, job: GangRequest, group: NodeGroup,
                       exclude: Collection[int]) -> Placement | None:
        for nid in group.nodes:
            if self.schedulable[nid] and nid not in exclude and self._fits_extra(job, nid, 0):
                return [(nid, 0)]
        return None
