"""The server is killed (SIGKILL) at each step of a checkpoint commit and of retention, then restarted.

Whatever the step, no COMMITTED checkpoint ever misses a file, retention's leftover DELETING
rows are swept, the newest COMMITTED checkpoint restores, and the job finishes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest
import torch

from tests.conftest import wait_for
from trainyard.runtime.manifest import MANIFEST, STATE_FILE, verify

pytestmark = pytest.mark.slow

STEPS, PAUSE_AT = 60, 20
TRAIN = f"""
import sys, time, torch, trainyard
ctx = trainyard.init()
step, w = 0, torch.zeros(4)
restored = ctx.checkpoint.load()
if restored is not None:
    step, state = restored
    w = state["w"]
    print(f"resumed from step {{step}}", flush=True)
while step < {STEPS}:
    step += 1
    w += 1
    ctx.log({{"loss": 1.0 / step}}, step)
    ctx.checkpoint.save(step, {{"w": w.clone(), "step": step}})
    while step == {PAUSE_AT} and restored is None:  # the first attempt waits here to be killed
        time.sleep(0.1)
    time.sleep(0.05)
ctx.checkpoint.save(step, {{"w": w.clone(), "step": step}}, force=True)
ctx.finish()
assert float(w[0]) == step == {STEPS}, (float(w[0]), step)
"""


def submit(server, tmp_path: Path) -> str:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(TRAIN)
    spec = {"name": "crashy", "entrypoint": ["python", "train.py"], "code": str(code),
            "resources": {"workers": 1, "cpus_per_worker": 0.5, "memory_gb": 0.5},
            "checkpoint": {"every_steps": 5, "keep_last": 1}, "max_restarts": 3,
            "heartbeat_timeout_s": 120}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(spec))
    res = server.yard("submit", str(path), "-q")
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def stored_checkpoints(home: Path, job_id: str) -> list[dict]:
    """The store's rows, read straight from the database file while the server is down."""
    db = sqlite3.connect(home / "trainyard.db")
    try:
        rows = db.execute("SELECT step, uri, state, manifest FROM checkpoints WHERE job_id = ? ORDER BY step",
                          (job_id,)).fetchall()
    finally:
        db.close()
    return [{"step": s, "uri": u, "state": st, "manifest": json.loads(m)} for s, u, st, m in rows]


def assert_every_committed_checkpoint_is_whole(rows: list[dict]) -> None:
    for row in rows:
        if row["state"] == "COMMITTED":
            assert verify(Path(row["uri"]), row["manifest"]) is None, row
            assert (Path(row["uri"]) / MANIFEST).is_file(), row


@pytest.mark.parametrize("point", ["checkpoint_commit.after_record", "retention.after_mark",
                                   "retention.mid_delete"])
def test_server_killed_during_a_checkpoint_commit_or_retention_loses_no_checkpoint(
        make_server, tmp_path, monkeypatch, point):
    monkeypatch.setenv("TRAINYARD_FAULTS", point)
    server = make_server()
    job_id = submit(server, tmp_path)
    assert server.proc.wait(timeout=240) == -signal.SIGKILL, "the server never reached " + point

    rows = stored_checkpoints(server.home, job_id)
    assert_every_committed_checkpoint_is_whole(rows)
    states = {r["step"]: r["state"] for r in rows}
    if point == "checkpoint_commit.after_record":
        assert states == {5: "COMMITTED"}  # recorded, though the rank never heard so
    else:  # step 10's commit let go of step 5 durably before any of its files went
        assert states == {5: "DELETING", 10: "COMMITTED"}
        doomed = Path(rows[0]["uri"])
        assert (doomed / STATE_FILE).is_file()
        assert (doomed / MANIFEST).is_file() == (point == "retention.after_mark")

    monkeypatch.delenv("TRAINYARD_FAULTS")
    server.start()
    client = server.client()

    def settled() -> bool:  # the rank's retried commits landed; retention's leftovers were swept
        rows = client.request("GET", f"/v1/training-jobs/{job_id}/checkpoints", params={"all": True})["items"]
        return (max(c["step"] for c in rows) == PAUSE_AT
                and all(c["state"] in ("COMMITTED", "DELETED") for c in rows))

    wait_for(settled, 120, what="the commits to land and DELETING checkpoints to be swept")
    rows = stored_checkpoints(server.home, job_id)
    assert_every_committed_checkpoint_is_whole(rows)
    assert not any(Path(r["uri"]).exists() for r in rows if r["state"] == "DELETED")
    [pid] = [w["pid"] for w in client.job(job_id)["workers"]]
    os.kill(pid, signal.SIGKILL)  # the next attempt must restore the newest COMMITTED checkpoint

    job = wait_for(lambda: (j := client.job(job_id))["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") and j,
                   300, interval=0.5, what="the job to finish")
    assert job["state"] == "SUCCEEDED" and job["attempt"] == 2, job["reason"]
    assert f"resumed from step {PAUSE_AT}" in server.yard("logs", job_id).stdout
    rows = stored_checkpoints(server.home, job_id)
    assert_every_committed_checkpoint_is_whole(rows)
    assert {r["state"] for r in rows} <= {"COMMITTED", "DELETED"}
    newest = max((r for r in rows if r["state"] == "COMMITTED"), key=lambda r: r["step"])
    state = torch.load(Path(newest["uri"]) / STATE_FILE, weights_only=True)
    assert newest["step"] == state["step"] == STEPS and float(state["w"][0]) == STEPS
