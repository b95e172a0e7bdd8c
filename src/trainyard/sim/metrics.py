"""What a replay measured: completion times, queueing, utilization, fairness, scheduler cost."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainyard.sim.engine import ReplayResult


@dataclass(frozen=True, slots=True)
class TeamShare:
    team: str
    share: float  # of the cluster's GPU-time over the submit window
    entitlement: float  # nominal quota / cluster
    demand: float  # what its jobs could have used in the window, as a share
    satisfied: bool  # got ≥ 90 % of min(demand, entitlement)


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else 0.0


def team_shares(r: ReplayResult) -> list[TeamShare]:
    lo, hi = r.window
    capacity = r.total_gpus * max(1.0, hi - lo)
    demand: dict[str, float] = {}
    for rec in r.jobs:
        t = rec.trace
        if lo <= t.submit_time <= hi:
            demand[t.team] = demand.get(t.team, 0.0) + min(t.duration, hi - t.submit_time) * t.gpus
    nominal = {t.name: (t.gpus or 0) for t in r.teams}
    out = []
    for team in sorted(demand):
        entitled = nominal.get(team, 0) / r.total_gpus if nominal else 1.0 / max(1, len(demand))
        share = r.team_window_gpu_s.get(team, 0.0) / capacity
        d = demand[team] / capacity
        out.append(TeamShare(team, share, entitled, d, share >= 0.9 * min(d, entitled) - 1e-12))
    return out


def jain_index(shares: list[TeamShare]) -> float:
    """Jain's index over each team's share / min(demand, entitlement), capped at 1."""
    x = np.array([min(1.0, s.share / m) for s in shares if (m := min(s.demand, s.entitlement)) > 0])
    if not x.size:
        return 1.0
    return float(x.sum() ** 2 / (x.size * (x**2).sum()))


def summarize(r: ReplayResult) -> dict[str, object]:
    done = [rec for rec in r.jobs if rec.finish is not None]
    submit = np.array([rec.trace.submit_time for rec in done])
    finish = np.array([rec.finish for rec in done], dtype=float)
    first = np.array([rec.first_start for rec in done], dtype=float)
    jct = finish - submit
    wait = first - submit
    start = min((rec.trace.submit_time for rec in r.jobs), default=0.0)
    makespan = float(finish.max() - start) if finish.size else 0.0
    window = r.window[1] - r.window[0]
    walls = np.array([c.wall_s for c in r.cycles])
    big = np.array([c.wall_s for c in r.cycles if c.pending >= 10_000])
    decisions = sum(c.decisions for c in r.cycles)
    shares = team_shares(r)
    return {
        "policy": r.policy,
        "jobs": len(r.jobs),
        "completed": len(done),
        "avg_jct_s": float(jct.mean()) if jct.size else 0.0,
        "p50_jct_s": _pct(jct, 50),
        "p99_jct_s": _pct(jct, 99),
        "p50_queue_s": _pct(wait, 50),
        "p99_queue_s": _pct(wait, 99),
        "utilization": r.window_busy_gpu_s / (r.total_gpus * window) if window else 0.0,
        "utilization_makespan": r.busy_gpu_s / (r.total_gpus * makespan) if makespan else 0.0,
        "makespan_s": makespan,
        "window_s": window,
        "preemptions": r.preemptions,
        "moves": r.moves,
        "spot_evictions": r.spot_evictions,
        "gpu_hours_lost": r.lost_gpu_s / 3600.0,
        "jain_index": jain_index(shares),
        "teams_below_90pct": [s.team for s in shares if not s.satisfied],
        "cycles": len(r.cycles),
        "cycle_p50_ms": _pct(walls, 50) * 1e3,
        "cycle_p99_ms": _pct(walls, 99) * 1e3,
        "cycle_p99_ms_10k_pending": _pct(big, 99) * 1e3 if big.size else None,
        "max_pending": max((c.pending for c in r.cycles), default=0),
        "decisions_per_s": decisions / walls.sum() if walls.sum() > 0 else 0.0,
        "replay_wall_s": r.wall_s,
    }
