"""What no caller can do: slip a job past admission, read the server's secrets, wipe the built-in
priority classes, smuggle control characters into a launch, or reach the API under a foreign host."""

from __future__ import annotations

import httpx

from tests.e2e.test_job_lifecycle import final, write_job

SMALL = {"workers": 1, "cpus_per_worker": 0.5, "memory_gb": 0.25}
JOB = {"name": "plain", "entrypoint": ["python", "-c", "print(1)"], "resources": SMALL}


def _make_dataset(server, tmp_path, name: str, team: str) -> None:
    data = tmp_path / name
    data.mkdir()
    (data / "secret.txt").write_text(f"{team}'s data\n")
    res = server.yard("datasets", "create", name, str(data), "--team", team)
    assert res.returncode == 0, res.stderr


def test_a_sweep_cannot_use_another_teams_dataset_or_an_unknown_priority(server, tmp_path):
    _make_dataset(server, tmp_path, "private", "vision")
    search = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    for job, field in (({**JOB, "team": "speech", "dataset": "private@v1"}, "job.dataset"),
                       ({**JOB, "priority": "9999"}, "job.priority")):
        spec = {"name": "sneaky", "job": job, "metric": {"name": "loss"}, "max_trials": 2, "search": search}
        resp = server.http.post("/v1/sweeps", json={"spec": spec})
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"][0]["field"] == field
    assert server.http.get("/v1/sweeps").json()["items"] == []
    assert server.http.get("/v1/training-jobs").json()["items"] == []


def test_adding_a_priority_class_keeps_the_built_in_ones(server):
    resp = server.http.put("/v1/priority-classes/urgent", json={"value": 10})
    assert resp.status_code == 200, resp.text
    classes = server.http.get("/v1/priority-classes").json()
    assert classes == {"low": 0, "normal": 1, "high": 2, "critical": 3, "urgent": 10}
    resp = server.http.post("/v1/training-jobs", json={"spec": JOB})  # priority: normal
    assert resp.status_code == 201, resp.text
    server.http.put("/v1/priority-classes/high", json={"value": 5})  # a built-in, replaced by name
    assert server.http.get("/v1/priority-classes").json()["high"] == 5


def test_ranks_get_an_explicit_environment_without_the_servers_secrets(make_server, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "server-only-secret-value")
    monkeypatch.setenv("TRAINYARD_TEST_DB_PASSWORD", "hunter2")
    server = make_server()
    script = ("import os, sys\n"
              "for k, v in sorted(os.environ.items()): print(f'{k}={v}')\n"
              "sys.exit(0 if 'PATH' in os.environ and os.environ['MY_SETTING'] == 'on' else 5)\n")
    spec = write_job(tmp_path, script, env={"MY_SETTING": "on"}, resources=SMALL)
    job_id = server.yard("submit", str(spec), "-q").stdout.strip()
    job = final(server.client(), job_id)
    assert job["state"] == "SUCCEEDED", job["reason"]
    logs = server.yard("logs", job_id).stdout
    assert "MY_SETTING=on" in logs and "RANK=0" in logs and "TRAINYARD_JOB_ID=" in logs
    assert "server-only-secret-value" not in logs and "AWS_SECRET_ACCESS_KEY" not in logs
    assert "hunter2" not in logs


def test_control_characters_in_env_or_entrypoint_are_refused_by_field(server):
    cases = [({"env": {"X": "a\u0000b"}}, "env"), ({"env": {"X\u00e9": "1"}}, "env"),
             ({"entrypoint": ["python", "-c", "print(1)\nimport os"]}, "entrypoint"),
             ({"env": {"CUDA_VISIBLE_DEVICES": "0,1"}}, "env")]
    for fields, field in cases:
        resp = server.http.post("/v1/training-jobs", json={"spec": {**JOB, **fields}})
        assert resp.status_code == 422, (fields, resp.text)
        assert resp.json()["errors"][0]["field"] == field
    assert server.http.get("/v1/training-jobs").json()["items"] == []


def test_a_poison_env_job_does_not_stop_a_healthy_job_from_running(server, tmp_path):
    """The launch that once raised inside the scheduling pass is now refused at the door."""
    poison = server.http.post("/v1/training-jobs",
                        json={"spec": {**JOB, "name": "poison", "env": {"X": "a\u0000b"}}})
    assert poison.status_code == 422
    spec = write_job(tmp_path, "print('healthy')", resources=SMALL)
    job_id = server.yard("submit", str(spec), "-q").stdout.strip()
    assert final(server.client(), job_id)["state"] == "SUCCEEDED"
    launches = [e for e in server.client().events(job_id) if e["kind"] == "launched"]
    assert len(launches) == 1


def test_a_foreign_host_header_is_refused_before_any_route(server):
    for host in ("evil.example", "evil.example:8765", "127.0.0.1.nip.io"):
        resp = server.http.get("/v1/training-jobs", headers={"host": host})
        assert resp.status_code == 421, host
        assert resp.json()["errors"][0]["field"] == "Host"
    for host in ("localhost", f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        assert server.http.get("/v1/training-jobs", headers={"host": host}).status_code == 200


def test_allowed_hosts_can_be_extended_by_the_operator(make_server, monkeypatch):
    monkeypatch.setenv("TRAINYARD_ALLOWED_HOSTS", "trainyard.internal")
    server = make_server()
    resp = httpx.get(f"{server.url}/healthz", headers={"host": "trainyard.internal:8765"})
    assert resp.status_code == 200
