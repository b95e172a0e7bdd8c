"""Recovery: SIGKILL of a rank → first completed training step of the next attempt.

Runs a real server and the digits example (2 DDP ranks). The baseline, measured
in the same run, is the cold start of the same job: launch → its first step.
Prints one JSON line per trial and a summary line.

    python benchmarks/recovery.py [--trials 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import yaml
from _server import REPO, YARD, running_server, wait

TARGET_S = 10.0


def event_time(events: list[dict], kind: str, nth: int = 0) -> float:
    times = [datetime.fromisoformat(e["time"]).timestamp() for e in events if e["kind"] == kind]
    return times[nth]


def trial(http: httpx.Client, env: dict, tmp: Path, every_steps: int) -> dict:
    spec = yaml.safe_load((REPO / "examples/digits/job.yaml").read_text())
    spec["code"] = str(REPO / "examples/digits")
    spec["hyperparameters"]["step_sleep_s"] = 0.05
    spec["checkpoint"]["every_steps"] = every_steps
    path = tmp / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    job_id = subprocess.run([*YARD, "submit", str(path), "-q"], env=env, capture_output=True,
                            text=True, check=True).stdout.strip()

    def job():
        return http.get(f"/v1/training-jobs/{job_id}").json()

    def losses():
        return http.get(f"/v1/training-jobs/{job_id}/metrics/train_loss").json()["points"]

    wait(lambda: (j := job())["state"] == "RUNNING" and len(j["checkpoints"]) >= 2
             and all(w["pid"] for w in j["workers"]) and j, 300)
    events = http.get(f"/v1/training-jobs/{job_id}/events").json()["items"]
    cold_start = min(p["timestamp"] for p in losses()) - event_time(events, "launched")
    time.sleep(every_steps * 0.05 / 2)  # land mid-interval, like a real failure would on average
    victim = next(w for w in job()["workers"] if w["rank"] == 1)
    killed_at = time.time()
    os.kill(victim["pid"], signal.SIGKILL)
    first = wait(lambda: [p for p in losses() if p["timestamp"] > killed_at], 120)
    recovery = min(p["timestamp"] for p in first) - killed_at
    before = [p["step"] for p in losses() if p["timestamp"] <= killed_at]
    restored = min(p["step"] for p in first) - 1
    done = wait(lambda: (j := job())["state"] in ("SUCCEEDED", "FAILED") and j, 300, 0.5)
    return {"bench": "recovery", "recovery_s": round(recovery, 3),
            "baseline_cold_start_s": round(cold_start, 3),
            "steps_lost": max(before) - restored, "checkpoint_interval_steps": every_steps,
            "final_state": done["state"], "attempt": done["attempt"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--every-steps", type=int, default=25)
    args = ap.parse_args()
    with running_server(timeout_s=10) as srv:
        rows = []
        for _ in range(args.trials):
            row = trial(srv.http, srv.env, srv.tmp, args.every_steps)
            print(json.dumps(row), flush=True)
            rows.append(row)
    rec = statistics.median(r["recovery_s"] for r in rows)
    lost = max(r["steps_lost"] for r in rows)
    print(json.dumps({"bench": "recovery_summary", "median_recovery_s": rec,
                      "median_baseline_cold_start_s":
                          statistics.median(r["baseline_cold_start_s"] for r in rows),
                      "max_steps_lost": lost, "checkpoint_interval_steps": args.every_steps,
                      "target_s": TARGET_S,
                      "ok": rec <= TARGET_S and lost <= args.every_steps
                      and all(r["final_state"] == "SUCCEEDED" for r in rows)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
