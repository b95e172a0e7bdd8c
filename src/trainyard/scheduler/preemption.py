"""Choosing victims: the fewest gangs whose removal frees a fitting placement,
and among those the ones that lose the least work since their last checkpoint.

Who may be a victim of job J:
- a gang backfilled onto a reservation (opportunistic) of J's class or lower;
- a preemptible gang of lower priority class, in J's team, or in a team with no
  quota, or in a team that is borrowing from J's cohort;
- any gang of a team borrowing from J's cohort, when J is within its own team's
  nominal quota: the lender reclaims what it lent.
A team within its nominal quota is never preempted by another team's work.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from dataclasses import dataclass

from trainyard.scheduler.model import GangRequest
from trainyard.scheduler.placement import NO_EXCLUDE, Placement
from trainyard.scheduler.state import ClusterState, Held


@dataclass(frozen=True, slots=True)
class VictimPlan:
    victims: tuple[Held, ...]
    nodes: tuple[int, ...]
    lost_gpu_s: float


class VictimFinder:
    def __init__(self, state: ClusterState, job: GangRequest, now: float, reclaim: bool,
                 use_quotas: bool, scan_nodes: int, fresh: Collection[str] = ()) -> None:
        self.state = state
        self.job = job
        self.now = now
        self.reclaim = reclaim  # J is within its nominal quota: borrowed work may be taken back
        self.use_quotas = use_quotas
        self.scan_nodes = scan_nodes
        self.level = state.priority(job)
        self.cohort = state.quota.team(job.team).cohort
        self._ok: dict[tuple[str, int, bool, bool], bool] = {}
        self.fresh = fresh  # admitted this cycle: not started yet, so never a victim

    def may_evict(self, held: Held) -> bool:
        gang = held.gang
        victim = gang.job
        if victim.id in self.fresh:
            return False
        key = (victim.team, held.level, victim.preemptible, gang.opportunistic)
        found = self._ok.get(key)
        if found is None:
            found = self._ok[key] = self._may_evict(*key)
        return found

    def _may_evict(self, team_name: str, level: int, preemptible: bool, opportunistic: bool) -> bool:
        if opportunistic and level <= self.level:
            return True
        lower = level < self.level and preemptible
        if not self.use_quotas or team_name == self.job.team:
            return lower
        quota = self.state.quota
        team = quota.team(team_name)
        if team.gpus is None and team.cpus is None:
            return lower
        if team.cohort is None or team.cohort != self.cohort or not quota.borrowing(team_name):
            return False
        return self.reclaim or lower

    def evictable_gpus(self) -> int:
        """An upper bound on what victims could free, from per-kind counters (no node scan)."""
        return sum(g for kind, g in self.state.held_by_kind.items() if self._kind_ok(kind))

    def _kind_ok(self, kind: tuple[str, int, bool, bool]) -> bool:
        found = self._ok.get(kind)
        if found is None:
            found = self._ok[kind] = self._may_evict(*kind)
        return found

    def cost(self, victims: Collection[Held]) -> float:
        return sum(h.gang.lost_seconds(self.now) * h.gang.job.gpus for h in victims)

    def find(self, gid: int, exclude: Collection[int] = NO_EXCLUDE) -> VictimPlan | None:
        fewest = self.state.index.min_nodes(self.job, gid)
        if fewest == 0:
            return None
        if fewest == 1:
            return self._find_one_node(gid, exclude)
        return self._find_whole_nodes(gid, fewest, exclude)

    def _candidates(self, nid: int) -> list[Held] | None:
        """Evictable gangs on a node, or None when one of its gangs may not be evicted."""
        running = self.state.running
        out = []
        blocked = False
        for job_id in self.state.index.jobs_on[nid]:
            held = running[job_id]
            if self.may_evict(held):
                out.append(held)
            else:
                blocked = True
        return None if blocked and not out else out

    def _find_one_node(self, gid: int, exclude: Collection[int]) -> VictimPlan | None:
        """Nodes with the most free GPUs first (they need the least freed); one victim is
        the best there is, so stop once a few one-victim choices have been seen."""
        index = self.state.index
        group = index.groups[gid]
        running = self.state.running
        need_total = self.job.gpus
        best: tuple[int, float, list[Held], int] | None = None
        singles = 0
        scanned = 0
        for f in range(min(need_total - 1, group.gpus_per_node), -1, -1):
            need = need_total - f
            for nid in group.buckets[f]:
                if nid in exclude:
                    continue
                scanned += 1
                single: tuple[float, Held] | None = None
                cands: list[Held] = []
                total = 0
                for job_id, (gpus, _) in index.jobs_on[nid].items():
                    held = running[job_id]
                    if self.may_evict(held):
                        total += gpus
                        cands.append(held)
                        if gpus >= need:
                            lost = self.cost((held,))
                            if single is None or lost < single[0]:
                                single = (lost, held)
                if single is not None:
                    singles += 1
                    if best is None or (1, single[0]) < best[:2]:
                        best = (1, single[0], [single[1]], nid)
                elif total >= need and (best is None or best[0] > 1):
                    chosen = self._smallest_set(nid, cands, need)
                    if chosen is not None:
                        rank = (len(chosen), self.cost(chosen))
                        if best is None or rank < best[:2]:
                            best = (*rank, chosen, nid)
                if singles >= 16 or scanned >= self.scan_nodes:
                    break
            if singles >= 16 or scanned >= self.scan_nodes:
                break
        if best is None:
            return None
        return VictimPlan(tuple(best[2]), (best[3],), best[1])

    def _smallest_set(self, nid: int, cands: list[Held], need: int) -> list[Held] | None:
        on = self.state.index.jobs_on[nid]
        sizes = [on[h.gang.job.id][0] for h in cands]
        if sum(sizes) < need:
            return None
        order = sorted(range(len(cands)), key=lambda i: -sizes[i])
        k = next(i + 1 for i in range(len(order)) if sum(sizes[j] for j in order[: i + 1]) >= need)
        if len(cands) > 10:
            return [cands[i] for i in order[:k]]
        best: tuple[float, tuple[int, ...]] | None = None
        for combo in itertools.combinations(range(len(cands)), k):
            if sum(sizes[i] for i in combo) >= need:
                lost = self.cost([cands[i] for i in combo])
                if best is None or lost < best[0]:
                    best = (lost, combo)
        assert best is not None
        return [cands[i] for i in best[1]]

    def _find_whole_nodes(self, gid: int, fewest: int, exclude: Collection[int]) -> VictimPlan | None:
        """Multi-node gangs take whole nodes: free the cheapest `fewest` nodes entirely."""
        index = self.state.index
        group = index.groups[gid]
        options: list[tuple[int, float, int, list[Held]]] = []
        scanned = 0
        for f in range(group.gpus_per_node, -1, -1):
            for nid in group.buckets[f]:
                if nid in exclude:
                    continue
                scanned += 1
                if f == group.gpus_per_node:
                    options.append((0, 0.0, nid, []))
                else:
                    cands = self._candidates(nid)
                    if cands is not None and len(cands) == len(index.jobs_on[nid]):
                        options.append((len(cands), self.cost(cands), nid, cands))
                if scanned >= self.scan_nodes:
                    break
            if scanned >= self.scan_nodes:
                break
        if len(options) < fewest:
            return None
        options.sort(key=lambda o: (o[0], o[1]))
        picked = options[:fewest]
        victims: dict[str, Held] = {}
        for _, _, _, cands in picked:
            for h in cands:
                victims[h.gang.job.id] = h
        chosen = list(victims.values())
        return VictimPlan(tuple(chosen), tuple(o[2] for o in picked), self.cost(chosen))

    def placement_on(self, plan: VictimPlan, gid: int) -> Placement:
        """Where the gang goes once the plan's victims are gone."""
        index = self.state.index
        if len(plan.nodes) == 1:
            return [(plan.nodes[0], self.job.gpus)]
        per_node = index.groups[gid].gpus_per_node // max(1, self.job.gpus_per_worker) * max(
            1, self.job.gpus_per_worker)
        out = []
        left = self.job.gpus
        for nid in plan.nodes:
            take = min(left, per_node)
            out.append((nid, take))
            left -= take
        return out
