"""Team isolation of runs, through a real server: lists, search pages, experiments, compare, a run and
everything under it (metrics, params, tags, events, logs, artifacts), and lineage.

Two teams, A and B, and the people of tests/people.py: a viewer of A, a member of A, a member of B,
and someone who is a member of A and of C. Each team has client runs; B also has a job that ran
and committed checkpoints, which the platform admin (who reads every team) registered as a
version of A's model, so A's lineage of that version points at B's run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, select, text, update

from tests.conftest import Server, shared_server
from tests.people import people
from tests.registry.conftest import train
from trainyard.principal import Role
from trainyard.store import Store
from trainyard.store.db import MIGRATIONS
from trainyard.store.registry_tables import Dataset
from trainyard.store.tracking_tables import Run

A, B, C = "team-a", "team-b", "team-c"
MISSING = "no-such-run"


@dataclass
class World:
    server: Server
    admin: httpx.Client
    viewer_a: httpx.Client
    member_a: httpx.Client
    member_b: httpx.Client
    tokens: dict[str, str]
    runs_a: list[str]  # client runs of A, oldest first
    runs_b: list[str]  # client runs of B, then B's job
    job_b: str
    legacy_job: str  # a queued job of A whose dataset is (as after the backfill) the `default` team's

    def as_token(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def created(resp: httpx.Response) -> dict:
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


def new_run(http: httpx.Client, name: str, **fields) -> str:
    return created(http.post("/v1/runs", json={"name": name, **fields}))["id"]


def batch(key: str, value: float, step: int = 1) -> dict:
    return {"points": [{"key": key, "step": step, "timestamp": time.time(), "value": value}]}


def a_dataset(http: httpx.Client, name: str, text: str) -> dict:
    data = text.encode()
    sha = hashlib.sha256(data).hexdigest()
    created(http.put(f"/v1/dataset-blobs/{sha}", content=data))
    return created(http.post("/v1/datasets", json={"name": name, "files": [
        {"path": "data.txt", "bytes": len(data), "sha256": sha}]}))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with shared_server(tmp_path_factory, "run-isolation") as (srv, root):
        tokens = people(srv.home, {"viewer-a": {A: Role.VIEWER}, "member-a": {A: Role.MEMBER},
                                   "member-b": {B: Role.MEMBER}, "two-teams": {A: Role.MEMBER, C: Role.MEMBER}})
        clients = [httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {tokens[n]}"}, timeout=30)
                   for n in ("viewer-a", "member-a", "member-b")]
        admin = srv.http
        created(admin.put(f"/v1/teams/{A}", json={"name": A, "cpus": 0}))  # A's jobs wait in the queue
        created(admin.put(f"/v1/teams/{B}", json={"name": B}))
        member_a, member_b = clients[1], clients[2]
        runs_a = [new_run(member_a, f"a-{i}", experiment="shared", params={"lr": 0.1 * (i + 1)})
                  for i in range(2)]
        runs_b = [new_run(member_b, f"b-{i}", experiment="shared", params={"lr": 0.5}) for i in range(3)]
        for run in runs_a + runs_b:
            http = member_a if run in runs_a else member_b
            assert http.post(f"/v1/runs/{run}/metrics", json=batch("val_acc", 0.9)).status_code == 200
            assert http.put(f"/v1/runs/{run}/artifacts/notes.txt", content=b"secret notes").status_code == 201
        job_b = train(srv, root, team=B)  # commits checkpoints and logs val_acc
        runs_b.append(job_b)
        created(member_a.post("/v1/models", json={"spec": {"name": "model-a", "description": "A's"}}))
        created(admin.post("/v1/models/model-a/versions", json={"run_id": job_b, "checkpoint": "latest"}))
        a_dataset(member_a, "legacy", "old data")
        legacy_job = created(member_a.post("/v1/training-jobs", json={"spec": {
            "name": "legacy", "team": A, "dataset": "legacy@v1", "entrypoint": ["python", "-c", "pass"],
            "resources": {"workers": 1, "cpus_per_worker": 0.5, "memory_gb": 0.25}}}))["id"]
        store = Store(f"sqlite:///{srv.home / 'trainyard.db'}")
        try:  # what the migration leaves of a dataset made before datasets belonged to teams
            with store.session() as s:
                s.execute(update(Dataset).where(Dataset.name == "legacy").values(team="default"))
        finally:
            store.close()
        yield World(srv, admin, *clients, tokens=tokens, runs_a=runs_a, runs_b=runs_b, job_b=job_b,
                    legacy_job=legacy_job)
        for c in clients:
            c.close()


def every_page(http: httpx.Client, limit: int, **params) -> list[list[str]]:
    pages, token = [], None
    while True:
        resp = http.get("/v1/runs", params={"limit": limit, **params, **({"page_token": token} if token else {})})
        assert resp.status_code == 200, resp.text
        pages.append([r["id"] for r in resp.json()["items"]])
        token = resp.json()["next_page_token"]
        if not token:
            return pages


def test_search_pages_experiments_and_compare_hold_only_the_callers_teams_runs(world):
    newest_a = list(reversed(world.runs_a))
    for http in (world.viewer_a, world.member_a):  # B's three runs in "shared" are newer than A's two
        assert every_page(http, 1, experiment="shared") == [[r] for r in newest_a]  # and no empty last page
        assert every_page(http, 2, experiment="shared") == [newest_a]
        assert every_page(http, 10, filter="experiment = 'shared' and val_acc > 0.5",
                          order_by="params.lr desc") == [newest_a]
        assert world.job_b not in {r for page in every_page(http, 1000) for r in page}
        assert world.legacy_job in {r for page in every_page(http, 1000) for r in page}  # A's job's run
        assert every_page(http, 10, team=B) == every_page(http, 10, filter=f"team = '{B}'") == [[]]
        experiments = http.get("/v1/experiments").json()["items"]
        assert {e["team"] for e in experiments} == {A}
        assert [e["runs"] for e in experiments if e["experiment"] == "shared"] == [2]
        compared = http.get("/v1/runs/compare", params={"ids": world.runs_a})
        assert compared.status_code == 200 and compared.json()["params"]["lr"] == ["0.1", "0.2"]
    b_runs = set(world.runs_b)
    assert {r for page in every_page(world.member_b, 3) for r in page} == b_runs
    everyone = {r for page in every_page(world.admin, 1000) for r in page}
    assert everyone >= b_runs | set(world.runs_a)
    assert {r for page in every_page(world.admin, 1000, team=B) for r in page} == b_runs
    assert {r for page in every_page(world.admin, 1000, filter=f"team = '{B}'") for r in page} == b_runs
    shared = {e["team"]: e["runs"] for e in world.admin.get("/v1/experiments").json()["items"]
              if e["experiment"] == "shared"}
    assert shared == {A: 2, B: 3}  # one project name in two teams: two experiments, never summed


def same_as_missing(http: httpx.Client, method: str, path: str, hidden: str, **kwargs) -> None:
    seen = http.request(method, path.format(hidden), **kwargs)
    missing = http.request(method, path.format(MISSING), **kwargs)
    assert seen.status_code == missing.status_code == 404, (path, seen.text, missing.text)
    assert seen.content.decode().replace(hidden, MISSING) == missing.content.decode(), (seen.text, missing.text)


READS = ("/v1/runs/{}", "/v1/runs/{}/events", "/v1/runs/{}/metrics", "/v1/runs/{}/metrics/val_acc",
         "/v1/runs/{}/logs", "/v1/runs/{}/artifacts", "/v1/runs/{}/artifacts/notes.txt", "/v1/lineage/runs/{}")


def test_another_teams_run_and_everything_under_it_answer_exactly_as_missing(world):
    client_b, job_b = world.runs_b[0], world.job_b
    for http in (world.viewer_a, world.member_a):
        for hidden in (client_b, job_b):
            for path in READS:
                same_as_missing(http, "GET", path, hidden)
        compared = http.get("/v1/runs/compare", params={"ids": [world.runs_a[0], job_b]})
        missing = http.get("/v1/runs/compare", params={"ids": [world.runs_a[0], MISSING]})
        assert compared.status_code == missing.status_code == 404
        assert compared.json()["detail"].replace(job_b, MISSING) == missing.json()["detail"]
    writes = (("PATCH", "/v1/runs/{}", {"json": {"state": "FAILED"}}),
              ("POST", "/v1/runs/{}/params", {"json": {"params": {"lr": 9}}}),
              ("POST", "/v1/runs/{}/tags", {"json": {"tags": {"mine": "now"}}}),
              ("DELETE", "/v1/runs/{}/tags/mine", {}),
              ("POST", "/v1/runs/{}/metrics", {"json": batch("val_acc", 0.0, step=2)}),
              ("PUT", "/v1/runs/{}/artifacts/notes.txt", {"content": b"overwritten"}))
    for method, path, kwargs in writes:
        same_as_missing(world.member_a, method, path, client_b, **kwargs)
    run = world.admin.get(f"/v1/runs/{client_b}").json()
    assert run["state"] == "RUNNING" and run["tags"] == {} and run["params"] == {"lr": "0.5"}
    assert run["team"] == B and run["metrics"]["val_acc"]["value"] == 0.9
    assert world.admin.get(f"/v1/runs/{client_b}/artifacts/notes.txt").content == b"secret notes"


def test_a_viewer_reads_its_teams_run_but_only_a_member_writes_it(world):
    run = new_run(world.member_a, "writable")
    v = world.viewer_a
    for path in READS[:4] + READS[5:6]:
        assert v.get(path.format(run)).status_code == 200, path
    refused = (("PATCH", "/v1/runs/{}", {"json": {"state": "FAILED"}}),
               ("POST", "/v1/runs/{}/params", {"json": {"params": {"lr": 9}}}),
               ("POST", "/v1/runs/{}/tags", {"json": {"tags": {"by": "viewer"}}}),
               ("DELETE", "/v1/runs/{}/tags/by", {}),
               ("POST", "/v1/runs/{}/metrics", {"json": batch("loss", 1.0)}),
               ("PUT", "/v1/runs/{}/artifacts/model.pt", {"content": b"weights"}))
    for method, path, kwargs in refused:
        resp = v.request(method, path.format(run), **kwargs)
        assert resp.status_code == 403, (path, resp.text)
        assert "takes the member role in team 'team-a'" in resp.json()["detail"]
    assert world.member_a.get(f"/v1/runs/{run}").json()["params"] == {}
    for method, path, kwargs in refused[1:] + refused[:1]:  # the member can, ending it last
        resp = world.member_a.request(method, path.format(run), **kwargs)
        assert resp.status_code in (200, 201), (path, resp.text)
    done = v.get(f"/v1/runs/{run}").json()
    assert done["state"] == "FAILED" and done["params"] == {"lr": "9"} and done["metrics"]["loss"]["value"] == 1.0
    assert v.get(f"/v1/runs/{run}/artifacts/model.pt").content == b"weights"


def test_a_new_run_is_the_named_team_or_the_callers_only_team(world):
    assert created(world.member_a.post("/v1/runs", json={"name": "mine"}))["team"] == A
    assert created(world.admin.post("/v1/runs", json={"name": "admins"}))["team"] == "default"
    aimed = world.member_a.post("/v1/runs", json={"name": "aimed", "team": B})
    assert aimed.status_code == 403 and "may not create runs in team 'team-b'" in aimed.json()["detail"]
    viewer = world.viewer_a.post("/v1/runs", json={"name": "viewers"})
    assert viewer.status_code == 403 and "member role in some team" in viewer.json()["detail"]
    with world.as_token(world.tokens["two-teams"]) as two:
        unsure = two.post("/v1/runs", json={"name": "which"})
        assert unsure.status_code == 422
        [error] = unsure.json()["errors"]
        assert error["field"] == "team" and "team-a, team-c" in error["message"]
        assert created(two.post("/v1/runs", json={"name": "c-run", "team": C}))["team"] == C
    assert "aimed" not in {r["name"] for r in world.admin.get("/v1/runs", params={"team": B}).json()["items"]}


def test_a_script_names_its_team_with_trainyard_team(world, tmp_path: Path):
    script = tmp_path / "fit.py"
    script.write_text("import trainyard\nctx = trainyard.init()\nprint('run', ctx.run_id, flush=True)\n"
                      "ctx.log({'loss': 0.5}, step=1)\nctx.finish()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    env.update({"TRAINYARD_SERVER": world.server.url, "TRAINYARD_TOKEN": world.tokens["two-teams"],
                "TRAINYARD_TEAM": C, "TRAINYARD_RUN_DIR": str(tmp_path / "run")})
    proc = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    run_id = next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("run "))
    run = world.admin.get(f"/v1/runs/{run_id}").json()
    assert run["team"] == C and run["state"] == "SUCCEEDED" and run["metrics"]["loss"]["value"] == 0.5
    assert world.member_a.get(f"/v1/runs/{run_id}").status_code == 404


def test_lineage_shows_another_teams_run_and_dataset_only_as_unavailable(world):
    admin_view = world.admin.get("/v1/lineage/models/model-a/versions/1").json()
    assert admin_view["run"]["available"] and admin_view["run"]["team"] == B
    code = admin_view["run"]["code"]["digest"]
    for http in (world.viewer_a, world.member_a):
        resp = http.get("/v1/lineage/models/model-a/versions/1")
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        assert doc["ref"] == "model-a@v1" and doc["checkpoint"]["step"] == 3  # A's own record of the version
        assert doc["run"] == {"run": world.job_b, "available": False}
        assert code not in resp.text
    hidden = world.member_b.get("/v1/lineage/models/model-a/versions/1")
    missing = world.member_b.get("/v1/lineage/models/no-such-model/versions/1")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"].replace("model-a", "no-such-model") == missing.json()["detail"]

    snapshot = world.admin.get("/v1/datasets/legacy/versions/1").json()
    full = world.admin.get(f"/v1/lineage/runs/{world.legacy_job}").json()["dataset"]
    assert full == {"ref": "legacy@v1", "available": True, "digest": snapshot["digest"], "files": 1, "bytes": 8}
    resp = world.viewer_a.get(f"/v1/lineage/runs/{world.legacy_job}")
    assert resp.status_code == 200, resp.text
    assert resp.json()["dataset"] == {"ref": "legacy@v1", "available": False, "digest": None, "files": None,
                                      "bytes": None}
    assert snapshot["digest"] not in resp.text

    shown = subprocess.run([sys.executable, "-m", "trainyard.cli.main", "lineage", "model-a@v1"],
                           env={**world.server.env, "TRAINYARD_TOKEN": world.tokens["viewer-a"]},
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert f"run {world.job_b}  unavailable" in shown.stdout


def test_a_client_run_made_before_teams_is_defaults_and_a_jobs_run_its_jobs(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:  # a store from before runs belonged to teams
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002_tracking")
        conn.execute(text("INSERT INTO jobs (id, name, team, project, spec, state, reason, priority, attempt, "
                          "restarts, cancel_requested, created_at, updated_at) VALUES ('job-1', 'j', 'vision', "
                          "'default', '{}', 'SUCCEEDED', '', 1, 1, 0, 0, '2026-01-01', '2026-01-01')"))
        for run_id, source in (("job-1", "job"), ("client-1", "client"), ("gone-job", "job")):
            conn.execute(text("INSERT INTO runs (id, name, project, source, created_at) "
                              "VALUES (:id, 'r', 'default', :source, '2026-01-01')"), {"id": run_id, "source": source})
    engine.dispose()
    store = Store(url)  # upgrades to every head
    try:
        with store.session() as s:
            teams = dict(s.execute(select(Run.id, Run.team)).tuples().all())
    finally:
        store.close()
    assert teams == {"job-1": "vision", "client-1": "default", "gone-job": "default"}
