"""The issue's end-to-end proof: a TPE + ASHA sweep of the digits example through a real server."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.sweeps.conftest import final, start

DIGITS = REPO / "examples/digits"


def most_at_once(jobs: list[dict]) -> int:
    """The most trial jobs that were ever between launch and end at the same moment."""
    edges = []
    for j in jobs:
        edges += [(datetime.fromisoformat(j["started_at"]), 1),
                  (datetime.fromisoformat(j["finished_at"]), -1)]
    running = peak = 0
    for _, delta in sorted(edges, key=lambda e: (e[0], e[1])):
        running += delta
        peak = max(peak, running)
    return peak


def digits_sweep(tmp_path: Path) -> Path:
    """examples/digits/sweep.yaml as shipped, its steps slowed to 10 ms so an epoch outlasts a prune."""
    template = yaml.safe_load((DIGITS / "sweep-trial.yaml").read_text())
    template["code"] = str(DIGITS)
    template["hyperparameters"]["step_sleep_s"] = 0.01
    (tmp_path / "sweep-trial.yaml").write_text(yaml.safe_dump(template))
    spec = yaml.safe_load((DIGITS / "sweep.yaml").read_text())
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tpe_asha_sweep_on_digits_prunes_some_and_finds_a_97_percent_model(server, tmp_path):
    path = digits_sweep(tmp_path)
    spec = yaml.safe_load(path.read_text())
    assert spec["sampler"] == "tpe" and spec["early_stopping"]["type"] == "asha"
    assert spec["max_trials"] >= 20 and spec["parallelism"] == 2
    sweep_id = start(server, path)
    client = server.client()
    sweep = final(client, sweep_id, timeout=840)
    assert sweep["state"] == "SUCCEEDED", sweep["reason"]

    trials = client.sweep_trials(sweep_id)
    assert len(trials) == spec["max_trials"]
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert pruned and len(pruned) < len(trials)
    assert sweep["best"]["metrics"]["val_acc"] >= 0.97

    jobs = [client.job(t["job_id"]) for t in trials]
    assert most_at_once(jobs) <= 2

    stopped = [t for t in pruned if client.job(t["job_id"])["state"] == "CANCELLED"]
    assert stopped, "no pruned trial was still training when it was pruned"
    t = stopped[0]
    assert t["value"] is not None and t["pruned_at"] >= 1 and "val_acc" in t["metrics"]
    log = client.logs(t["job_id"])["text"]
    assert "stopping at step" in log  # the trial saw ctx.should_stop() and saved on its way out
    reasons = [e["reason"] for e in client.events(t["job_id"])]
    assert any(f"pruned by asha at epoch {t['pruned_at']}" in r for r in reasons)

    best = server.yard("sweep", "best", sweep_id)
    assert best.returncode == 0, best.stderr
    assert f"best trial {sweep['best']['number']} " in best.stdout
    assert f"val_acc={sweep['best']['metrics']['val_acc']:.4g}" in best.stdout
