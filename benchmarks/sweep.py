"""Sweeps on the digits example: grid (full budget) vs random vs TPE+ASHA, in one run.

For each method: trials, trial-epochs (epochs the trials actually ran, read
from their logged `epoch` metric, plus the epochs the pruner had granted when
it stopped them) and the best validation accuracy among completed trials.
The grid at full budget is the baseline. Target: TPE+ASHA within 1 point of
the grid's best accuracy using at most 1/3 of its trial-epochs.

Each step sleeps `--step-sleep` seconds (default 20 ms, so an epoch lasts about
a second, as for a bigger model); without it a digits epoch takes 60 ms and
a trial is all interpreter start-up.

    python benchmarks/sweep.py [--trials 16] [--epochs 12] [--step-sleep 0.02]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from _server import REPO, YARD, running_server, wait

DIGITS = REPO / "examples/digits"

SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "hidden": {"type": "int", "low": 32, "high": 512},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "optimizer": {"type": "categorical", "values": ["sgd", "adam"]},
}
GRID = {  # the same space, coarsened: 3 x 3 x 2 x 1 = 18 points
    "lr": {"type": "categorical", "values": [1e-3, 3e-3, 1e-2]},
    "hidden": {"type": "categorical", "values": [64, 256, 512]},
    "dropout": {"type": "categorical", "values": [0.0, 0.25]},
    "optimizer": {"type": "categorical", "values": ["adam"]},
}


def sweep_file(tmp: Path, name: str, epochs: int, step_sleep: float, **fields) -> Path:
    template = yaml.safe_load((DIGITS / "sweep-trial.yaml").read_text())
    template["code"] = str(DIGITS)
    template["hyperparameters"].update({"epochs": epochs, "step_sleep_s": step_sleep})
    (tmp / f"{name}-trial.yaml").write_text(yaml.safe_dump(template))
    spec = {"name": name, "job": f"{name}-trial.yaml", "metric": {"name": "val_loss", "goal": "minimize"},
            "parallelism": 2, "seed": 0, **fields}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run_sweep(http: httpx.Client, env: dict, path: Path, method: str, epochs: int) -> dict:
    started = time.monotonic()
    sweep_id = subprocess.run([*YARD, "sweep", str(path), "-q"], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()
    sweep = wait(lambda: (w := http.get(f"/v1/sweeps/{sweep_id}").json())["state"] != "RUNNING" and w, 1800, 1.0)
    wall = time.monotonic() - started
    trials = http.get(f"/v1/sweeps/{sweep_id}/trials").json()["items"]
    ran = sum(t["metrics"].get("epoch") or 0 for t in trials)
    granted = sum(t["pruned_at"] if t["pruned_at"] is not None else epochs for t in trials
                  if t["state"] in ("COMPLETE", "PRUNED"))
    accs = [t["metrics"]["val_acc"] for t in trials if t["state"] == "COMPLETE" and "val_acc" in t["metrics"]]
    return {"benchmark": "sweep_digits", "method": method, "state": sweep["state"], "trials": len(trials),
            "pruned": sum(t["state"] == "PRUNED" for t in trials), "trial_epochs": int(ran),
            "trial_epochs_granted": int(granted), "best_val_acc": round(max(accs, default=0.0), 4),
            "best_val_loss": sweep["best"]["value"] if sweep["best"] else None, "wall_s": round(wall, 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16, help="trials for random and TPE+ASHA")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--step-sleep", type=float, default=0.02)
    args = ap.parse_args()
    with running_server("--cpus", "2") as srv:
        http, env, tmp = srv.http, srv.env, srv.tmp
        common = {"epochs": args.epochs, "step_sleep": args.step_sleep}
        runs = [
            ("grid", sweep_file(tmp, "grid", **common, search=GRID, sampler="grid")),
            ("random", sweep_file(tmp, "random", **common, search=SPACE, sampler="random",
                                  max_trials=args.trials)),
            ("tpe+asha", sweep_file(tmp, "tpe-asha", **common, search=SPACE, sampler="tpe",
                                    max_trials=args.trials,
                                    early_stopping={"type": "asha", "min_resource": 1,
                                                    "reduction_factor": 3, "resource": "epoch"})),
        ]
        results = {}
        for method, path in runs:
            results[method] = run_sweep(http, env, path, method, args.epochs)
            print(json.dumps(results[method]), flush=True)
    grid, tpe = results["grid"], results["tpe+asha"]
    gap = round((grid["best_val_acc"] - tpe["best_val_acc"]) * 100, 2)
    ratio = round(tpe["trial_epochs"] / max(grid["trial_epochs"], 1), 3)
    print(json.dumps({"benchmark": "sweep_digits", "measure": "tpe_asha_vs_grid", "acc_gap_points": gap,
                      "trial_epoch_ratio": ratio,
                      "trial_epoch_ratio_granted":
                          round(tpe["trial_epochs_granted"] / max(grid["trial_epochs"], 1), 3),
                      "target": "gap <= 1 point and ratio <= 0.333", "met": gap <= 1.0 and ratio <= 1 / 3}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
