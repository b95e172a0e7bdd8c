"""Preemption on the local backend: a hand-off, not a kill."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.conftest import wait_for
from tests.e2e.test_recovery import digits_spec, final, restore_step_of, running_with_checkpoints, submit

pytestmark = pytest.mark.slow


def when(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


@pytest.mark.timeout(900)
def test_low_priority_job_is_preempted_checkpoints_in_grace_and_resumes(make_server, tmp_path):
    server = make_server("--cpus", "2", "--preemption-grace-s", "30")
    client = server.client()
    (tmp_path / "low").mkdir()
    (tmp_path / "high").mkdir()
    low = submit(server, digits_spec(tmp_path / "low", step_sleep_s=0.04, priority="low"))
    running_with_checkpoints(client, low, count=1)
    high = submit(server, digits_spec(tmp_path / "high", priority="high"))

    preempting = wait_for(lambda: [e for e in client.events(low) if e["kind"] == "preempting"], 60,
                          what="the low-priority job to be preempted")
    assert high in preempting[0]["reason"]
    wait_for(lambda: client.job(low)["state"] == "QUEUED", 60, what="the preempted job back in the queue")
    assert client.job(high)["state"] in ("STARTING", "RUNNING", "SUCCEEDED")

    # The gang checkpointed inside its grace period, and that is where it resumes.
    in_grace = [c for c in client.checkpoints(low)
                if c["attempt"] == 1 and when(c["created_at"]) >= when(preempting[0]["time"])]
    assert in_grace, "no checkpoint was committed during the grace period"

    assert final(client, high)["state"] == "SUCCEEDED"
    job = final(client, low, timeout=400)
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert job["attempt"] == 2 and job["restarts"] == 0  # a preemption is not a failure
    assert restore_step_of(client, low, 2) == max(c["step"] for c in in_grace)
    assert job["metrics"]["val_acc"]["value"] >= 0.95


def test_unknown_priority_class_is_refused(server, tmp_path):
    res = server.yard("submit", str(digits_spec(tmp_path, priority="urgent")))
    assert res.returncode != 0
    assert "priority" in res.stderr and "low, normal, high, critical" in res.stderr
