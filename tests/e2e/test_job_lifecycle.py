"""Jobs that need no training: the state machine, restarts, cancel, bad specs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import processes_under, wait_for


def write_job(tmp_path: Path, script: str, **fields) -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "main.py").write_text(script)
    spec = {"name": "plain", "entrypoint": ["python", "main.py"], "code": "code",
            "resources": {"workers": 2, "cpus_per_worker": 0.5, "memory_gb": 0.5}, **fields}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(spec))
    return path


def final(client, job_id: str, timeout: float = 120) -> dict:
    return wait_for(lambda: (j := client.job(job_id))["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") and j,
                    timeout, what=f"job {job_id} to end")


def test_plain_job_succeeds_and_its_logs_are_kept(server, tmp_path):
    spec = write_job(tmp_path, "import os; print('hello from rank', os.environ['RANK'])")
    res = server.yard("submit", str(spec), "-q")
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.strip()
    job = final(server.client(), job_id)
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert job["attempt"] == 1
    logs = server.yard("logs", job_id, "--rank", "1")
    assert "hello from rank 1" in logs.stdout


def test_api_only_server_queues_jobs_for_the_process_that_runs_the_control_loop(make_server, tmp_path):
    api_only = make_server("--no-control-loop")
    job_id = api_only.yard("submit", str(write_job(tmp_path, "print('ran')")), "-q").stdout.strip()
    time.sleep(3)  # a dozen reconcile intervals: a loop in this process would have launched it
    job = api_only.client().job(job_id)
    assert (job["state"], job["attempt"]) == ("QUEUED", 0)
    make_server()  # the same home, with the control loop
    job = final(api_only.client(), job_id)
    assert job["state"] == "SUCCEEDED", job["reason"]


def test_failing_job_is_restarted_then_fails_with_the_reason(server, tmp_path):
    spec = write_job(tmp_path, "import sys, os; sys.exit(3 if os.environ['RANK'] == '1' else 0)",
                     max_restarts=1)
    job_id = server.yard("submit", str(spec), "-q").stdout.strip()
    job = final(server.client(), job_id)
    assert job["state"] == "FAILED"
    assert job["attempt"] == 2
    assert "worker rank 1 exited with code 3" in job["reason"]
    assert "max_restarts (1) exhausted" in job["reason"]
    kinds = [e["kind"] for e in server.client().events(job_id)]
    assert kinds.count("launched") == 2 and "restarting" in kinds


def test_cancel_stops_every_rank_with_no_orphans(server, tmp_path):
    spec = write_job(tmp_path, "import time, subprocess, sys\n"
                     "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
                     "time.sleep(600)\n")
    job_id = server.yard("submit", str(spec), "-q").stdout.strip()
    client = server.client()
    wait_for(lambda: len(processes_under(server.home)) >= 6, 60, what="ranks and their children")
    res = server.yard("cancel", job_id)
    assert res.returncode == 0, res.stderr
    job = final(client, job_id)
    assert job["state"] == "CANCELLED"
    wait_for(lambda: not processes_under(server.home), 30, what="all rank processes to be gone")


@pytest.mark.parametrize(("fields", "field"), [
    ({"entrypoint": []}, "entrypoint"),
    ({"resources": {"workers": 0}}, "resources.workers"),
    ({"colour": "blue"}, "colour"),
    ({"resources": {"gpus_per_worker": 1}}, "resources.gpus_per_worker"),
])
def test_bad_spec_is_refused_naming_the_field(server, tmp_path, fields, field):
    spec = {"name": "bad", "entrypoint": ["python", "x.py"], **fields}
    client = server.client()

    resp = server.http.post("/v1/training-jobs", json={"spec": spec})
    assert resp.status_code == 422
    assert field in [e["field"] for e in resp.json()["errors"]]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(spec))
    res = server.yard("submit", str(path))
    assert res.returncode != 0
    assert field in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert client.jobs() == []


def test_logs_follow_streams_until_the_job_ends(server, tmp_path):
    spec = write_job(tmp_path, "import time\nfor i in range(8):\n    print('line', i, flush=True)\n"
                     "    time.sleep(0.25)\n", resources={"workers": 1, "cpus_per_worker": 0.5, "memory_gb": 0.5})
    job_id = server.yard("submit", str(spec), "-q").stdout.strip()
    res = server.yard("logs", job_id, "--follow", timeout=120)
    assert res.returncode == 0, res.stderr
    assert [f"line {i}" for i in range(8)] == [ln for ln in res.stdout.splitlines() if ln.startswith("line")]
    assert server.client().job(job_id)["state"] == "SUCCEEDED"
