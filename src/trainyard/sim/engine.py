"""A discrete-event replay of a trace through the scheduling policy, in simulated time.

Arrivals, completions and spot reclaims change the modelled cluster; a
scheduling cycle runs after a change, at most once per `cycle_interval_s` of
simulated time (as a control loop would). Each cycle is timed on the wall clock:
that is the scheduler's cost per cycle.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from trainyard.scheduler.model import GangRequest, Team
from trainyard.scheduler.policy import Policy, PolicyConfig, reclaim_spot_node
from trainyard.scheduler.state import ClusterState
from trainyard.sim.cluster import ClusterShape
from trainyard.sim.trace import TraceJob

INF = float("inf")
FINISH, RECLAIM, RESTORE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class SimOptions:
    cycle_interval_s: float = 30.0
    checkpoint_every_s: float = 1800.0  # jobs checkpoint this often; a preemption loses the rest
    restart_s: float = 60.0  # a stopped job spends this long starting again (launch, restore)
    spot_reclaims_per_hour: float = 0.0  # across the spot pool
    spot_outage_s: float = 3600.0  # a reclaimed spot node comes back after this
    seed: int = 0


@dataclass(slots=True)
class JobRecord:
    trace: TraceJob
    request: GangRequest
    remaining: float
    first_start: float | None = None
    start: float = 0.0
    finish: float | None = None
    attempt: int = 0
    preemptions: int = 0


@dataclass(slots=True)
class CycleSample:
    wall_s: float
    pending: int
    decisions: int


@dataclass(slots=True)
class ReplayResult:
    policy: str
    total_gpus: int
    jobs: list[JobRecord]
    window: tuple[float, float]  # first and last submit
    busy_gpu_s: float = 0.0
    window_busy_gpu_s: float = 0.0  # while the trace is still arriving
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (time, busy GPUs)
    cycles: list[CycleSample] = field(default_factory=list)
    preemptions: int = 0
    moves: int = 0  # of the preemptions, gangs moved to defragment nodes
    spot_evictions: int = 0
    lost_gpu_s: float = 0.0
    team_window_gpu_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    teams: list[Team] = field(default_factory=list)
    wall_s: float = 0.0


def request_for(job: TraceJob, allow_spot: bool) -> GangRequest:
    return GangRequest(
        id=job.id, gpus=job.gpus, team=job.team, priority=job.priority,
        submit_time=job.submit_time, expected_duration=job.expected_duration,
        preemptible=job.preemptible, allow_spot=allow_spot and job.preemptible,
    )


class Replay:
    def __init__(self, jobs: list[TraceJob], shape: ClusterShape, config: PolicyConfig,
                 teams: list[Team], options: SimOptions = SimOptions()) -> None:
        jobs = sorted(jobs, key=lambda j: j.submit_time)
        self.shape = shape
        self.options = options
        self.policy = Policy(replace(config, explain=False))
        self.state = ClusterState(shape.build(), teams if config.quotas else ())
        self.queue = self.policy.new_queue(self.state)
        spot = shape.spot_fraction > 0
        self.records = [JobRecord(j, request_for(j, spot), j.duration) for j in jobs]
        self.by_id = {r.request.id: r for r in self.records}
        window = (jobs[0].submit_time, jobs[-1].submit_time) if jobs else (0.0, 0.0)
        self.result = ReplayResult(config.name, shape.total_gpus, self.records, window, teams=teams)
        self.events: list[tuple[float, int, int, str]] = []
        self.seq = 0
        self.now = 0.0
        self.busy = 0
        self.rng = random.Random(options.seed)
        self.spot_nodes = [n.name for n in self.state.index.nodes if n.pool == "spot"]

    # -- the loop ----------------------------------------------------------------

    def run(self, on_progress: Callable[[int], None] | None = None) -> ReplayResult:
        started = time.perf_counter()
        records = self.records
        arrivals = 0
        next_cycle = INF
        last_cycle = -INF
        interval = self.options.cycle_interval_s
        if self.spot_nodes and self.options.spot_reclaims_per_hour > 0:
            self._push(self._next_reclaim(0.0), RECLAIM, "")
        while True:
            t_arrive = records[arrivals].trace.submit_time if arrivals < len(records) else INF
            t_event = self.events[0][0] if self.events else INF
            if t_arrive == INF and next_cycle == INF and not self.state.running \
                    and all(e[1] == RECLAIM for e in self.events):
                break  # nothing left but spot reclaims: the replay is over
            t = min(t_arrive, t_event, next_cycle)
            if t == INF:
                break
            self._advance(t)
            if t_event == t:
                _, kind, _, payload = heapq.heappop(self.events)
                if self._handle(kind, payload):
                    next_cycle = min(next_cycle, max(t, last_cycle + interval))
            elif t_arrive == t:
                self.queue.push(records[arrivals].request)
                arrivals += 1
                if on_progress is not None and arrivals % 2000 == 0:
                    on_progress(arrivals)
                next_cycle = min(next_cycle, max(t, last_cycle + interval))
            else:
                self._cycle()
                last_cycle = t
                next_cycle = INF
        if on_progress is not None:
            on_progress(arrivals)
        self.result.wall_s = time.perf_counter() - started
        return self.result

    def _advance(self, t: float) -> None:
        if t > self.now:
            self.result.busy_gpu_s += self.busy * (t - self.now)
            lo, hi = self.result.window
            overlap = min(t, hi) - max(self.now, lo)
            if overlap > 0:
                self.result.window_busy_gpu_s += self.busy * overlap
            self.now = t

    def _push(self, t: float, kind: int, payload: str) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, kind, self.seq, payload))

    def _handle(self, kind: int, payload: str) -> bool:
        """Apply one event; True when the queue may now move."""
        if kind == FINISH:
            job_id, _, attempt = payload.rpartition("#")
            record = self.by_id[job_id]
            stale = record.finish is not None or record.attempt != int(attempt)
            if stale or job_id not in self.state.running:
                return False
            self.state.stop(job_id)
            self._stopped(record)
            record.remaining = 0.0
            record.finish = self.now
            return len(self.queue) > 0
        if kind == RECLAIM:
            self._reclaim()
            self._push(self._next_reclaim(self.now), RECLAIM, "")
            return True
        self.state.restore_node(payload)
        return len(self.queue) > 0

    def _cycle(self) -> None:
        pending = len(self.queue)
        t0 = time.perf_counter()
        decisions = self.policy.cycle(self.state, self.queue, self.now)
        wall = time.perf_counter() - t0
        self.result.cycles.append(CycleSample(wall, pending, len(decisions.admit) + len(decisions.preempt)))
        for p in decisions.preempt:
            self.result.preemptions += 1
            self.result.moves += p.move
            self._requeue(self.by_id[p.job_id])
        for a in decisions.admit:
            self._started(self.by_id[a.job_id])
        self.result.timeline.append((self.now, self.busy))

    # -- a job's life --------------------------------------------------------------

    def _started(self, record: JobRecord) -> None:
        held = self.state.running[record.request.id]
        held.gang.checkpoint_every_s = self.options.checkpoint_every_s
        record.attempt += 1
        record.start = self.now
        if record.first_start is None:
            record.first_start = self.now
        self.busy += record.request.gpus
        self._push(self.now + record.remaining, FINISH, f"{record.request.id}#{record.attempt}")

    def _stopped(self, record: JobRecord) -> None:
        """Book the GPU time of the attempt that just ended."""
        gpus = record.request.gpus
        self.busy -= gpus
        lo, hi = self.result.window
        overlap = min(self.now, hi) - max(record.start, lo)
        if overlap > 0:
            self.result.team_window_gpu_s[record.trace.team] += overlap * gpus

    def _requeue(self, record: JobRecord) -> None:
        """A stopped gang goes back to the queue with what its last checkpoint saved."""
        self._stopped(record)
        record.preemptions += 1
        ran = self.now - record.start
        every = self.options.checkpoint_every_s
        saved = math.floor(ran / every) * every if every > 0 else 0.0
        restart = self.options.restart_s
        self.result.lost_gpu_s += (ran - saved + restart) * record.request.gpus
        record.remaining = max(0.0, record.remaining - saved) + restart
        record.attempt += 1  # the pending finish event is stale now
        if record.request.expected_duration is not None:
            record.request = replace(record.request, expected_duration=record.remaining)
        self.queue.push(record.request)

    # -- spot capacity ------------------------------------------------------------

    def _next_reclaim(self, now: float) -> float:
        return now + self.rng.expovariate(self.options.spot_reclaims_per_hour / 3600.0)

    def _reclaim(self) -> None:
        index = self.state.index
        for _ in range(8):
            name = self.rng.choice(self.spot_nodes)
            if index.schedulable[index.ids[name]]:
                break
        else:
            return
        for p in reclaim_spot_node(self.state, name, self.now):
            self.result.spot_evictions += 1
            self._requeue(self.by_id[p.job_id])
        self._push(self.now + self.options.spot_outage_s, RESTORE, name)


def replay(jobs: list[TraceJob], shape: ClusterShape, config: PolicyConfig, teams: list[Team],
           options: SimOptions = SimOptions(),
           on_progress: Callable[[int], None] | None = None) -> ReplayResult:
    return Replay(jobs, shape, config, teams, options).run(on_progress)

