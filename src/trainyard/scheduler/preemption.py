"""Choosing victims: the fewest gangs whose removal frees a fitting placement,
and among those the ones that lose the least work since their last checkpoint.
Victims must free whatever the pending gang lacks on the node: GPUs, and CPUs and
memory where the node tracks them.

Who may be a victim of job J, and the `PreemptCause` each rule gives:
- a gang of lower priority class (the issue: "a pending job may preempt
  lower-priority work"; `preemptible` is not needed for that, it lets a gang run in
  backfill gaps and on spot), in J's team, or in a team with no quota, or in a team
  that is borrowing from J's cohort: HIGHER_PRIORITY;
- any gang of a team borrowing from J's cohort, when J is within its own team's
  nominal quota: the lender reclaims what it lent, QUOTA_RECLAIM;
- a gang backfilled onto a reservation (opportunistic) of J's class or lower:
  BACKFILL_EVICTION;
- with `longer`, a preemptible gang of J's class, in J's team or borrowing from its
  cohort, with far more work left than J and a fresh checkpoint: SHORTER_WORK.
A team within its nominal quota is never preempted by another team's work.

With `moving=True` the finder looks for gangs to move instead (see `defrag`): any
preemptible single-node gang of J's class or lower, whatever its team: MOVE.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from trainyard.scheduler.model import GangRequest, PreemptCause
from trainyard.scheduler.placement import NO_EXCLUDE, Placement, node_share
from trainyard.scheduler.state import ClusterState, Held

Resources = tuple[float, float, float] | list[float]  # GPUs, CPUs, memory (GB)


def covers(freed: Resources, short: Resources) -> bool:
    return freed[0] >= short[0] - 1e-9 and freed[1] >= short[1] - 1e-9 and freed[2] >= short[2] - 1e-9


@dataclass(frozen=True, slots=True)
class VictimPlan:
    victims: tuple[Held, ...]
    nodes: tuple[int, ...]
    lost_gpu_s: float


class VictimFinder:
    def __init__(self, state: ClusterState, job: GangRequest, now: float, reclaim: bool,
                 use_quotas: bool, scan_nodes: int, fresh: Collection[str] = (),
                 moving: bool = False, longer: tuple[float, float] | None = None) -> None:
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
        self.moving = moving  # victims are moved elsewhere, not made to wait
        # (least remaining GPU-seconds, most seconds lost): same-class work far longer than J,
        # just checkpointed, may give way to it
        self.longer = longer
        self._longer_ok: dict[tuple[str, int, bool, bool], bool] = {}

    def may_evict(self, held: Held) -> bool:
        gang = held.gang
        victim = gang.job
        if victim.id in self.fresh:
            return False
        if self.moving and len(held.nodes) > 1:
            return False
        key = (victim.team, held.level, victim.preemptible, gang.opportunistic)
        found = self._ok.get(key)
        if found is None:
            found = self._ok[key] = self._may_evict(*key)
        if found or self.longer is None or not self._longer_kind(key):
            return found
        least_work, most_lost = self.longer
        if (gang.expected_end - self.now) * max(1, victim.gpus) < least_work:
            return False
        lost = gang.lost_seconds(self.now)
        # lost < time since start: it has checkpointed since it last started, so a gang that
        # gave way once is not sent back before it has made progress
        return lost <= most_lost and lost < self.now - gang.start_time

    def _longer_kind(self, key: tuple[str, int, bool, bool]) -> bool:
        found = self._longer_ok.get(key)
        if found is None:
            team_name, level, preemptible, _ = key
            found = preemptible and level == self.level
            if found and self.use_quotas and team_name != self.job.team:
                quota = self.state.quota
                team = quota.team(team_name)
                found = team.cohort is not None and team.cohort == self.cohort and quota.borrowing(team_name)
            self._longer_ok[key] = found
        return found

    def _may_evict(self, team_name: str, level: int, preemptible: bool, opportunistic: bool) -> bool:
        return self._cause(team_name, level, preemptible, opportunistic) is not None

    def cause(self, held: Held) -> PreemptCause:
        """Why a victim this finder chose may give way to the job."""
        gang = held.gang
        found = self._cause(gang.job.team, held.level, gang.job.preemptible, gang.opportunistic)
        if found is not None:
            return found
        assert self.longer is not None, f"{gang.job.id} was never a victim of {self.job.id}"
        return PreemptCause.SHORTER_WORK  # `may_evict`'s last rule

    def _cause(self, team_name: str, level: int, preemptible: bool, opportunistic: bool) -> PreemptCause | None:
        """The rule that lets a gang of this kind give way to the job (None: none does, short of
        shortest work first). Where two rules do, the first of class, quota, reservation names it."""
        if self.moving:
            return PreemptCause.MOVE if preemptible and level <= self.level else None
        by_class = self._class_or_quota_cause(team_name, level)
        if by_class is None and opportunistic and level <= self.level:
            return PreemptCause.BACKFILL_EVICTION
        return by_class

    def _class_or_quota_cause(self, team_name: str, level: int) -> PreemptCause | None:
        lower = PreemptCause.HIGHER_PRIORITY if level < self.level else None
        if not self.use_quotas or team_name == self.job.team:
            return lower
        quota = self.state.quota
        team = quota.team(team_name)
        if team.gpus is None and team.cpus is None:
            return lower
        if team.cohort is None or team.cohort != self.cohort or not quota.borrowing(team_name):
            return None
        if lower is None and self.reclaim:
            return PreemptCause.QUOTA_RECLAIM
        return lower

    def evictable_gpus(self) -> int:
        """An upper bound on what victims could free, from per-kind counters (no node scan)."""
        return sum(g for kind, g in self.state.held_by_kind.items() if self._kind_ok(kind))

    def _kind_ok(self, kind: tuple[str, int, bool, bool]) -> bool:
        found = self._ok.get(kind)
        if found is None:
            found = self._ok[kind] = self._may_evict(*kind)
        return found or (self.longer is not None and self._longer_kind(kind))

    def cost(self, victims: Collection[Held]) -> float:
        """Work lost since the victims' last checkpoints, in GPU-seconds (a CPU-only gang
        counts as one GPU, so its progress is not free to throw away)."""
        return sum(h.gang.lost_seconds(self.now) * max(1, h.gang.job.gpus) for h in victims)

    def find(self, gid: int, exclude: Collection[int] = NO_EXCLUDE) -> VictimPlan | None:
        fewest = self.state.index.min_nodes(self.job, gid)
        if fewest == 0:
            return None
        if fewest == 1:
            return self._find_one_node(gid, exclude)
        return self._find_whole_nodes(gid, fewest, exclude)

    def _frees(self, held: Held, nid: int) -> Resources:
        """What evicting `held` gives back on node `nid`: (GPUs, CPUs, memory)."""
        gpus = self.state.index.jobs_on[nid][held.gang.job.id][0]
        cpus, memory = node_share(held.gang.job, gpus)
        return (float(gpus), cpus, memory)

    def _candidate_nodes(self, gid: int, exclude: Collection[int]) -> list[int] | None:
        """Nodes of the group holding a gang this job may evict, most free GPUs first; None
        when there are too many to list (then the search walks the free-GPU buckets)."""
        index = self.state.index
        found: set[int] = set()
        limit = 4 * self.scan_nodes
        for kind, where in self.state.nodes_by_kind.items():
            if where and self._kind_ok(kind):
                if len(found) + len(where) > limit:
                    return None
                found.update(where)
        group_of, schedulable, free = index.group_of, index.schedulable, index.free
        nodes = [n for n in found if group_of[n] == gid and schedulable[n] and n not in exclude]
        nodes.sort(key=lambda n: -free[n])
        return nodes

    def _walk(self, gid: int, top: int, exclude: Collection[int]) -> Iterator[int]:
        """Schedulable nodes of the group with at most `top` free GPUs, most free first."""
        candidates = self._candidate_nodes(gid, exclude)
        if candidates is not None:
            free = self.state.index.free
            yield from (n for n in candidates if free[n] <= top)
            return
        buckets = self.state.index.groups[gid].buckets
        for f in range(top, -1, -1):
            nodes = buckets[f]
            if self.longer is not None and len(nodes) > self.scan_nodes:
                # Start somewhere new each search: the nodes near the front of a set are
                # always the same ones, and their gangs' checkpoints are not always fresh.
                order = list(nodes)
                start = (zlib.crc32(self.job.id.encode()) + int(self.now)) % len(order)
                nodes = itertools.chain(order[start:], order[:start])  # type: ignore[assignment]
            for nid in nodes:
                if nid not in exclude:
                    yield nid

    def _find_one_node(self, gid: int, exclude: Collection[int]) -> VictimPlan | None:
        """Nodes with the most free GPUs first (they need the least freed); one victim is
        the best there is, so stop once a few one-victim choices have been seen.

        A node is short of whatever the gang needs and it lacks: GPUs, and CPUs and
        memory where the node tracks them; victims must cover every shortfall."""
        index = self.state.index
        group = index.groups[gid]
        running = self.state.running
        job = self.job
        extras = bool(job.cpus or job.memory_gb)
        # Without CPU or memory asks, a node with enough free GPUs already fits: skip it.
        top = group.gpus_per_node if extras else min(job.gpus - 1, group.gpus_per_node)
        best: tuple[int, float, list[Held], int] | None = None
        singles = 0
        scanned = 0
        for nid in self._walk(gid, top, exclude):
            if extras:
                short = index.shortfall(job, nid, job.gpus)
                if not any(short):
                    continue  # room already (the placement search left it for a reason)
            else:
                short = (float(job.gpus - index.free[nid]), 0.0, 0.0)
            scanned += 1
            single: tuple[float, Held] | None = None
            cands: list[tuple[Held, Resources]] = []
            total = [0.0, 0.0, 0.0]
            for job_id, (gpus, _) in index.jobs_on[nid].items():
                held = running.get(job_id)  # None: room held for a gang being moved
                if held is None or not self.may_evict(held):
                    continue
                frees = self._frees(held, nid) if extras else (float(gpus), 0.0, 0.0)
                cands.append((held, frees))
                for i in range(3):
                    total[i] += frees[i]
                if covers(frees, short):
                    lost = self.cost((held,))
                    if single is None or lost < single[0]:
                        single = (lost, held)
            if single is not None:
                singles += 1
                if best is None or (1, single[0]) < best[:2]:
                    best = (1, single[0], [single[1]], nid)
            elif covers(total, short) and (best is None or best[0] > 1):
                chosen = self._smallest_set(cands, short)
                if chosen is not None:
                    rank = (len(chosen), self.cost(chosen))
                    if best is None or rank < best[:2]:
                        best = (*rank, chosen, nid)
            if singles >= (2 if self.longer else 16) or scanned >= self.scan_nodes:
                break
        if best is None:
            return None
        return VictimPlan(tuple(best[2]), (best[3],), best[1])

    def _smallest_set(self, cands: list[tuple[Held, Resources]], short: Resources) -> list[Held] | None:
        """The fewest gangs that together cover `short`, and of those the cheapest to lose."""
        if not covers([sum(c[1][i] for c in cands) for i in range(3)], short):
            return None
        # The fewest gangs that could cover each shortfall on its own: a lower bound on the count.
        fewest = 1
        for r in range(3):
            if short[r] > 0:
                acc, count = 0.0, 0
                for size in sorted((c[1][r] for c in cands), reverse=True):
                    acc += size
                    count += 1
                    if acc >= short[r] - 1e-9:
                        break
                fewest = max(fewest, count)
        if fewest == len(cands):
            return [c[0] for c in cands]
        if len(cands) > 10:  # too many to try every set: largest first by what they cover
            def weight(frees: Resources) -> float:
                return sum(min(1.0, frees[r] / short[r]) for r in range(3) if short[r] > 0)

            acc3 = [0.0, 0.0, 0.0]
            greedy: list[Held] = []
            for held, frees in sorted(cands, key=lambda c: -weight(c[1])):
                greedy.append(held)
                for r in range(3):
                    acc3[r] += frees[r]
                if covers(acc3, short):
                    break
            return greedy
        for k in range(fewest, len(cands) + 1):
            best: tuple[float, tuple[int, ...]] | None = None
            for combo in itertools.combinations(range(len(cands)), k):
                freed = [sum(cands[i][1][r] for i in combo) for r in range(3)]
                if covers(freed, short):
                    lost = self.cost([cands[i][0] for i in combo])
                    if best is None or lost < best[0]:
                        best = (lost, combo)
            if best is not None:
                return [cands[i][0] for i in best[1]]
        return None

    def _find_whole_nodes(self, gid: int, fewest: int, exclude: Collection[int]) -> VictimPlan | None:
        """Multi-node gangs take whole nodes: free the cheapest `fewest` nodes."""
        index = self.state.index
        group = index.groups[gid]
        job = self.job
        per_node = index.per_node(job, group.gpus_per_node)
        running = self.state.running
        options: list[tuple[int, float, int, list[Held]]] = []
        scanned = 0
        for nid in itertools.islice(group.buckets[group.gpus_per_node], fewest):  # free already
            if nid not in exclude and not any(index.shortfall(job, nid, per_node)):
                options.append((0, 0.0, nid, []))
        for nid in self._walk(gid, group.gpus_per_node, exclude):
            scanned += 1
            short = index.shortfall(job, nid, per_node)
            if not any(short):
                continue  # counted above, or beyond the few free nodes needed
            cands = []
            for job_id in index.jobs_on[nid]:
                held = running.get(job_id)  # None: room held for a gang being moved
                if held is not None and self.may_evict(held):
                    cands.append((held, self._frees(held, nid)))
                elif index.jobs_on[nid][job_id][0]:
                    cands = []  # it holds GPUs the gang needs and may not be evicted
                    break
            chosen = self._smallest_set(cands, short) if cands else None
            if chosen is not None:
                options.append((len(chosen), self.cost(chosen), nid, chosen))
            if scanned >= self.scan_nodes:
                break
        if len(options) < fewest:
            return None
        options.sort(key=lambda o: (o[0], o[1]))
        picked = options[:fewest]
        victims: dict[str, Held] = {}
        for _, _, _, chosen in picked:
            for h in chosen:
                victims[h.gang.job.id] = h
        held_list = list(victims.values())
        return VictimPlan(tuple(held_list), tuple(o[2] for o in picked), self.cost(held_list))

    def placement_on(self, plan: VictimPlan, gid: int) -> Placement:
        """Where the gang goes once the plan's victims are gone."""
        index = self.state.index
        if len(plan.nodes) == 1:
            return [(plan.nodes[0], self.job.gpus)]
        per_node = index.per_node(self.job, index.groups[gid].gpus_per_node)
        out = []
        left = self.job.gpus
        for nid in plan.nodes:
            take = min(left, per_node)
            out.append((nid, take))
            left -= take
        return out
