"""Run several policies over one trace and draw what they did."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from trainyard.scheduler.model import Team
from trainyard.scheduler.policy import PRESETS
from trainyard.sim.cluster import ClusterShape
from trainyard.sim.engine import ReplayResult, SimOptions, replay
from trainyard.sim.trace import TraceJob


def run_policies(jobs: list[TraceJob], shape: ClusterShape, policies: list[str], teams: list[Team],
                 options: SimOptions = SimOptions(),
                 on_progress: Callable[[str, int], None] | None = None) -> list[ReplayResult]:
    unknown = [p for p in policies if p not in PRESETS]
    if unknown:
        raise ValueError(f"unknown policy {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    results = []
    for name in policies:
        tick = None if on_progress is None else (lambda n, name=name: on_progress(name, n))
        results.append(replay(jobs, shape, PRESETS[name], teams, options, tick))
    return results


def plot(results: list[ReplayResult], path: str | Path) -> Path:
    """Utilization over time and the JCT CDF, one line per policy, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (util, cdf) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in results:
        if r.timeline:
            t = np.array([p[0] for p in r.timeline]) / 3600.0
            busy = np.array([p[1] for p in r.timeline]) / r.total_gpus
            util.step(t, busy, where="post", label=r.policy, linewidth=1)
        jct = np.sort([rec.finish - rec.trace.submit_time for rec in r.jobs if rec.finish is not None])
        if jct.size:
            cdf.plot(np.maximum(jct, 1.0), np.arange(1, jct.size + 1) / jct.size, label=r.policy)
    lo, hi = results[0].window if results else (0.0, 0.0)
    util.set_xlim(lo / 3600.0, hi / 3600.0 * 1.25 + 1e-9)
    util.set(xlabel="hours (simulated)", ylabel="GPUs busy (fraction)", title="Utilization over time")
    cdf.set(xscale="log", xlabel="job completion time (s)", ylabel="fraction of jobs", title="JCT CDF")
    for ax in (util, cdf):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
