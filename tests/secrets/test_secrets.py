"""A team's secrets on a real server: set from stdin, used by a job's ranks, seen nowhere else."""

from __future__ import annotations

import hashlib
import json
import secrets
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, YARD, Server, shared_server, wait_for
from tests.people import people
from trainyard.backends.local import free_port
from trainyard.principal import Role

VALUE = "hf_" + secrets.token_urlsafe(24)  # unique to this run: found only where it leaked
RANK = "; ".join([  # an entrypoint word is one line
    "import hashlib, os, sys, time",
    "v = os.environ['HF_TOKEN']",
    "print('level', os.environ['LOG_LEVEL'], 'digest', hashlib.sha256(v.encode()).hexdigest(), flush=True)",
    "print('token is', v, flush=True)",
    "sys.stdout.write(v[:7]); sys.stdout.flush(); time.sleep(0.3)",  # one value in two writes
    "sys.stdout.write(v[7:] + ' (split)' + chr(10)); sys.stdout.flush()",
    "print('on stderr', v, file=sys.stderr, flush=True)",
])
SMALL = {"workers": 1, "cpus_per_worker": 0.5, "memory_gb": 0.25}
JOB = {"name": "uses-secret", "entrypoint": ["python", "-c", RANK], "resources": SMALL,
       "env": {"LOG_LEVEL": "info", "HF_TOKEN": {"secret": "HF_TOKEN"}}}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    with shared_server(tmp_path_factory, "secrets") as (server, _):
        yield server


def yard_with_stdin(server: Server, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*YARD, *args], input=stdin, env=server.env, capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def set_hf_token(server: Server) -> None:
    res = yard_with_stdin(server, VALUE + "\n", "secrets", "set", "default", "HF_TOKEN")
    assert res.returncode == 0, res.stderr
    assert VALUE not in res.stdout + res.stderr
    assert "secret HF_TOKEN of team default set" in res.stderr


def user_token(server: Server, name: str, team: str, role: Role) -> dict[str, str]:
    """A user holding `role` in `team` only, made straight in the server's store; its auth header."""
    return {"Authorization": f"Bearer {people(server.home, {name: {team: role}})[name]}"}


def ended(server: Server, job_id: str) -> dict:
    return wait_for(lambda: (j := server.http.get(f"/v1/training-jobs/{job_id}").json())["state"]
                    in ("SUCCEEDED", "FAILED", "CANCELLED") and j, 120, what=f"job {job_id} to end")


def full_log(server: Server, job_id: str, rank: int = 0) -> str:
    res = server.yard("logs", job_id, "--rank", str(rank))
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_a_secret_reaches_the_ranks_and_appears_nowhere_else(srv, tmp_path):
    set_hf_token(srv)
    listed = yard_with_stdin(srv, "", "secrets", "list", "default")
    assert listed.returncode == 0 and "HF_TOKEN" in listed.stdout and "admin" in listed.stdout
    assert VALUE not in listed.stdout + listed.stderr

    resp = srv.http.post("/v1/training-jobs", json={"spec": JOB})
    assert resp.status_code == 201, resp.text
    job_id = resp.json()["id"]
    job = ended(srv, job_id)
    assert job["state"] == "SUCCEEDED", job["reason"]
    assert job["spec"]["env"] == {"LOG_LEVEL": "info", "HF_TOKEN": {"secret": "HF_TOKEN"}}

    log = full_log(srv, job_id)
    assert f"digest {hashlib.sha256(VALUE.encode()).hexdigest()}" in log  # the rank had the real value
    assert "level info" in log
    assert "token is [secret HF_TOKEN]" in log
    assert "[secret HF_TOKEN] (split)" in log
    assert "on stderr [secret HF_TOKEN]" in log
    stored = b"".join(p.read_bytes() for p in (srv.home / "logs" / job_id).rglob("rank-*.log"))
    assert b"[secret HF_TOKEN]" in stored and VALUE.encode() not in stored  # redacted as it was written

    sweep = {"name": "secret-sweep", "job": {**JOB, "name": "trial"}, "metric": {"name": "loss"},
             "search": {"x": {"type": "float", "low": 0.0, "high": 1.0}}, "sampler": "random",
             "max_trials": 1, "parallelism": 1}
    resp = srv.http.post("/v1/sweeps", json={"spec": sweep})
    assert resp.status_code == 201, resp.text
    sweep_id = resp.json()["id"]
    trials = wait_for(lambda: srv.http.get(f"/v1/sweeps/{sweep_id}/trials").json()["items"], 60,
                      what="the sweep's trial")
    trial_job = ended(srv, trials[0]["job_id"])
    assert trial_job["state"] == "SUCCEEDED", trial_job["reason"]

    responses = [srv.http.get(path) for path in (
        f"/v1/training-jobs/{job_id}", f"/v1/training-jobs/{job_id}/events", "/v1/training-jobs",
        f"/v1/lineage/runs/{job_id}", f"/v1/runs/{job_id}", f"/v1/sweeps/{sweep_id}",
        f"/v1/sweeps/{sweep_id}/trials", f"/v1/sweeps/{sweep_id}/events", "/v1/teams/default/secrets",
        f"/v1/training-jobs/{trial_job['id']}", f"/v1/training-jobs/{trial_job['id']}/events",
        f"/v1/training-jobs/{job_id}/logs", f"/v1/training-jobs/{trial_job['id']}/logs",
        f"/v1/runs/{job_id}/logs", f"/v1/runs/{job_id}/events")]
    for resp in responses:
        assert resp.status_code == 200, (resp.url, resp.text)
        assert VALUE not in resp.text, resp.url
    assert srv.http.get(f"/v1/sweeps/{sweep_id}").json()["spec"]["job"]["env"]["HF_TOKEN"] == {"secret": "HF_TOKEN"}
    assert "[secret HF_TOKEN]" in full_log(srv, trial_job["id"])

    assert VALUE.encode() not in (srv.home / "server.log").read_bytes()
    for db in (srv.home / "trainyard.db", srv.home / "trainyard.db-wal"):
        if db.exists():
            assert VALUE.encode() not in db.read_bytes(), db
    key = srv.home / "secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_a_plain_value_under_a_secret_looking_name_is_refused_with_the_secret_form(srv, tmp_path):
    resp = srv.http.post("/v1/training-jobs", json={"spec": {**JOB, "env": {"API_KEY": "x"}}})
    assert resp.status_code == 422
    [error] = resp.json()["errors"]
    assert error["field"] == "env.API_KEY"
    assert "API_KEY: {secret: API_KEY}" in error["message"]
    assert "yard secrets set default API_KEY" in error["message"]

    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({**JOB, "env": {"db_password": "hunter2"}}))
    res = srv.yard("submit", str(spec))
    assert res.returncode == 2
    assert "env.db_password" in res.stderr and "{secret: db_password}" in " ".join(res.stderr.split())


def test_a_spec_naming_a_secret_its_team_lacks_is_refused_naming_the_env_entry(srv):
    spec = {**JOB, "env": {"HF_TOKEN": {"secret": "HF_TOKEN"}, "WANDB": {"secret": "NO_SUCH_SECRET"}}}
    set_hf_token(srv)
    resp = srv.http.post("/v1/training-jobs", json={"spec": spec})
    assert resp.status_code == 422
    [error] = resp.json()["errors"]
    assert error["field"] == "env.WANDB"
    assert "team 'default' has no secret 'NO_SUCH_SECRET'" in error["message"]


def test_another_team_cannot_read_change_or_use_a_teams_secret(srv):
    set_hf_token(srv)
    outsider = user_token(srv, "olga", "vision", Role.ADMIN)
    for method, path, body in (("GET", "/v1/teams/default/secrets", None),
                               ("PUT", "/v1/teams/default/secrets/HF_TOKEN", {"value": "overwritten"}),
                               ("DELETE", "/v1/teams/default/secrets/HF_TOKEN", None)):
        resp = srv.http.request(method, path, json=body, headers=outsider)
        assert resp.status_code == 404, (method, resp.text)
    missing = srv.http.delete("/v1/teams/default/secrets/NEVER_SET")
    assert missing.json() == srv.http.delete("/v1/teams/default/secrets/NEVER_SET", headers=outsider).json()

    use_theirs = srv.http.post("/v1/training-jobs", json={"spec": JOB}, headers=outsider)
    assert use_theirs.status_code == 403  # team default is not olga's to submit to
    use_as_own = srv.http.post("/v1/training-jobs", json={"spec": {**JOB, "team": "vision"}}, headers=outsider)
    assert use_as_own.status_code == 422
    assert use_as_own.json()["errors"][0]["field"] == "env.HF_TOKEN"  # vision has no HF_TOKEN of its own
    assert srv.http.get("/v1/teams/vision/secrets", headers=outsider).json()["items"] == []

    member = user_token(srv, "max", "default", Role.MEMBER)
    names = [s["name"] for s in srv.http.get("/v1/teams/default/secrets", headers=member).json()["items"]]
    assert "HF_TOKEN" in names
    refused = srv.http.put("/v1/teams/default/secrets/HF_TOKEN", json={"value": "x"}, headers=member)
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    job = ended(srv, srv.http.post("/v1/training-jobs", json={"spec": JOB}).json()["id"])
    assert f"digest {hashlib.sha256(VALUE.encode()).hexdigest()}" in full_log(srv, job["id"])  # unchanged


def test_secrets_set_list_and_delete_from_the_cli(srv):
    res = yard_with_stdin(srv, "s3cr3t-value-9\n", "secrets", "set", "default", "DEPLOY_KEY")
    assert res.returncode == 0, res.stderr
    assert "s3cr3t-value-9" not in res.stdout + res.stderr
    assert "DEPLOY_KEY" in yard_with_stdin(srv, "", "secrets", "list", "default").stdout
    empty = yard_with_stdin(srv, "", "secrets", "set", "default", "OTHER_KEY")
    assert empty.returncode == 2 and "no value for OTHER_KEY on stdin" in empty.stderr
    res = yard_with_stdin(srv, "", "secrets", "delete", "default", "DEPLOY_KEY")
    assert res.returncode == 0, res.stderr
    assert "DEPLOY_KEY" not in yard_with_stdin(srv, "", "secrets", "list", "default").stdout
    again = yard_with_stdin(srv, "", "secrets", "delete", "default", "DEPLOY_KEY")
    assert again.returncode == 2 and "team 'default' has no secret 'DEPLOY_KEY'" in again.stderr


def test_a_server_with_a_bad_secrets_key_refuses_to_start(tmp_path: Path):
    home = tmp_path / "home"
    env = {**Server(home=home, port=0, extra_args=[]).env, "TRAINYARD_SECRETS_KEY": "not-a-fernet-key"}
    res = subprocess.run([*YARD, "server", "--port", str(free_port())], env=env, capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert res.returncode == 2
    assert "TRAINYARD_SECRETS_KEY must hold Fernet keys" in res.stderr
    assert "not-a-fernet-key" not in res.stderr
