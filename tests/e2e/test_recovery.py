"""The digits example end to end: success, and recovery from killed, frozen and corrupt parts."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from tests.conftest import REPO, wait_for

pytestmark = pytest.mark.slow
DIGITS = REPO / "examples" / "digits"


def digits_spec(tmp_path: Path, priority: str | None = None, heartbeat_timeout_s: float | None = None,
                **hparams) -> Path:
    spec = yaml.safe_load((DIGITS / "job.yaml").read_text())
    if heartbeat_timeout_s is not None:
        spec["heartbeat_timeout_s"] = heartbeat_timeout_s
    spec["code"] = str(DIGITS)
    spec["hyperparameters"] = {**spec.get("hyperparameters", {}), **hparams}
    if priority is not None:
        spec["priority"] = priority
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def submit(server, spec: Path) -> str:
    res = server.yard("submit", str(spec), "-q")
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def final(client, job_id: str, timeout: float = 240) -> dict:
    return wait_for(lambda: (j := client.job(job_id))["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") and j,
                    timeout, interval=0.5, what=f"job {job_id} to end")


def running_with_checkpoints(client, job_id: str, count: int = 1) -> dict:
    """The job once it is RUNNING with `count` committed checkpoints and every rank's pid known."""
    def ready():
        j = client.job(job_id)
        assert j["state"] not in ("SUCCEEDED", "FAILED", "CANCELLED"), j["reason"]
        ok = (j["state"] == "RUNNING" and len(j["checkpoints"]) >= count
              and all(w["pid"] for w in j["workers"]))
        return ok and j
    return wait_for(ready, 180, interval=0.2, what="checkpoints")


def restore_step_of(client, job_id: str, attempt: int) -> int | None:
    for e in client.events(job_id):
        if e["kind"] == "launched" and e["reason"].startswith(f"attempt {attempt} "):
            m = re.search(r"restoring from step (\d+)", e["reason"])
            return int(m.group(1)) if m else None
    raise AssertionError(f"attempt {attempt} was never launched")


def assert_trained_once_up_to(client, job_id: str, step: int) -> None:
    points = client.metrics(job_id, "train_loss")
    steps = [p["step"] for p in points if p["step"] <= step]
    assert len(steps) == len(set(steps)), "a step before the restored checkpoint was trained twice"


def test_digits_job_succeeds_with_metrics_checkpoints_and_events(server, tmp_path):
    job_id = submit(server, digits_spec(tmp_path))
    job = final(server.client(), job_id)
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert job["metrics"]["val_acc"]["value"] >= 0.95
    assert job["checkpoints"] and all(c["verified"] for c in job["checkpoints"])
    assert len(job["checkpoints"]) <= 3 + 1  # keep_last plus keep_best
    status = server.yard("status", job_id)
    assert "SUCCEEDED" in status.stdout and "checkpoints" in status.stdout
    assert "launched" in status.stdout and "succeeded" in status.stdout
    listing = server.yard("jobs")
    assert job_id in listing.stdout
    assert "final val_acc" in server.yard("logs", job_id).stdout


def test_rank_killed_mid_training_resumes_from_last_checkpoint(server, tmp_path):
    client = server.client()
    job_id = submit(server, digits_spec(tmp_path, step_sleep_s=0.05))
    job = running_with_checkpoints(client, job_id, count=2)
    victim = next(w for w in job["workers"] if w["rank"] == 1)
    newest_before_kill = client.checkpoints(job_id)[0]["step"]
    os.kill(victim["pid"], signal.SIGKILL)
    job = final(client, job_id)
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert job["attempt"] == 2
    restored = restore_step_of(client, job_id, 2)
    assert restored is not None and restored >= newest_before_kill
    assert any("worker rank 1 exited with signal 9" in e["reason"] for e in client.events(job_id))
    assert_trained_once_up_to(client, job_id, restored)
    assert job["metrics"]["val_acc"]["value"] >= 0.95


def test_frozen_rank_is_declared_dead_fenced_and_recovered(server, tmp_path):
    client = server.client()
    job_id = submit(server, digits_spec(tmp_path, heartbeat_timeout_s=10, step_sleep_s=0.05))
    job = running_with_checkpoints(client, job_id, count=1)
    victim = next(w for w in job["workers"] if w["rank"] == 1)
    zombie = {"Authorization": f"Bearer {psutil.Process(victim['pid']).environ()['TRAINYARD_TOKEN']}"}
    os.kill(victim["pid"], signal.SIGSTOP)
    try:
        wait_for(lambda: client.job(job_id)["attempt"] >= 2, 90, what="a second attempt")
    finally:
        try:
            os.kill(victim["pid"], signal.SIGCONT)
        except ProcessLookupError:
            pass
    reasons = [e["reason"] for e in client.events(job_id)]
    assert any("worker rank 1" in r and "sent no heartbeat" in r for r in reasons), reasons
    stale = httpx.post(f"{server.url}/v1/training-jobs/{job_id}/attempts/1/metrics", headers=zombie,
                       json={"rank": 0, "points": [{"key": "x", "step": 1, "timestamp": 0, "value": 1}]})
    assert stale.status_code == 409, stale.text
    # fenced, or (once its credential is looked up again, past the cache) refused as dead
    assert "attempt 1" in stale.json()["detail"]
    assert "no longer current" in stale.json()["detail"] or "ended" in stale.json()["detail"]
    wait_for(lambda: not psutil.pid_exists(victim["pid"]) or
             psutil.Process(victim["pid"]).status() == psutil.STATUS_ZOMBIE, 30,
             what="the frozen rank to be killed")
    job = final(client, job_id)
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert_trained_once_up_to(client, job_id, restore_step_of(client, job_id, 2) or 0)


@pytest.mark.parametrize("damage", ["flipped_byte", "missing_file"])
def test_corrupt_newest_checkpoint_falls_back_to_previous(server, tmp_path, damage):
    client = server.client()
    job_id = submit(server, digits_spec(tmp_path, step_sleep_s=0.05))
    job = running_with_checkpoints(client, job_id, count=2)
    pids = [w["pid"] for w in job["workers"]]
    for pid in pids:  # freeze the gang so no newer checkpoint lands while we damage this one
        os.kill(pid, signal.SIGSTOP)
    newest, previous = client.checkpoints(job_id)[:2]
    victim = Path(newest["uri"]) / newest["manifest"]["files"][0]["path"]
    if damage == "flipped_byte":
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))
    else:
        victim.unlink()
    os.kill(pids[0], signal.SIGKILL)
    for pid in pids[1:]:
        os.kill(pid, signal.SIGCONT)
    job = final(client, job_id)
    assert job["state"] == "SUCCEEDED", job["reason"]
    events = client.events(job_id)
    fallback = [e for e in events if e["kind"] == "checkpoint_fallback"]
    assert fallback and f"step {newest['step']}" in fallback[0]["reason"]
    assert f"step {previous['step']}" in fallback[0]["reason"]
    every = server.http.get(f"/v1/training-jobs/{job_id}/checkpoints", params={"all": True}).json()
    assert any(c["step"] == newest["step"] and c["state"] == "CORRUPT" for c in every["items"])


def test_server_killed_and_restarted_loses_nothing(make_server, tmp_path):
    server = make_server("--cpus", "2")
    client = server.client()
    job_id = submit(server, digits_spec(tmp_path, step_sleep_s=0.03))
    queued_id = submit(server, digits_spec(tmp_path))  # waits: the first job holds both CPUs
    running_with_checkpoints(client, job_id, count=1)
    assert client.job(queued_id)["state"] == "QUEUED"
    server.kill()
    server.start()
    assert client.job(queued_id)["state"] == "QUEUED"
    job = final(client, job_id)
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert any(e["kind"] == "adopted" for e in client.events(job_id))
    assert final(client, queued_id)["state"] == "SUCCEEDED"
