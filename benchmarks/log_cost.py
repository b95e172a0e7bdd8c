"""Cost of `ctx.log()` to the training loop: per-call median and p99 against a no-op call.

Prints one JSON line per measurement:
- ctx_log: a standalone run's ctx.log (buffered, shipped to a file in the background);
- ctx_log_server_down: the platform shipper while no server answers (points pile up, retried);
- loop_overhead: a tight loop of 200k steps with and without ctx.log, per step; this one
  includes the shipper thread's work (it shares the GIL), amortized over the steps.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

CALLS = 200_000
TARGET_US = 5.0


def per_call_ns(fn: Callable[[dict[str, float], int], Any], calls: int = CALLS) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    for step in range(calls):
        metrics = {"train_loss": 0.5, "lr": 0.001}
        start = clock()
        fn(metrics, step)
        out.append(clock() - start)
    return out


def summary(ns: list[int]) -> tuple[float, float]:
    ns = sorted(ns)
    return statistics.median(ns) / 1000, ns[int(len(ns) * 0.99)] / 1000


def report(bench: str, measured: list[int], baseline: list[int]) -> None:
    med, p99 = summary(measured)
    base_med, base_p99 = summary(baseline)
    print(json.dumps({
        "bench": bench,
        "calls": len(measured),
        "median_us": round(med, 3),
        "p99_us": round(p99, 3),
        "baseline_median_us": round(base_med, 3),
        "baseline_p99_us": round(base_p99, 3),
        "target_us": TARGET_US,
        "ok": med <= TARGET_US,
    }), flush=True)


def no_op(metrics: dict[str, float], step: int) -> None:
    pass


def loop_ns_per_step(log: Callable[[dict[str, float], int], Any] | None, steps: int = CALLS) -> float:
    start = time.perf_counter_ns()
    if log is None:
        for _ in range(steps):
            metrics = {"train_loss": 0.5, "lr": 0.001}
    else:
        for step in range(steps):
            metrics = {"train_loss": 0.5, "lr": 0.001}
            log(metrics, step)
    del metrics
    return (time.perf_counter_ns() - start) / steps


def main() -> int:
    from trainyard.client import ServerUnavailable
    from trainyard.runtime.metrics import MetricShipper

    with tempfile.TemporaryDirectory() as tmp:
        for key in [k for k in os.environ if k.startswith("TRAINYARD_")]:
            del os.environ[key]
        os.environ["TRAINYARD_RUN_DIR"] = tmp
        import trainyard

        ctx = trainyard.init()
        baseline = per_call_ns(no_op)
        report("ctx_log", per_call_ns(ctx.log), baseline)

        plain = loop_ns_per_step(None)
        logged = loop_ns_per_step(ctx.log)
        print(json.dumps({
            "bench": "loop_overhead",
            "steps": CALLS,
            "ns_per_step": round(logged, 1),
            "baseline_ns_per_step": round(plain, 1),
            "overhead_us_per_step": round((logged - plain) / 1000, 3),
            "target_us": TARGET_US,
            "ok": (logged - plain) / 1000 <= TARGET_US,
        }), flush=True)
        ctx.finish()

    def unreachable(points: list[dict[str, Any]]) -> None:
        raise ServerUnavailable("benchmark: no server")

    shipper = MetricShipper(unreachable)
    report("ctx_log_server_down", per_call_ns(shipper.log), per_call_ns(no_op))
    shipper.close(timeout=0.1)
    return 0


if __name__ == "__main__":
    logging.getLogger("trainyard").setLevel(logging.ERROR)  # the server-down case warns by design
    sys.exit(main())
