"""One scheduling cycle: walk the queue in policy order, admit what fits, preempt
what must give way, hold a reservation for the head, and say why the rest wait.

`schedule(snapshot)` is the pure entry point the control loop calls. The
simulator keeps a `ClusterState` and a `PendingQueue` alive between cycles and
calls `Policy.cycle` directly: the decisions come from the same code.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import NamedTuple

from trainyard.scheduler.backfill import NodeReservation, reserve
from trainyard.scheduler.defrag import hold_room, release
from trainyard.scheduler.explain import describe_need, describe_preemption, describe_room
from trainyard.scheduler.model import (
    Admit,
    ClusterSnapshot,
    Decisions,
    GangRequest,
    Preempt,
    PreemptCause,
    Reservation,
    RunningGang,
)
from trainyard.scheduler.placement import NO_EXCLUDE, Placement
from trainyard.scheduler.preemption import VictimFinder, VictimPlan
from trainyard.scheduler.queue import (
    FIFO_TEAM,
    NO_SKIP,
    Entry,
    Lane,
    Ordering,
    PendingQueue,
    lane_of,
)
from trainyard.scheduler.quota import BLOCKED, BORROW, WITHIN, QuotaVerdict
from trainyard.scheduler.state import ClusterState

INF = float("inf")
_WITHIN = QuotaVerdict(WITHIN)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    name: str = "trainyard"
    ordering: Ordering = field(default_factory=Ordering)
    quotas: bool = True
    preemption: bool = True
    backfill: bool = True
    strict: bool = False  # stop at the first job that does not fit (plain FIFO)
    max_considered: int = 1000  # jobs looked at per cycle (Slurm's bf_max_job_test)
    max_preemption_attempts: int = 96  # victim searches per cycle
    victim_scan_nodes: int = 256  # nodes looked at per victim search
    look_past_full: int = 64  # jobs looked at after nothing fits, for preemption chances
    give_up_after: int = 0  # jobs in a row that changed nothing end the cycle (0: never)
    weigh_victims: bool = True  # wait for victims' checkpoints when that costs the job less
    defragment: bool = True  # move small preemptible gangs to make whole nodes (see defrag.py)
    max_move_searches: int = 16  # defragmentation searches per cycle
    # Shortest work first, by preemption: a preemptible gang of the job's class, in its team or
    # borrowing from its cohort, with `longer_ratio` × the job's expected GPU-seconds still to go
    # and at most `longer_max_lost_s` since its checkpoint, gives way to it (0: never).
    longer_ratio: float = 4.0
    longer_max_lost_s: float = 300.0
    explain: bool = True  # write a reason for every pending job (the simulator turns it off)


FIFO = PolicyConfig("fifo", Ordering(fair=False), quotas=False, preemption=False, backfill=False,
                    strict=True, defragment=False)
BACKFILL = PolicyConfig("backfill", Ordering(fair=False), quotas=False, preemption=False,
                        defragment=False)
TRAINYARD = PolicyConfig()
PRESETS = {p.name: p for p in (FIFO, BACKFILL, TRAINYARD)}


def _extras(job: GangRequest) -> tuple[float, ...]:
    """Per-cycle "no room" and "no victims" results carry over from a gang to any larger one
    of the same kind; with CPUs or memory asked, only to the same shape (a larger gang
    spread over more nodes asks less of each)."""
    return (job.gpus, job.cpus, job.memory_gb) if job.cpus or job.memory_gb else ()


def worth_preempting(job: GangRequest, plan: VictimPlan, now: float) -> bool:
    """Preempt now only if the victims lose no more than the job gains over waiting.

    The alternative to preempting now is preempting once every victim has taken its next
    checkpoint (or ended), when they lose (almost) nothing: that costs the pending job
    `gpus × seconds until the last victim's checkpoint`. Preempting now costs the
    victims the GPU-seconds since their last checkpoints. A victim whose checkpoint
    period is unknown cannot be waited for, so it never holds the job back."""
    wait = 0.0
    for held in plan.victims:
        gang = held.gang
        every = gang.checkpoint_every_s
        if not every:
            return True
        until = every - gang.lost_seconds(now) % every
        wait = max(wait, min(until, max(0.0, gang.expected_end - now)))  # or it ends first
    return plan.lost_gpu_s <= max(1, job.gpus) * wait


def _preempt(cause: PreemptCause, gang: RunningGang, job: GangRequest | None, now: float, node: str = "",
             job_nodes: int = 0) -> Preempt:
    reason = describe_preemption(cause, gang, job, now, node, job_nodes)
    return Preempt(gang.job.id, "" if job is None else job.id, cause, reason)


def reclaim_spot_node(state: ClusterState, node: str, now: float) -> list[Preempt]:
    """A spot node taken back: nothing new lands there and its gangs stop, whole. The caller
    queues them again, as it does the victims of a cycle."""
    return [_preempt(PreemptCause.SPOT_RECLAIM, gang, None, now, node) for gang in state.reclaim_node(node)]


def _cheapest_plan(finder: VictimFinder, groups: list[int], exclude: Collection[int] = NO_EXCLUDE,
                   empty_ok: bool = True) -> tuple[VictimPlan, int] | None:
    """Over the groups, the plan with the fewest victims, then the least work lost (and its
    group). `empty_ok=False` skips plans that stop nothing."""
    best: tuple[VictimPlan, int] | None = None
    for gid in groups:
        plan = finder.find(gid, exclude)
        if plan is None or not (empty_ok or plan.victims):
            continue
        if best is None or (len(plan.victims), plan.lost_gpu_s) < (len(best[0].victims), best[0].lost_gpu_s):
            best = (plan, gid)
    return best


class Policy:
    def __init__(self, config: PolicyConfig = TRAINYARD) -> None:
        self.config = config

    def new_queue(self, state: ClusterState) -> PendingQueue:
        return PendingQueue(self.config.ordering, state.priority)

    def cycle(self, state: ClusterState, queue: PendingQueue, now: float) -> Decisions:
        """Decide, and apply the decisions to `state` and `queue` (victims leave `state`;
        the caller re-queues them, with their checkpoints, when it has stopped them)."""
        state.quota.advance(now, self.config.ordering.fair_share_half_life_s)
        return _Cycle(self.config, state, queue, now).run()


def schedule(snapshot: ClusterSnapshot, config: PolicyConfig = TRAINYARD) -> Decisions:
    """Pure entry point: a snapshot of the cluster in, admissions, preemptions and reasons out."""
    state = ClusterState(snapshot.nodes, snapshot.teams, snapshot.priority_classes)
    for gang in snapshot.running:
        state.add_running(gang)
    if snapshot.usage:
        state.quota.set_history(snapshot.usage, snapshot.now)
    policy = Policy(config)
    queue = policy.new_queue(state)
    for job in snapshot.pending:
        queue.push(job)
    return policy.cycle(state, queue, snapshot.now)


_Kind = tuple[object, ...]  # the traits of a gang a search's result holds for (the `sig`s below)


@dataclass(slots=True)
class _Walk:
    """Where the walk through the queue is, and what of the queue it skips this cycle."""

    # teams with work left, a heap by `_team_key`
    teams: list[tuple[tuple[float, ...], str]] = field(default_factory=list)
    current: str = ""  # the team whose head is being considered
    hopeless: dict[str, set[Lane]] = field(default_factory=dict)  # team -> lanes that found no room
    # (team, lane) -> the job whose failure made the walk skip the lane
    first_failed: dict[tuple[str, Lane], GangRequest] = field(default_factory=dict)
    quota_blocked: dict[str, int] = field(default_factory=dict)  # team -> fewest GPUs its quota refused
    stopped_by: GangRequest | None = None  # strict FIFO: the head the walk stopped at


@dataclass(slots=True)
class _Misses:
    """Searches that found nothing this cycle: kind of gang -> fewest GPUs that failed. A larger
    gang of the same kind would fail too, so it is not searched for again."""

    room: dict[_Kind, int] = field(default_factory=dict)  # no free placement
    victims: dict[_Kind, int] = field(default_factory=dict)  # no gangs to preempt for it
    moves: dict[_Kind, int] = field(default_factory=dict)  # no gangs to move for it


@dataclass(slots=True)
class _Moves:
    """Defragmentation this cycle (see defrag.py)."""

    # jobs that found no room and no victims, in the order the walk met them
    candidates: list[tuple[GangRequest, list[int], QuotaVerdict]] = field(default_factory=list)
    # room held in the node index for the gangs being moved, given back at the end of the cycle
    held_rooms: list[tuple[GangRequest, Placement]] = field(default_factory=list)
    searches: int = 0  # of `max_move_searches`


class _Step(NamedTuple):
    """What considering one job says about the walk."""

    go_on: bool  # False stops the walk
    lane_fails: bool = False  # the rest of the job's lane would fail alike: skip it this cycle


class _Cycle:
    """One walk over the queue; everything it learns lives only as long as the cycle."""

    def __init__(self, config: PolicyConfig, state: ClusterState, queue: PendingQueue,
                 now: float) -> None:
        self.c = config
        self.state = state
        self.queue = queue
        self.now = now
        self.out = Decisions()
        self.reservation: NodeReservation | None = None
        self.admitted: set[str] = set()  # ids admitted this cycle: not started yet, never victims
        self.walk = _Walk()
        self.misses = _Misses()
        self.victim_searches = 0  # of `max_preemption_attempts`
        self.moves = _Moves()
        # describe_room's text per shape of job, until an admission changes the room
        self.room_texts: dict[tuple[object, ...], str] = {}

    # -- the walk ----------------------------------------------------------------

    def run(self) -> Decisions:
        queue = self.queue
        tried: list[Entry] = []
        self.walk.teams = [(self._team_key(t), t) for t in queue.heaps if queue.head(t) is not None]
        self.walk.current = ""
        heapq.heapify(self.walk.teams)
        considered = 0
        full_since = -1  # jobs considered when nothing was left to place
        out = self.out
        give_up = self.c.give_up_after or INF
        changed_at = 0  # jobs considered when the last admission or preemption was made
        decided = 0
        reached_all = True  # False when the walk stopped with jobs that might fit unseen
        while self.walk.teams:
            _, team = heapq.heappop(self.walk.teams)
            skip = self.walk.hopeless.setdefault(team, set())
            if queue.head(team, skip) is None:
                continue
            entry = queue.pop(team, skip)
            tried.append(entry)
            considered += 1
            self.walk.current = team
            step = self._consider(entry[2])
            if step.lane_fails:
                lane = lane_of(entry[2])
                skip.add(lane)
                self.walk.first_failed.setdefault((team, lane), entry[2])
            if queue.head(team, skip) is not None and not self._team_blocked(team):
                heapq.heappush(self.walk.teams, (self._team_key(team), team))
            if not step.go_on or considered >= self.c.max_considered:
                reached_all = False
                break
            if len(out.admit) + len(out.preempt) != decided:
                decided = len(out.admit) + len(out.preempt)
                changed_at = considered
            elif considered - changed_at >= give_up:
                reached_all = False
                break  # the rest of the queue is no likelier to fit than what was just tried
            if full_since < 0 and self._nothing_fits():
                full_since = considered
                if self._nothing_can_change():
                    break
            # Once nothing fits, look a little further only for preemption chances.
            if full_since >= 0 and considered - full_since >= self.c.look_past_full:
                break
        if reached_all or self._nothing_fits():
            self._defragment()
        release(self.state.index, self.moves.held_rooms)
        queue.put_back(tried)
        if self.reservation is not None:
            r = self.reservation
            names = self.state.index.nodes
            self.out.reservation = Reservation(r.job_id, r.at, tuple(sorted(names[n].name for n in r.nodes)))
        if self.c.explain:
            self._explain_rest()
        return self.out

    def _team_key(self, team: str) -> tuple[float, ...]:
        """Which team's head the walk takes next, within a priority class:

        1. jobs starving past the limit, whatever their team;
        2. teams within their nominal quota, by dominant resource share (DRF);
        3. teams over their quota that have held less than it on average lately (a light
           team in a burst), then 4. every other team over its quota: by their heads' keys,
           so borrowed capacity goes to the smallest expected work first.

        With `borrow_by_size` off, DRF orders every team. DRF over borrowers makes a
        heavy team's 10-minute jobs wait behind a lighter team's day-long ones; job size
        over borrowers, without step 3, starved light teams in bursts (on the scaled Philly
        trace three fell to 83-89 % of their demand)."""
        queue = self.queue
        head = queue.head(team, self.walk.hopeless.get(team, NO_SKIP))
        assert head is not None
        o = queue.ordering
        if not o.fair:
            return (head[0],)
        job = head[2]
        if self.now - job.submit_time > o.starve_after_s:
            return (0.0, 0.0, 0.0, head[0])
        quota = self.state.quota
        if o.borrow_by_size and self.c.quotas:
            nominal = quota.team(team).gpus
            if nominal is not None and quota.used_gpus[team] >= nominal:
                light = quota.average_gpus(team) < nominal
                return (1.0, -self.state.priority(job), 1.0 if light else 2.0, head[0])
            return (1.0, -self.state.priority(job), 0.0, quota.share(team), head[0])
        return (1.0, -self.state.priority(job), quota.share(team), head[0])

    def _team_blocked(self, team: str) -> bool:
        """Its quota refused a gang no larger than any it has waiting: skip the rest."""
        blocked = self.walk.quota_blocked.get(team)
        if blocked is None:
            return False
        smallest = self.queue.smallest_gpus(team)
        return smallest is None or smallest >= blocked

    def _refresh_team_keys(self) -> None:
        """Preemption freed room and changed teams' usage: no lane is known to be
        hopeless any more; re-rank every team with work left (but the one being walked)."""
        self.walk.hopeless.clear()
        queue = self.queue
        self.walk.teams = [(self._team_key(t), t) for t in queue.heaps
                       if t != self.walk.current and queue.head(t) is not None and not self._team_blocked(t)]
        heapq.heapify(self.walk.teams)

    def _nothing_fits(self) -> bool:
        """No free block is as large as the smallest pending gang."""
        smallest = self.queue.smallest_gpus()
        if smallest is None:
            return True
        for group in self.state.index.groups:
            if group.free_gpus >= smallest:
                for f in range(group.gpus_per_node, smallest - 1, -1):
                    if group.buckets[f]:
                        return False
        return True

    def _nothing_can_change(self) -> bool:
        return (not self.c.preemption or self.victim_searches >= self.c.max_preemption_attempts) and (
            self.reservation is not None or not self.c.backfill)

    # -- one job -----------------------------------------------------------------

    def _consider(self, job: GangRequest) -> _Step:
        """Admit, preempt for, reserve for, or explain one job."""
        state = self.state
        groups = state.index.eligible_groups(job)
        if not groups:
            self._wait(job, lambda: f"{describe_need(state.index, job)}; no node in the cluster matches")
            return _Step(not self.c.strict)
        if job.gpus >= self.walk.quota_blocked.get(job.team, INF):
            self._wait(job, lambda: self._quota_reason(job))
            return _Step(True, lane_fails=True)
        verdict = state.quota.check(job, why=self.c.explain) if self.c.quotas else _WITHIN
        if verdict.kind == BLOCKED:
            self.walk.quota_blocked[job.team] = min(job.gpus, self.walk.quota_blocked.get(job.team, job.gpus))
            self._wait(job, lambda: f"{describe_need(state.index, job)}; {verdict.reason}")
            return _Step(True, lane_fails=True)
        placed = self._place(job, groups)
        if placed is not None:
            self._admit(job, placed[0], verdict.kind == BORROW, placed[1])
            return _Step(True)
        if self.c.preemption and self._preempt_for(job, groups, verdict):
            return _Step(True)
        if self.c.defragment and len(self.moves.candidates) < self.c.max_move_searches:
            self.moves.candidates.append((job, groups, verdict))
        if self.c.strict:
            self.walk.stopped_by = job
            self._wait(job, lambda: f"{describe_need(state.index, job)}; head of the queue, "
                                    f"{self._room(job, groups)}")
            return _Step(False)
        # No room on any node it may use and no victims: the same for its whole lane.
        lane_fails = self._searched_every_node(job)
        if self.c.backfill and self.reservation is None:
            self.reservation = reserve(state, job, groups, self.now)
            if self.reservation is not None:
                r = self.reservation
                when = "when they drain" if r.at == INF else f"in {r.at - self.now:,.0f} s"
                self._wait(job, lambda: f"{describe_need(state.index, job)}; "
                                        f"{self._room(job, groups)}; holds the reservation: "
                                        f"{len(r.nodes)} node(s) expected free {when}")
                return _Step(True, lane_fails)
        self._wait(job, lambda: f"{describe_need(state.index, job)}; "
                                f"{self._room(job, groups)}")
        return _Step(True, lane_fails)

    def _kept_off_reservation(self, job: GangRequest) -> bool:
        """The reservation's nodes are closed to the job: it could delay the head."""
        r = self.reservation
        return r is not None and not r.admits(job, self.now)

    def _searched_every_node(self, job: GangRequest) -> bool:
        """Jobs of one lane differ in expected duration, so in what the reservation lets them use;
        a failure says the same of the whole lane only when every node was searched."""
        return not self._kept_off_reservation(job) or (job.preemptible and self.c.preemption)

    def _place(self, job: GangRequest, groups: list[int]) -> tuple[Placement, bool] | None:
        """A placement, and whether it sits opportunistically on the reservation's nodes."""
        r = self.reservation
        blocked = self._kept_off_reservation(job)
        exclude = r.nodes if r is not None and blocked else NO_EXCLUDE
        sig = (job.gpu_type, job.zone, job.allow_spot, job.gpus_per_worker, job.max_nodes, blocked,
               *_extras(job))
        if job.gpus >= self.misses.room.get(sig, INF):
            return None
        index = self.state.index
        for gid in groups:
            p = index.find(job, gid, exclude)
            if p is not None:
                return p, False
        if blocked and job.preemptible and self.c.preemption:  # the head must be able to evict it
            for gid in groups:
                p = index.find(job, gid)
                if p is not None:
                    return p, True
        self.misses.room[sig] = job.gpus
        return None

    def _admit(self, job: GangRequest, placement: Placement, borrowing: bool,
               opportunistic: bool) -> None:
        gang = self.state.start(job, placement, self.now, opportunistic=opportunistic)
        self.queue.remove(job.id)
        self.admitted.add(job.id)
        self.room_texts.clear()
        self.out.admit.append(Admit(job.id, gang.placement, borrowing, opportunistic))

    def _room(self, job: GangRequest, groups: list[int]) -> str:
        """What the cluster has for this job's shape (once per shape per cycle: it may scan nodes)."""
        key = (tuple(groups), job.gpus, job.cpus, job.memory_gb, job.gpus_per_worker, job.max_nodes)
        text = self.room_texts.get(key)
        if text is None:
            text = self.room_texts[key] = describe_room(self.state.index, groups, job)
        return text

    def _wait(self, job: GangRequest, reason: Callable[[], str]) -> None:
        if self.c.explain:
            self.out.reasons[job.id] = reason()

    def _quota_reason(self, job: GangRequest) -> str:
        verdict = self.state.quota.check(job)
        return f"{describe_need(self.state.index, job)}; {verdict.reason}"

    # -- preemption --------------------------------------------------------------

    def _preempt_for(self, job: GangRequest, groups: list[int], verdict: QuotaVerdict) -> bool:
        if self.victim_searches >= self.c.max_preemption_attempts:
            return False
        state = self.state
        reclaim = verdict.kind == WITHIN and state.quota.team(job.team).gpus is not None
        sig = (job.team, state.priority(job), job.gpu_type, job.zone, job.allow_spot, reclaim,
               job.gpus_per_worker, job.max_nodes, *_extras(job))
        if job.gpus >= self.misses.victims.get(sig, INF):
            return False
        longer = None
        if self.c.longer_ratio and job.expected_duration is not None:
            longer = (self.c.longer_ratio * job.expected_duration * max(1, job.gpus), self.c.longer_max_lost_s)
        finder = VictimFinder(state, job, self.now, reclaim, self.c.quotas, self.c.victim_scan_nodes,
                              self.admitted, longer=longer)
        if finder.evictable_gpus() + state.index.free_gpus < job.gpus:
            self.misses.victims[sig] = job.gpus
            return False
        self.victim_searches += 1
        best = _cheapest_plan(finder, groups)
        if best is None or not self._quota_allows(job, best[0]):
            self.misses.victims[sig] = job.gpus
            return False
        plan, gid = best
        if self.c.weigh_victims and not worth_preempting(job, plan, self.now):
            return False
        causes = [finder.cause(held) for held in plan.victims]  # before stopping changes who borrows
        for held, cause in zip(plan.victims, causes, strict=True):
            state.stop(held.gang.job.id)
            self.out.preempt.append(_preempt(cause, held.gang, job, self.now))
        self._refresh_team_keys()
        borrowing = self.c.quotas and state.quota.check(job, why=False).kind == BORROW
        self._admit(job, finder.placement_on(plan, gid), borrowing, False)
        return True

    def _defragment(self) -> None:
        """GPUs are free that no waiting job could use where they are: move small gangs so
        the jobs that found no room, in the order the walk met them, can start.

        Only once the walk has placed everything that fits as things stand, so moving
        never takes GPUs that a waiting small job would have had."""
        for job, groups, verdict in self.moves.candidates:
            if self._move_for(job, groups, verdict):
                self.out.reasons.pop(job.id, None)
                r = self.reservation
                if r is not None and r.job_id == job.id:
                    self.reservation = None

    def _move_for(self, job: GangRequest, groups: list[int], verdict: QuotaVerdict) -> bool:
        """Enough GPUs are free, but not on few enough nodes: move small gangs off the nodes
        this job needs, to free GPUs elsewhere (see defrag.py)."""
        if self.moves.searches >= self.c.max_move_searches:
            return False
        state = self.state
        index = state.index
        roomy = [g for g in groups if index.groups[g].free_gpus >= job.gpus]
        if not roomy:
            return False
        sig = (state.priority(job), job.gpu_type, job.zone, job.allow_spot, job.gpus_per_worker,
               job.max_nodes, *_extras(job))
        if job.gpus >= self.misses.moves.get(sig, INF):
            return False
        self.moves.searches += 1
        r = self.reservation
        kept_off = r is not None and r.job_id != job.id and not r.admits(job, self.now)
        exclude = r.nodes if r is not None and kept_off else NO_EXCLUDE
        finder = VictimFinder(state, job, self.now, False, self.c.quotas, self.c.victim_scan_nodes,
                              self.admitted, moving=True)
        best = _cheapest_plan(finder, roomy, exclude, empty_ok=False)
        if best is None:
            self.misses.moves[sig] = job.gpus
            return False
        plan, gid = best
        if self.c.weigh_victims and not worth_preempting(job, plan, self.now):
            return False
        held_rooms = hold_room(index, gid, plan, exclude)
        if held_rooms is None:
            self.misses.moves[sig] = job.gpus
            return False
        self.moves.held_rooms.extend(held_rooms)
        names = index.nodes
        for held in plan.victims:
            state.stop(held.gang.job.id)
            self.out.preempt.append(_preempt(PreemptCause.MOVE, held.gang, job, self.now,
                                             node=names[held.nodes[0][0]].name, job_nodes=len(plan.nodes)))
        self._admit(job, finder.placement_on(plan, gid), verdict.kind == BORROW, False)
        return True

    def _quota_allows(self, job: GangRequest, plan: VictimPlan) -> bool:
        if not self.c.quotas:
            return True
        quota = self.state.quota
        cohort = quota.team(job.team).cohort
        team_g = team_c = cohort_g = cohort_c = 0.0
        for held in plan.victims:
            v = held.gang.job
            if v.team == job.team:
                team_g += v.gpus
                team_c += v.cpus
            if cohort is not None and quota.team(v.team).cohort == cohort:
                cohort_g += v.gpus
                cohort_c += v.cpus
        verdict = quota.check(job, (int(team_g), team_c), (int(cohort_g), cohort_c), why=False)
        return verdict.kind != BLOCKED

    # -- the rest of the queue ----------------------------------------------------

    def _explain_rest(self) -> None:
        behind = self.walk.stopped_by
        for job in self.queue.in_order():
            if job.id in self.out.reasons:
                continue
            need = describe_need(self.state.index, job)
            team = job.team if self.queue.ordering.fair else FIFO_TEAM
            failed = self.walk.first_failed.get((team, lane_of(job)))
            if behind is not None:
                self.out.reasons[job.id] = f"{need}; queued behind {behind.id} (first in, first out)"
            elif failed is not None:  # skipped: what held back the first of its lane holds it back
                if job.gpus >= self.walk.quota_blocked.get(job.team, INF):
                    self.out.reasons[job.id] = self._quota_reason(job)
                else:
                    groups = self.state.index.eligible_groups(job)
                    self.out.reasons[job.id] = f"{need}; {self._room(job, groups)}"
            else:
                self.out.reasons[job.id] = f"{need}; not reached this cycle"
