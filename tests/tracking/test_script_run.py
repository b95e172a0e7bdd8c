"""A plain script pointed at a server (TRAINYARD_SERVER, no job) becomes a run, like MLflow."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import wait_for

SCRIPT = textwrap.dedent("""
    import sys, time
    import trainyard

    ctx = trainyard.init(hparams={"lr": 0.01, "model": {"width": 64}})
    print("run", ctx.run_id, flush=True)
    for step in range(1, 21):
        ctx.log({"loss": 1.0 / step}, step=step)
        time.sleep(0.03)
    if sys.argv[1] == "crash":
        raise RuntimeError("diverged")
    ctx.finish()
""")


def run_script(server, tmp_path: Path, mode: str) -> tuple[subprocess.CompletedProcess, str]:
    script = tmp_path / "Train Digits.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env.update({"TRAINYARD_SERVER": server.url, "TRAINYARD_TOKEN": server.token, "TRAINYARD_EXPERIMENT": "notebooks",
                "TRAINYARD_SYSTEM_METRICS_INTERVAL_S": "0.1", "TRAINYARD_RUN_DIR": str(tmp_path / "run")})
    proc = subprocess.run([sys.executable, str(script), mode], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    run_id = next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("run "))
    return proc, run_id


def test_a_script_with_a_server_and_no_job_tracks_into_a_run_of_its_own(tracking_server, tmp_path: Path):
    proc, run_id = run_script(tracking_server, tmp_path, "ok")
    assert proc.returncode == 0, proc.stderr
    with tracking_server.client() as client:
        run = client.run(run_id)
        assert run["source"] == "client" and run["name"] == "train-digits"
        assert run["experiment"] == "notebooks" and run["state"] == "SUCCEEDED"
        assert run["params"] == {"lr": "0.01", "model.width": "64"}
        assert [p["step"] for p in client.metric_history(run_id, "loss")] == list(range(1, 21))
        cpu = client.metric_history(run_id, "system/rank0/cpu_percent")
        rss = client.metric_history(run_id, "system/rank0/rss_mb")
        assert cpu and rss and all(p["value"] > 10 for p in rss)  # a Python with torch loaded
        assert all(0 <= p["step"] <= 20 for p in cpu)  # samples carry the training step
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing went to local files


def test_a_script_that_dies_leaves_its_run_failed(tracking_server, tmp_path: Path):
    proc, run_id = run_script(tracking_server, tmp_path, "crash")
    assert proc.returncode != 0 and "diverged" in proc.stderr
    with tracking_server.client() as client:
        run = wait_for(lambda: client.run(run_id) if client.run(run_id)["state"] != "RUNNING" else None,
                       10, what="the run to end")
        assert run["state"] == "FAILED"
        assert len(client.metric_history(run_id, "loss")) == 20
