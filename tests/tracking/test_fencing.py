"""Fencing (DESIGN.md): a job's run is written only by its current attempt, a finished run is
read-only, and the fence's check and the write it guards are one locked transaction."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_for
from trainyard.client import Client, TrainyardError
from trainyard.control import ranks
from trainyard.spec import AttemptState, JobSpec, JobState
from trainyard.store import Store, repo
from trainyard.store.tables import Attempt

RANK = ("import trainyard; ctx = trainyard.init(); ctx.log({'acc': 0.5}, step=1); ctx.finish()")


def point(key: str, value: float, step: int = 2) -> dict:
    return {"points": [{"key": key, "step": step, "timestamp": time.time(), "value": value}]}


def test_metrics_sent_to_a_succeeded_jobs_run_through_the_run_routes_are_refused(client: Client, tracking_server,
                                                                                  tmp_path: Path):
    token = tmp_path / "rank-token"  # the rank keeps its credential where the test can play a zombie with it
    keep = f"import os; open({str(token)!r}, 'w').write(os.environ['TRAINYARD_TOKEN']); "
    spec = {"name": "gated", "team": "nlp", "entrypoint": ["python", "-c", keep + RANK],
            "resources": {"workers": 1, "cpus_per_worker": 0.1, "memory_gb": 0.1}}
    job_id = client.submit(spec)["id"]
    job = wait_for(lambda: (j := client.job(job_id))["state"] in ("SUCCEEDED", "FAILED") and j, 120,
                   what="the job to end")
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert job["metrics"]["acc"]["value"] == 0.5

    forged = tracking_server.http.post(f"/v1/runs/{job_id}/metrics", json=point("acc", 0.99))
    assert forged.status_code == 409, forged.text
    assert "current attempt" in forged.json()["detail"] and "/attempts/" in forged.json()["detail"]
    late = httpx.post(f"{tracking_server.url}/v1/training-jobs/{job_id}/attempts/{job['attempt']}/metrics",
                      json=point("acc", 0.99), headers={"Authorization": f"Bearer {token.read_text()}"})
    assert late.status_code == 409, late.text  # fenced, or (once its credential is looked up again) dead
    assert "no longer current" in late.json()["detail"] or "has ended" in late.json()["detail"]
    as_user = tracking_server.http.post(f"/v1/training-jobs/{job_id}/attempts/{job['attempt']}/metrics",
                                        json=point("acc", 0.99))
    assert as_user.status_code == 403 and "TRAINYARD_TOKEN" in as_user.json()["detail"]
    assert client.job(job_id)["metrics"]["acc"]["value"] == 0.5
    assert [p["value"] for p in client.metric_history(job_id, "acc")] == [0.5]

    with pytest.raises(TrainyardError) as err:
        client.log_params(job_id, {"lr": 1.0})
    assert err.value.status == 409 and "hyperparameters" in str(err.value)
    with pytest.raises(TrainyardError) as err:
        client.end_run(job_id, "FAILED")
    assert err.value.status == 409 and f"yard cancel {job_id}" in str(err.value)
    assert client.set_tags(job_id, {"reviewed": "yes"})["tags"]["reviewed"] == "yes"  # annotations stay open


def test_a_finished_client_run_takes_no_metrics_or_params_but_takes_tags(client: Client, tracking_server):
    run = client.create_run("finished", params={"lr": 0.1})["id"]
    client.log_metrics(run, [{"key": "acc", "step": 1, "timestamp": time.time(), "value": 0.5}])
    client.end_run(run, "SUCCEEDED")

    resp = tracking_server.http.post(f"/v1/runs/{run}/metrics", json=point("acc", 0.99))
    assert resp.status_code == 409, resp.text
    assert f"run {run} ended as SUCCEEDED" in resp.json()["detail"]
    with pytest.raises(TrainyardError) as err:
        client.log_params(run, {"batch": 32})
    assert err.value.status == 409 and "read-only" in str(err.value)
    with pytest.raises(TrainyardError) as err:
        client.end_run(run, "FAILED")
    assert err.value.status == 409 and "already ended as SUCCEEDED" in str(err.value)
    assert client.run(run)["metrics"]["acc"]["value"] == 0.5
    assert client.run(run)["params"] == {"lr": "0.1"}
    assert client.set_tags(run, {"note": "baseline"})["tags"] == {"note": "baseline"}


def test_an_attempt_replaced_while_its_write_is_fenced_cannot_write_after_the_replacement(tmp_path: Path):
    """The control loop replacing attempt 1 waits for a fenced write of attempt 1 already past its
    check; once replaced, attempt 1 is refused. Unlocked, the loop would commit in between."""
    store = Store(f"sqlite:///{tmp_path / 'fence.db'}")
    spec = JobSpec.model_validate({"name": "fenced", "team": "nlp", "entrypoint": ["python", "-c", "pass"]})
    with store.session() as s:
        job = repo.create_job(s, spec, {})
        job.state, job.attempt = JobState.RUNNING, 1
        s.add(Attempt(job_id=job.id, number=1, state=AttemptState.RUNNING, launch={}))
    checked, go_on, replaced = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    def rank_writes() -> None:
        with store.session(lock=True) as s:
            repo.fenced_attempt(s, job.id, 1)
            checked.set()
            go_on.wait(10)
            repo.insert_metrics(s, job.id, [{"key": "loss", "step": 1, "timestamp": 1.0, "value": 0.3}])
            order.append("attempt 1 wrote")

    def loop_replaces() -> None:
        with store.session() as s:
            att = repo.attempt_row(s, job.id, 1)
            att.state = AttemptState.FAILED
            s.add(Attempt(job_id=job.id, number=2, state=AttemptState.RUNNING, launch={}))
            repo.get_job(s, job.id).attempt = 2
        order.append("attempt 2 launched")
        replaced.set()

    writer = threading.Thread(target=rank_writes)
    writer.start()
    assert checked.wait(10)
    loop = threading.Thread(target=loop_replaces)
    loop.start()
    assert not replaced.wait(1.0), "the attempt was replaced between the fence's check and its write"
    go_on.set()
    writer.join(10)
    loop.join(40)
    assert order == ["attempt 1 wrote", "attempt 2 launched"]
    with pytest.raises(repo.StaleAttemptError), store.session(lock=True) as s:
        ranks.metrics(s, job.id, 1, ["loss"], [2], [2.0], [0.2])
    with pytest.raises(RuntimeError, match="locked transaction"), store.session() as s:
        repo.fenced_attempt(s, job.id, 2)
    store.close()
