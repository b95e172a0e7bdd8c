"""The issue's walk-through on the digits example, end to end through `yard`: snapshot the data,
train on it, register the best checkpoint, the evaluation job passes, promote it; a rerun on 2 CPU
ranks reproduces the final val_acc exactly; a 1-epoch version fails its evaluation and production
refuses it; rollback works; lineage prints the code digest, the snapshot and the params."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import wait_for

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"
ENDED = ("SUCCEEDED", "FAILED", "CANCELLED")


def final_line(srv, job_id: str) -> str:
    match = re.search(r"final val_acc=\S+ val_loss=\S+ steps=\d+", srv.yard("logs", job_id).stdout)
    assert match, srv.yard("logs", job_id).stdout
    return match.group(0)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_digits_snapshot_train_register_gate_promote_rerun_refuse_rollback_lineage(make_server, tmp_path):
    srv = make_server("--cpus", "4")
    data = tmp_path / "digits-data"
    subprocess.run([sys.executable, str(DIGITS / "export_data.py"), str(data)], check=True, capture_output=True)
    res = srv.yard("datasets", "create", "digits", str(data))
    assert res.returncode == 0 and res.stdout.strip() == "digits@v1", res.stderr

    code = tmp_path / "digits"
    shutil.copytree(DIGITS, code, ignore=shutil.ignore_patterns("trainyard-runs", "__pycache__"))
    res = srv.yard("models", "create", str(code / "model.yaml"))
    assert res.returncode == 0, res.stderr

    def submit(epochs: int) -> str:
        spec = yaml.safe_load((code / "job-snapshot.yaml").read_text())
        spec["hyperparameters"]["epochs"] = epochs
        spec["heartbeat_timeout_s"] = 120  # a shared, loaded test machine must not make this a recovery test
        path = code / f"job-{epochs}.yaml"
        path.write_text(yaml.safe_dump(spec))
        res = srv.yard("submit", str(path), "-q")
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    def ended(job_id: str, timeout: float = 400) -> dict:
        with srv.client() as c:
            job = wait_for(lambda: (j := c.job(job_id))["state"] in ENDED and j, timeout, interval=1,
                           what=f"job {job_id}")
        assert job["state"] == "SUCCEEDED", job["reason"]
        return job

    def evaluation(version: int) -> dict:
        with srv.client() as c:
            return wait_for(lambda: (v := c.model_version("digits-classifier", version))["evaluation"]["state"]
                            not in ("PENDING", "RUNNING") and v, 400, interval=1, what=f"v{version}'s evaluation")

    good = submit(epochs=15)
    ended(good)
    res = srv.yard("rerun", good)  # same spec, code archive and snapshot, on 2 CPU ranks again
    assert res.returncode == 0, res.stderr
    rerun = res.stdout.strip()
    worse = submit(epochs=1)  # deliberately worse

    res = srv.yard("models", "register", good, "--name", "digits-classifier", "--checkpoint", "best")
    assert res.returncode == 0 and res.stdout.strip() == "digits-classifier@v1", res.stderr
    v1 = evaluation(1)
    assert v1["evaluation"]["state"] == "PASSED", v1["evaluation"]["reason"]
    assert v1["evaluation"]["metrics"]["val_acc"] >= 0.95
    res = srv.yard("models", "promote", "digits-classifier@v1", "--reason", "first model")
    assert res.returncode == 0, res.stderr

    ended(rerun)
    assert final_line(srv, rerun) == final_line(srv, good)  # reproduced exactly
    with srv.client() as c:
        assert c.run(rerun)["metrics"]["val_acc"]["value"] == c.run(good)["metrics"]["val_acc"]["value"]
    res = srv.yard("models", "register", rerun, "--name", "digits-classifier", "--checkpoint", "best")
    assert res.returncode == 0, res.stderr
    assert evaluation(2)["evaluation"]["state"] == "PASSED"
    assert srv.yard("models", "promote", "digits-classifier@v2", "--reason", "the rerun").returncode == 0

    ended(worse)
    res = srv.yard("models", "register", worse, "--name", "digits-classifier", "--checkpoint", "latest")
    assert res.returncode == 0, res.stderr
    v3 = evaluation(3)
    assert v3["evaluation"]["state"] == "FAILED"
    res = srv.yard("models", "promote", "digits-classifier@v3", "--reason", "one epoch is enough?")
    assert res.returncode != 0
    assert "cannot move production to digits-classifier@v3: it failed its evaluation: val_acc >= 0.95:" in res.stderr

    res = srv.yard("models", "rollback", "digits-classifier", "--reason", "back to the original run")
    assert res.returncode == 0, res.stderr
    with srv.client() as c:
        assert c.model_version("digits-classifier", "production")["version"] == 1
        job = c.job(good)
        snap = c.dataset_version("digits", 1)
    res = srv.yard("lineage", "digits-classifier@production")
    assert res.returncode == 0, res.stderr
    assert f"code {job['code']['digest']}" in res.stdout
    assert f"dataset digits@v1  {snap['digest']}" in res.stdout
    assert "epochs=15" in res.stdout and "lr=0.003" in res.stdout and "seed=0" in res.stdout
