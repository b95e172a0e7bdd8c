"""Scheduler benchmark (issue 3): the Philly trace on 12,500 nodes × 8 GPUs, three policies.

Prints one JSON line per measurement, baselines measured in the same run, then
one line per target saying whether it is met. Run from the repository root:

    .venv/bin/python benchmarks/scheduler.py [--replicate 8] [--load 4]

Why replicate 8 and load 4. The trace (Pollux's reduction of Philly: 82,247 jobs
over 109 days) is scaled up by `replicate` copies of every job, with submit
times compressed until the offered GPU-seconds are `load` × the cluster's over
the (compressed) submit window. The load is only felt if the window is long
next to the jobs that carry the GPU-time (the mean job runs 3.6 h, the longest
ones days). At replicate 4 the window is 9.8 h: the long jobs' work spills far
past it and even FIFO barely queues (avg JCT 13,186 s against a mean duration of
13,136 s; all three policies within 0.01 %), so a JCT ratio says nothing. At
replicate 8 the window is 19.6 h, FIFO's average JCT is 2.1 × the mean duration
and the queue peaks at ~167,000 jobs: a cluster that is really overloaded while
the trace arrives, and then drains. Load 4 is the setting issue 3's numbers were
first taken at, kept so runs compare across commits; it is not a point picked
to pass. Measured on this machine (one run each, replicate 8):

    load  FIFO avg JCT  ours / FIFO  ours / backfill  ours util  best util
    2        17,056 s      0.783         0.989          65.4 %     65.4 %
    4        27,941 s      0.499         0.933          71.1 %     71.1 %
    6        32,148 s      0.455         0.824          71.6 %     71.6 %

Average JCT can never go below the mean duration (13,136 s), so the ratio has a
floor of 0.77 at load 2 and 0.47 at load 4, where 0.5 × FIFO leaves ours an
average wait of ~835 s against FIFO's ~14,800 s. Every stopped gang pays a 60 s
restart on top of the work since its last checkpoint (`SimOptions.restart_s`).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import replace
from pathlib import Path

from trainyard.scheduler.model import GangRequest
from trainyard.scheduler.policy import TRAINYARD, Policy, PolicyConfig
from trainyard.scheduler.queue import PendingQueue
from trainyard.scheduler.state import ClusterState
from trainyard.sim.cluster import ClusterShape, equal_teams
from trainyard.sim.compare import run_policies
from trainyard.sim.engine import SimOptions
from trainyard.sim.metrics import summarize
from trainyard.sim.trace import compression_for_load, load_trace, scale

TRACE = Path(__file__).resolve().parents[1] / ".." / "shared" / "traces" / "philly.csv"


def emit(record: dict[str, object]) -> None:
    print(json.dumps(record), flush=True)


def replay_philly(args: argparse.Namespace) -> list[dict[str, object]]:
    jobs = load_trace(TRACE, estimates=True, preemptible=True)
    shape = ClusterShape(args.nodes, args.gpus_per_node)
    compress = compression_for_load(jobs, shape.total_gpus, args.load, args.replicate)
    jobs = scale(jobs, replicate=args.replicate, compress=compress)
    teams = equal_teams({j.team for j in jobs}, shape.total_gpus)
    summaries = []
    for result in run_policies(jobs, shape, ["fifo", "backfill", "trainyard"], teams, SimOptions()):
        s = summarize(result)
        s.update(measurement="philly_replay", nodes=args.nodes, gpus=shape.total_gpus,
                 replicate=args.replicate, compress=round(compress, 2))
        emit(s)
        summaries.append(s)
    return summaries


GANG_SIZES = [1] * 80 + [2] * 5 + [4] * 5 + [8] * 7 + [16] * 2 + [64]  # GPUs, Philly-like mix


def _fifteen_teams_cluster(nodes: int, gpus_per_node: int) -> tuple[ClusterState, Policy, PendingQueue]:
    """An empty cluster shared equally by 15 teams, with our policy and an empty queue."""
    shape = ClusterShape(nodes, gpus_per_node)
    teams = equal_teams([f"team{i}" for i in range(15)], shape.total_gpus)
    state = ClusterState(shape.build(), teams)
    policy = Policy(_quiet(TRAINYARD))
    return state, policy, policy.new_queue(state)


def cycle_at_10k_pending(nodes: int, gpus_per_node: int, cycles: int = 60) -> dict[str, object]:
    """A full cluster with 10,000 gangs waiting; between cycles a few running gangs end."""
    rng = random.Random(1)
    state, policy, queue = _fifteen_teams_cluster(nodes, gpus_per_node)
    n = 0

    def job(t: float) -> GangRequest:
        nonlocal n
        n += 1
        return GangRequest(f"g{n}", rng.choice(GANG_SIZES), team=f"team{rng.randrange(15)}", submit_time=t,
                           expected_duration=rng.uniform(600, 36000), preemptible=True)

    while True:  # fill the cluster until a cycle can place nothing more
        while len(queue) < 5000:
            queue.push(job(0.0))
        if not policy.cycle(state, queue, 0.0).admit:
            break
    for job_id in list(queue.jobs)[10_000:]:
        queue.remove(job_id)
    while len(queue) < 10_000:
        queue.push(job(1.0))
    walls, decisions = [], 0
    for c in range(cycles):
        for job_id in rng.sample(list(state.running), 40):
            state.stop(job_id)
        while len(queue) < 10_000:
            queue.push(job(2.0 + c))
        t0 = time.perf_counter()
        d = policy.cycle(state, queue, 2.0 + c)
        walls.append(time.perf_counter() - t0)
        decisions += len(d.admit) + len(d.preempt)
    walls.sort()
    return {"measurement": "cycle_10k_pending", "pending": len(queue), "cycles": cycles,
            "cycle_p50_ms": walls[len(walls) // 2] * 1e3,
            "cycle_p99_ms": walls[min(len(walls) - 1, int(len(walls) * 0.99))] * 1e3,
            "decisions": decisions}


def placement_rate(nodes: int, gpus_per_node: int, jobs: int = 40_000) -> dict[str, object]:
    """Placement decisions per second: an empty cluster and a deep queue of mixed gangs."""
    rng = random.Random(2)
    state, policy, queue = _fifteen_teams_cluster(nodes, gpus_per_node)
    for i in range(jobs):
        queue.push(GangRequest(f"p{i}", rng.choice(GANG_SIZES), team=f"team{rng.randrange(15)}",
                               submit_time=float(i), expected_duration=3600.0, preemptible=True))
    placed, wall = 0, 0.0
    while len(queue):
        t0 = time.perf_counter()
        d = policy.cycle(state, queue, 1e6)
        wall += time.perf_counter() - t0
        if not d.admit:
            break
        placed += len(d.admit)
    return {"measurement": "placement_rate", "placements": placed, "wall_s": wall,
            "decisions_per_s": placed / wall if wall else 0.0}


def _quiet(config: PolicyConfig) -> PolicyConfig:
    return replace(config, explain=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=12_500)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--replicate", type=int, default=8)
    parser.add_argument("--load", type=float, default=4.0)
    args = parser.parse_args()

    started = time.perf_counter()
    fifo, backfill, ours = replay_philly(args)
    cycle = cycle_at_10k_pending(args.nodes, args.gpus_per_node)
    emit(cycle)
    rate = placement_rate(args.nodes, args.gpus_per_node)
    emit(rate)

    def target(name: str, met: bool, **values: object) -> None:
        emit({"target": name, "met": bool(met), **values})

    def f(s: dict[str, object], key: str) -> float:
        return float(s[key])  # type: ignore[arg-type]

    best_util = max(f(s, "utilization") for s in (fifo, backfill, ours))
    ratio = f(ours, "avg_jct_s") / f(fifo, "avg_jct_s")
    target("avg_jct <= 0.5 x fifo", ratio <= 0.5, ours=ours["avg_jct_s"], fifo=fifo["avg_jct_s"],
           ratio=ratio)
    target("avg_jct <= backfill", f(ours, "avg_jct_s") <= f(backfill, "avg_jct_s"),
           ours=ours["avg_jct_s"], backfill=backfill["avg_jct_s"])
    target("utilization within 2 points of best", f(ours, "utilization") >= best_util - 0.02,
           ours=ours["utilization"], best=best_util)
    target("no team below 90% of min(demand, entitlement)", not ours["teams_below_90pct"],
           teams=ours["teams_below_90pct"], jain_index=ours["jain_index"])
    target("cycle p99 <= 100 ms at 10,000 pending", f(cycle, "cycle_p99_ms") <= 100.0,
           cycle_p99_ms=cycle["cycle_p99_ms"],
           replay_cycle_p99_ms_10k_pending=ours["cycle_p99_ms_10k_pending"])
    target(">= 20,000 placement decisions/s", f(rate, "decisions_per_s") >= 20_000,
           decisions_per_s=rate["decisions_per_s"], replay_decisions_per_s=ours["decisions_per_s"])
    window_gpu_hours = args.nodes * args.gpus_per_node * f(ours, "window_s") / 3600.0
    lost = f(ours, "gpu_hours_lost") / window_gpu_hours
    target("preemption loses <= 1% of the window's GPU-hours (our own budget)", lost <= 0.01,
           gpu_hours_lost=ours["gpu_hours_lost"], fraction=lost, preemptions=ours["preemptions"],
           moves=ours["moves"])
    walls = {str(s["policy"]): f(s, "replay_wall_s") for s in (fifo, backfill, ours)}
    target("each policy's full replay < 120 s", max(walls.values()) < 120, replay_wall_s=walls,
           total_wall_s=time.perf_counter() - started)

if __name__ == "__main__":
    main()
