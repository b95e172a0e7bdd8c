"""The audit log, read from a real server: every state-changing call on record, accepted or refused,
with who, what, when, from where and how it ended; never a request body; read-only, admins only."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.auth.identities import token_id, user_token
from tests.conftest import Server, shared_server
from trainyard.client import TrainyardError
from trainyard.principal import Role

CANARY = "canary-3f9c1d-never-in-the-audit-log"  # in request bodies only
ATTEMPT_ROUTES = "/v1/training-jobs/{job_id}/attempts/{attempt}/"
INGESTION = {("POST", "/v1/runs/{run_id}/metrics"), ("PUT", "/v1/dataset-blobs/{sha256}"),
             ("POST", "/v1/dataset-blobs/missing")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with shared_server(tmp_path_factory, "audit") as (srv, _):
        yield srv


@pytest.fixture(scope="module")
def calls(server: Server) -> dict[str, Any]:
    """One of each call the tests look for, made once: what was sent, and when."""
    http = server.http
    started = datetime.now(UTC)
    spec = {"name": "audited", "entrypoint": ["python", "-c", "import time; time.sleep(120)"],
            "hyperparameters": {"note": CANARY}, "resources": {"cpus_per_worker": 0.5, "memory_gb": 0.1}}
    job = http.post("/v1/training-jobs", json={"spec": spec})
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    cancelled = http.post(f"/v1/training-jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert http.put("/v1/priority-classes/urgent", json={"value": 50}).status_code == 200
    refused = http.post("/v1/training-jobs", json={"spec": {"name": "no-entrypoint", "hyperparameters": {"n": CANARY}}})
    assert refused.status_code == 422, refused.text
    anonymous = httpx.post(f"{server.url}/v1/training-jobs", json={"spec": spec})
    assert anonymous.status_code == 401
    run_id = http.post("/v1/runs", json={"name": "ingested"}).json()["id"]
    with server.client() as c:
        c.log_metrics(run_id, [{"key": "loss", "step": 1, "timestamp": time.time(), "value": 0.5}])
    return {"job_id": job_id, "run_id": run_id, "started": started}


def rows(server: Server, **params: Any) -> list[dict[str, Any]]:
    resp = server.http.get("/v1/audit", params={"limit": 1000, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def one(found: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    hits = [r for r in found if all(r[k] == v for k, v in match.items())]
    assert len(hits) == 1, (match, found)
    return hits[0]


def test_each_change_and_each_refusal_is_on_record_with_actor_object_outcome_and_source(
        server: Server, calls: dict[str, Any]) -> None:
    found = rows(server, since="1h")
    admin_token = token_id(server.token)
    submit = one(found, action="submit_job", outcome=201)
    assert submit["actor"] == "admin" and submit["token_id"] == admin_token
    assert (submit["method"], submit["route"]) == ("POST", "/v1/training-jobs")
    assert submit["object"] == {"id": calls["job_id"], "name": "audited"} and submit["team"] == "default"
    assert submit["source"] == "127.0.0.1" and submit["reason"] is None
    assert calls["started"] - timedelta(seconds=1) <= datetime.fromisoformat(submit["time"]) <= datetime.now(UTC)

    cancel = one(found, action="cancel_job")
    assert (cancel["actor"], cancel["outcome"], cancel["team"]) == ("admin", 200, "default")
    assert (cancel["route"], cancel["object"]) == ("/v1/training-jobs/{job_id}/cancel", {"job_id": calls["job_id"]})

    priority = one(found, action="put_priority_class")
    assert (priority["actor"], priority["method"], priority["outcome"]) == ("admin", "PUT", 200)
    assert priority["object"] == {"name": "urgent"}

    refused = one(found, action="submit_job", outcome=422)
    assert refused["actor"] == "admin" and "entrypoint" in refused["reason"] and refused["object"] == {}

    anonymous = one(found, action="submit_job", outcome=401)
    assert (anonymous["actor"], anonymous["token_id"], anonymous["source"]) == ("anonymous", None, "127.0.0.1")
    assert "needs a token" in anonymous["reason"]

    assert not [r for r in found if r["action"] == "log_metrics"]  # ingestion is not audited
    assert [r["id"] for r in found] == sorted((r["id"] for r in found), reverse=True)  # newest first


def test_no_request_body_header_or_token_reaches_the_audit_table(server: Server, calls: dict[str, Any]) -> None:
    with sqlite3.connect(server.home / "trainyard.db") as db:
        stored = repr(db.execute("SELECT * FROM audit").fetchall())
    assert "submit_job" in stored
    assert CANARY not in stored
    assert server.token.rsplit("_", 1)[1] not in stored  # the token's secret part (its id is kept)


def test_yard_audit_prints_the_admins_calls_as_a_table(server: Server, calls: dict[str, Any]) -> None:
    res = server.yard("audit", "--actor", "admin", "--since", "1h")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:4] == ["TIME", "(UTC)", "ACTOR", "ACTION"]
    for action in ("submit_job", "cancel_job", "put_priority_class"):
        assert any(action in line and "admin" in line for line in lines), res.stdout
    assert any("submit_job" in line and "422" in line for line in lines), res.stdout
    assert "anonymous" not in res.stdout

    only = server.yard("audit", "--action", "cancel_job")
    assert only.returncode == 0 and "cancel_job" in only.stdout and "submit_job" not in only.stdout
    bad = server.yard("audit", "--since", "last tuesday")
    assert bad.returncode != 0 and "since" in bad.stderr and "1d" in bad.stderr


def test_the_audit_log_pages_back_through_older_rows(server: Server, calls: dict[str, Any]) -> None:
    everything = rows(server)
    first = server.http.get("/v1/audit", params={"limit": 2}).json()
    assert [r["id"] for r in first["items"]] == [r["id"] for r in everything[:2]]
    second = server.http.get("/v1/audit", params={"limit": 2, "before": first["next"]}).json()
    assert [r["id"] for r in second["items"]] == [r["id"] for r in everything[2:4]]
    assert server.http.get("/v1/audit", params={"limit": 1001}).status_code == 422


def test_only_admins_read_the_audit_log_and_a_team_admin_only_their_teams_rows(
        server: Server, calls: dict[str, Any]) -> None:
    member = server.client(user_token(server, "bob", role=Role.MEMBER))
    with pytest.raises(TrainyardError, match="platform admin") as refused:
        member.audit()
    assert refused.value.status == 403

    team_admin = server.client(user_token(server, "carol", role=Role.ADMIN))
    seen = team_admin.audit(limit=1000)["items"]
    assert {r["team"] for r in seen} == {"default"}
    assert one(seen, action="submit_job", outcome=201)["object"]["id"] == calls["job_id"]
    assert not [r for r in seen if r["action"] == "put_priority_class"]  # no team: platform admins only
    assert not rows(server, actor="bob")  # a read, refused or not, is not a change: no row


def test_no_route_changes_or_deletes_audit_rows(server: Server, calls: dict[str, Any]) -> None:
    before = rows(server)
    for method in ("DELETE", "PUT", "PATCH", "POST"):
        assert server.http.request(method, "/v1/audit").status_code == 405
    assert server.http.delete(f"/v1/audit/{before[0]['id']}").status_code == 404
    paths = server.http.get("/openapi.json").json()["paths"]
    assert {p: set(ops) for p, ops in paths.items() if p.startswith("/v1/audit")} == {"/v1/audit": {"get"}}
    after = rows(server)
    assert after[len(after) - len(before):] == before  # every row still there, unchanged
    tried = one(after, method="DELETE", route="/v1/audit")
    assert tried["action"] == "method_not_allowed" and tried["outcome"] == 405


def test_every_write_route_is_audited_even_when_refused_unauthenticated(server: Server) -> None:
    """A route added later is audited without anyone remembering to: every write operation in the
    OpenAPI, called without a token, leaves a row; only ingestion leaves none."""
    spec = server.http.get("/openapi.json").json()
    writes = {(method.upper(), path, _filled(path, op))
              for path, ops in spec["paths"].items() for method, op in ops.items() if method != "get"}
    newest = rows(server, limit=1)[0]["id"]
    for method, _, url in writes:
        assert httpx.request(method, f"{server.url}{url}").status_code == 401, (method, url)
    audited = {(r["method"], r["route"]) for r in rows(server, actor="anonymous") if r["id"] > newest}
    exempt = {(m, p) for m, p, _ in writes if p.startswith(ATTEMPT_ROUTES) or (m, p) in INGESTION}
    assert len(exempt) >= 7  # heartbeat, metrics, checkpoints, corrupt, events; run metrics; blobs
    assert audited == {(m, p) for m, p, _ in writes} - exempt


def _filled(path: str, op: dict[str, Any]) -> str:
    for param in op.get("parameters", []):
        if param["in"] == "path":
            value = "1" if param["schema"].get("type") == "integer" else "x"
            path = path.replace("{" + param["name"] + "}", value)
    return path


def test_a_forwarded_for_header_does_not_change_the_recorded_source(server: Server) -> None:
    resp = server.http.put("/v1/priority-classes/forwarded", json={"value": 7},
                           headers={"X-Forwarded-For": "10.9.9.9"})
    assert resp.status_code == 200, resp.text
    row = one(rows(server, action="put_priority_class"), object={"name": "forwarded"})
    assert row["source"] == "127.0.0.1"
