"""Sweep machinery on Branin and Hartmann-6: trivial trial jobs, no training.

1. Quality: for each function, TPE and random sweeps of `--trials` trials over
   `--seeds` seeds (all run as platform jobs, the sweeps side by side); one JSON
   line per function and sampler with the median over seeds of the best value
   found. Random is the baseline TPE is compared to.
2. Overhead per trial, on an otherwise idle server: trial submitted (its job
   created) → its first logged step, split at the launch; and, one trial at a
   time, a trial's end → the next trial's submission. Baseline, same run:
   the same script run standalone (interpreter, imports, init, first log).
   Target: ≤ 2 s.

    python benchmarks/sweep_synthetic.py [--trials 50] [--seeds 5] [--overhead-trials 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml
from _server import REPO, YARD, running_server, wait

TRIALS_DIR = REPO / "benchmarks/sweep_trials"
OPTIMA = {"branin": 0.397887, "hartmann6": -3.32237}
SPACES = {
    "branin": {"x1": {"type": "float", "low": -5.0, "high": 10.0},
               "x2": {"type": "float", "low": 0.0, "high": 15.0}},
    "hartmann6": {f"x{i}": {"type": "float", "low": 0.0, "high": 1.0} for i in range(1, 7)},
}
TARGET_OVERHEAD_S = 2.0


def ts(value: str) -> float:
    t = datetime.fromisoformat(value)
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def start_sweep(env: dict, tmp: Path, name: str, function: str, sampler: str, seed: int, trials: int,
                parallelism: int) -> str:
    template = yaml.safe_load((TRIALS_DIR / "job.yaml").read_text())
    template["hyperparameters"] = {"function": function}
    template["code"] = str(TRIALS_DIR)
    spec = {"name": name, "job": template, "metric": {"name": "value", "goal": "minimize"},
            "search": SPACES[function], "sampler": sampler, "max_trials": trials,
            "parallelism": parallelism, "seed": seed}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return subprocess.run([*YARD, "sweep", str(path), "-q"], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def finished(http: httpx.Client, sweep_ids: list[str]) -> dict[str, dict]:
    out = {}
    for sid in sweep_ids:
        w = http.get(f"/v1/sweeps/{sid}").json()
        if w["state"] == "RUNNING":
            return {}
        out[sid] = w
    return out


def quality(http: httpx.Client, env: dict, tmp: Path, args: argparse.Namespace) -> None:
    for function in ("branin", "hartmann6"):
        started = time.monotonic()
        ids = {(sampler, seed): start_sweep(env, tmp, f"{function}-{sampler}-{seed}", function, sampler, seed,
                                            args.trials, 2)
               for sampler in ("random", "tpe") for seed in range(args.seeds)}
        pending = list(ids.values())
        sweeps = wait(lambda: finished(http, pending), 3600, 2.0)  # noqa: B023 - pending is this pass's
        wall = time.monotonic() - started
        best = {}
        for sampler in ("random", "tpe"):
            values = [sweeps[ids[(sampler, seed)]]["best"]["value"] for seed in range(args.seeds)]
            best[sampler] = statistics.median(values)
            print(json.dumps({"benchmark": "sweep_synthetic", "function": function, "sampler": sampler,
                              "trials": args.trials, "seeds": args.seeds,
                              "median_best": round(best[sampler], 5),
                              "best_per_seed": [round(v, 5) for v in values],
                              "optimum": OPTIMA[function], "wall_s": round(wall, 1)}), flush=True)
        print(json.dumps({"benchmark": "sweep_synthetic", "function": function, "measure": "tpe_vs_random",
                          "tpe_regret": round(best["tpe"] - OPTIMA[function], 5),
                          "random_regret": round(best["random"] - OPTIMA[function], 5),
                          "tpe_better": best["tpe"] < best["random"]}), flush=True)


def overhead(http: httpx.Client, env: dict, tmp: Path, n: int) -> None:
    sid = start_sweep(env, tmp, "overhead", "branin", "random", 0, n, 1)
    wait(lambda: finished(http, [sid]), 600, 1.0)
    to_launch, to_step, total, handoff = [], [], [], []
    previous_end = None
    for t in http.get(f"/v1/sweeps/{sid}/trials").json()["items"]:
        job = http.get(f"/v1/training-jobs/{t['job_id']}").json()
        if previous_end is not None:  # parallelism 1: the driver's turnaround, trial ended -> next asked
            handoff.append(ts(job["created_at"]) - previous_end)
        previous_end = ts(job["finished_at"])
        events = http.get(f"/v1/training-jobs/{t['job_id']}/events").json()["items"]
        launched = min(ts(e["time"]) for e in events if e["kind"] == "launched")
        points = http.get(f"/v1/training-jobs/{t['job_id']}/metrics/value").json()["points"]
        first = min(p["timestamp"] for p in points)
        created = ts(job["created_at"])
        to_launch.append(launched - created)
        to_step.append(first - launched)
        total.append(first - created)
    baseline = []
    for _ in range(3):
        t0 = time.time()
        subprocess.run([sys.executable, "objective.py"], cwd=TRIALS_DIR, check=True, capture_output=True,
                       env={**os.environ, "TRAINYARD_RUN_DIR": str(tmp / "standalone"),
                            "TRAINYARD_HPARAMS": json.dumps({"function": "branin", "x1": 0, "x2": 0})})
        baseline.append(time.time() - t0)
    med = statistics.median(total)
    print(json.dumps({"benchmark": "sweep_synthetic", "measure": "overhead_per_trial_s", "trials": n,
                      "submit_to_first_step_median": round(med, 3),
                      "submit_to_first_step_max": round(max(total), 3),
                      "submit_to_launch_median": round(statistics.median(to_launch), 3),
                      "launch_to_first_step_median": round(statistics.median(to_step), 3),
                      "trial_end_to_next_submit_median": round(statistics.median(handoff), 3),
                      "baseline_standalone_run_median": round(statistics.median(baseline), 3),
                      "target_s": TARGET_OVERHEAD_S, "met": med <= TARGET_OVERHEAD_S}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--overhead-trials", type=int, default=10)
    ap.add_argument("--skip-quality", action="store_true")
    args = ap.parse_args()
    with running_server("--cpus", "4", timeout_s=60) as srv:
        overhead(srv.http, srv.env, srv.tmp, args.overhead_trials)
        if not args.skip_quality:
            quality(srv.http, srv.env, srv.tmp, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
