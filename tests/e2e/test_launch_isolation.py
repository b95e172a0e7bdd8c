"""Each launch stands alone: recorded before any process starts, confirmed after, and finished or
undone after a crash. A job whose launch fails never holds up, or duplicates, anyone else's."""

from __future__ import annotations

import hashlib

import psutil
import pytest

from tests.conftest import processes_under, wait_for
from tests.e2e.test_job_lifecycle import final, write_job

SMALL = {"workers": 2, "cpus_per_worker": 0.25, "memory_gb": 0.25}


def rank_wrappers(server) -> list[psutil.Process]:
    out = []
    for p in processes_under(server.home):
        try:
            if "trainyard.backends.local_rank" in p.cmdline():
                out.append(p)
        except psutil.Error:
            continue
    return out


def test_a_job_whose_launch_raises_fails_alone_and_healthy_jobs_launch_once(server, tmp_path):
    garbage = b"not a tar.gz archive at all" * 100  # a corrupted code blob in the store
    digest = hashlib.sha256(garbage).hexdigest()
    blob = server.home / "blobs" / "code" / f"{digest}.tar.gz"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(garbage)
    poison = server.http.post("/v1/training-jobs", json={
        "spec": {"name": "poison", "entrypoint": ["python", "main.py"], "resources": SMALL},
        "code_snapshot": {"digest": f"sha256:{digest}"}})
    assert poison.status_code == 201, poison.text
    healthy = []
    for i in range(2):
        (tmp_path / f"h{i}").mkdir()
        spec = write_job(tmp_path / f"h{i}", "import time; time.sleep(1); print('healthy')",
                         name=f"healthy-{i}", resources=SMALL)
        res = server.yard("submit", str(spec), "-q")
        assert res.returncode == 0, res.stderr
        healthy.append(res.stdout.strip())
    client = server.client()
    bad = final(client, poison.json()["id"])
    assert bad["state"] == "FAILED"
    assert "its inputs could not be prepared" in bad["reason"] and "not a tar.gz archive" in bad["reason"]
    assert bad["attempt"] == 1  # not restarted: every attempt would read the same archive
    for job_id in healthy:
        job = final(client, job_id)
        assert job["state"] == "SUCCEEDED", job["reason"]
        assert [e["kind"] for e in client.events(job_id)].count("launched") == 1
        assert job["attempt"] == 1


@pytest.mark.slow
@pytest.mark.parametrize("point", ["launch.after_intent", "launch.after_processes", "launch.after_confirm"])
def test_server_killed_during_a_launch_leaves_no_orphan_and_no_duplicate_gang(make_server, tmp_path,
                                                                              monkeypatch, point):
    monkeypatch.setenv("TRAINYARD_FAULTS", point)
    server = make_server()
    # an unconfirmed attempt 1 outlives the restart, so its gang is still there to be found
    first = "3" if point == "launch.after_confirm" else "90"
    script = "import os, time; time.sleep(int(os.environ['FIRST']) if os.environ['TRAINYARD_ATTEMPT'] == '1' else 3)"
    spec = write_job(tmp_path, script, resources=SMALL, env={"FIRST": first})
    # The loop may reach the crash point before the submit's answer is sent (the job is committed
    # first): then the id is read back from the store after the restart.
    submitted = server.yard("submit", str(spec), "-q").stdout.strip()
    server.proc.wait(60)  # the server killed itself at the crash point
    monkeypatch.delenv("TRAINYARD_FAULTS")
    server.start()
    [job_id] = [j["id"] for j in server.client().jobs()]
    assert submitted in ("", job_id)
    seen_max = 0

    def ended() -> dict | None:
        nonlocal seen_max
        seen_max = max(seen_max, len(rank_wrappers(server)))
        job = server.client().job(job_id)
        return job if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") else None

    job = wait_for(ended, 120, interval=0.2, what=f"job {job_id} to end")
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert seen_max <= 2, f"{seen_max} rank processes at once: a duplicate gang"
    wait_for(lambda: not rank_wrappers(server), 15, what="every rank process to be gone")
    events = server.client().events(job_id)
    reasons = " | ".join(e["reason"] for e in events)
    if point == "launch.after_confirm":  # confirmed before the crash: the gang is re-adopted
        assert job["attempt"] == 1
        assert any(e["kind"] == "adopted" for e in events), reasons
    else:  # recorded but never confirmed: found, stopped, and launched again once
        assert job["attempt"] == 2
        assert "the server stopped while launching attempt 1" in reasons
        stopped = 2 if point == "launch.after_processes" else 0
        assert f"{stopped} of its processes were found and stopped" in reasons, reasons
        assert [e["kind"] for e in events].count("launched") == 1
