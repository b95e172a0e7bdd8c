"""Team isolation of datasets, models, sweeps, code archives and the admin routes, through a real server.

Two teams, A and B, and three people: a viewer of A, a member of A and a member of B (made in the
server's own database, as an operator would). Each team has a dataset, a model and a sweep; B
also has a job run. Quotas of zero CPUs keep every trial queued, so nothing runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import Server, shared_server, wait_for
from tests.people import people
from trainyard.principal import Role
from trainyard.storage.code_archive import pack_directory

A, B = "team-a", "team-b"
QUICK = {"workers": 1, "cpus_per_worker": 0.5, "memory_gb": 0.25}
MISSING = "no-such-thing"


@dataclass
class World:
    server: Server
    viewer_a: httpx.Client
    member_a: httpx.Client
    member_b: httpx.Client
    admin: httpx.Client
    sweep_a: str
    sweep_b: str
    run_b: str
    tokens: dict[str, str]

    def as_token(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def dataset(http: httpx.Client, name: str, text: str, **fields) -> httpx.Response:
    data = text.encode()
    sha = hashlib.sha256(data).hexdigest()
    put = http.put(f"/v1/dataset-blobs/{sha}", content=data)
    if put.status_code != 200:
        return put
    return http.post("/v1/datasets", json={"name": name, "files": [
        {"path": "data.txt", "bytes": len(data), "sha256": sha}], **fields})


def sweep_spec(team: str, name: str, **job) -> dict:
    return {"name": name, "metric": {"name": "loss"}, "max_trials": 1, "parallelism": 1,
            "search": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
            "job": {"name": "trial", "team": team, "entrypoint": ["python", "-c", "pass"], "resources": QUICK,
                    **job}}


def created(resp: httpx.Response) -> dict:
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with shared_server(tmp_path_factory, "isolation") as (srv, _):
        tokens = people(srv.home, {"viewer-a": {A: Role.VIEWER}, "member-a": {A: Role.MEMBER},
                                   "member-b": {B: Role.MEMBER}})
        w = World(srv, *(httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {tokens[n]}"},
                                      timeout=30) for n in ("viewer-a", "member-a", "member-b")),
                  admin=srv.http, sweep_a="", sweep_b="", run_b="", tokens=tokens)
        for team in (A, B):  # nothing of theirs ever runs: every job waits in the queue
            created(w.admin.put(f"/v1/teams/{team}", json={"name": team, "cpus": 0}))
        for http, team in ((w.member_a, A), (w.member_b, B)):
            t = team[-1]
            created(dataset(http, f"data-{t}", f"team {t}'s data"))
            created(http.post("/v1/models", json={"spec": {"name": f"model-{t}", "description": "mine"}}))
        w.sweep_a = created(w.member_a.post("/v1/sweeps", json={"spec": sweep_spec(A, "sweep-a")}))["id"]
        w.sweep_b = created(w.member_b.post("/v1/sweeps", json={"spec": sweep_spec(B, "sweep-b")}))["id"]
        w.run_b = created(w.member_b.post("/v1/training-jobs", json={"spec": {
            "name": "run-b", "team": B, "entrypoint": ["python", "-c", "pass"], "resources": QUICK}}))["id"]
        wait_for(lambda: len(w.admin.get("/v1/queue").json()["items"]) == 3, 30, what="both trials queued")
        yield w
        for c in (w.viewer_a, w.member_a, w.member_b):
            c.close()


def names(http: httpx.Client, path: str, key: str = "name") -> set[str]:
    resp = http.get(path)
    assert resp.status_code == 200, resp.text
    return {item[key] for item in resp.json()["items"]}


def test_lists_show_only_the_callers_teams_datasets_models_sweeps_and_queue(world):
    for http in (world.viewer_a, world.member_a):
        assert names(http, "/v1/datasets") == {"data-a"}
        assert names(http, "/v1/models") == {"model-a"}
        assert names(http, "/v1/sweeps", "id") == {world.sweep_a}
        assert names(http, "/v1/queue", "team") == {A}
    assert names(world.member_b, "/v1/datasets") == {"data-b"}
    assert names(world.member_b, "/v1/models") == {"model-b"}
    assert names(world.member_b, "/v1/sweeps", "id") == {world.sweep_b}
    assert names(world.member_b, "/v1/queue", "id") >= {world.run_b}
    assert names(world.admin, "/v1/datasets") >= {"data-a", "data-b"}
    assert names(world.admin, "/v1/sweeps", "id") == {world.sweep_a, world.sweep_b}


def _same_as_missing(http: httpx.Client, method: str, path: str, hidden: str, body: dict | None = None) -> None:
    seen = http.request(method, path.format(hidden), json=body)
    missing = http.request(method, path.format(MISSING), json=body)
    assert seen.status_code == missing.status_code == 404, (path, seen.text, missing.text)
    assert seen.json()["detail"].replace(hidden, MISSING) == missing.json()["detail"], (seen.text, missing.text)


def test_another_teams_objects_answer_exactly_as_missing_ones(world):
    for http in (world.viewer_a, world.member_a):
        for path in ("/v1/datasets/{}", "/v1/datasets/{}/versions/1", "/v1/models/{}", "/v1/models/{}/versions/1",
                     "/v1/models/{}/versions/production", "/v1/models/{}/events"):
            _same_as_missing(http, "GET", path, "data-b" if "datasets" in path else "model-b")
        for path in ("/v1/sweeps/{}", "/v1/sweeps/{}/trials", "/v1/sweeps/{}/events"):
            _same_as_missing(http, "GET", path, world.sweep_b)
    why = {"reason": "mine now"}
    for method, path, body in (("PATCH", "/v1/models/{}", {"description": "mine"}),
                               ("PATCH", "/v1/models/{}/versions/1", {"description": "mine"}),
                               ("POST", "/v1/models/{}/versions", {"run_id": world.run_b, "checkpoint": "latest"}),
                               ("POST", "/v1/models/{}/versions/1/evaluate", None),
                               ("PUT", "/v1/models/{}/aliases/production", {"version": 1, **why}),
                               ("POST", "/v1/models/{}/aliases/production/rollback", why)):
        _same_as_missing(world.member_a, method, path, "model-b", body)
    _same_as_missing(world.member_a, "POST", "/v1/sweeps/{}/cancel", world.sweep_b)
    assert world.admin.get(f"/v1/sweeps/{world.sweep_b}").json()["state"] == "RUNNING"


def test_a_member_cannot_create_or_take_over_another_teams_objects(world):
    refused = dataset(world.member_a, "data-a2", "aimed at b", team=B)
    assert refused.status_code == 403 and "may not create datasets in team 'team-b'" in refused.json()["detail"]
    assert "you may create them in team-a" in refused.json()["detail"]
    taken = dataset(world.member_a, "data-b", "a new version of b's?")
    assert taken.status_code == 409 and taken.json()["detail"] == "dataset name 'data-b' is taken; choose another"
    taken = world.member_a.post("/v1/models", json={"spec": {"name": "model-b", "description": "mine now"}})
    assert taken.status_code == 409 and taken.json()["detail"] == "model name 'model-b' is taken; choose another"
    refused = world.member_a.post("/v1/models", json={"spec": {"name": "model-a2", "team": B}})
    assert refused.status_code == 403
    refused = world.member_a.post("/v1/sweeps", json={"spec": sweep_spec(B, "sneaky")})
    assert refused.status_code == 403 and "may not submit jobs to team 'team-b'" in refused.json()["detail"]

    assert world.admin.get("/v1/datasets/data-b").json()["versions"] == 1
    model_b = world.admin.get("/v1/models/model-b").json()
    assert model_b["team"] == B and model_b["description"] == "mine"
    assert "data-a2" not in names(world.admin, "/v1/datasets")
    assert "model-a2" not in names(world.admin, "/v1/models")
    assert "sneaky" not in names(world.admin, "/v1/sweeps")


def test_a_model_version_is_made_only_from_a_run_the_caller_may_read(world):
    attempt = world.member_a.post("/v1/models/model-a/versions", json={"run_id": world.run_b})
    missing = world.member_a.post("/v1/models/model-a/versions", json={"run_id": MISSING})
    assert attempt.status_code == missing.status_code == 422
    [seen], [gone] = attempt.json()["errors"], missing.json()["errors"]
    assert seen["field"] == gone["field"] == "run_id"
    assert seen["message"].replace(world.run_b, MISSING) == gone["message"]
    # its own team's member gets past that check (the run has no checkpoint yet)
    own = world.member_b.post("/v1/models/model-b/versions", json={"run_id": world.run_b})
    assert own.status_code == 422 and "has no committed checkpoint" in own.json()["errors"][0]["message"]


def test_a_job_or_sweep_may_use_only_its_own_teams_dataset(world):
    job = {"name": "reader", "team": A, "entrypoint": ["python", "-c", "pass"], "resources": QUICK}
    seen = world.member_a.post("/v1/training-jobs", json={"spec": {**job, "dataset": "data-b@v1"}})
    missing = world.member_a.post("/v1/training-jobs", json={"spec": {**job, "dataset": f"{MISSING}@v1"}})
    assert seen.status_code == missing.status_code == 422
    [error], [gone] = seen.json()["errors"], missing.json()["errors"]
    assert error["field"] == "dataset" and error["message"].replace("data-b", MISSING) == gone["message"]
    sweep = world.member_a.post("/v1/sweeps", json={"spec": sweep_spec(A, "reads-b", dataset="data-b@v1")})
    assert sweep.status_code == 422 and sweep.json()["errors"][0]["field"] == "job.dataset"
    evaluation = {"entrypoint": ["python", "-c", "pass"], "dataset": "data-b@v1", "rule": "acc >= 0.5"}
    model = world.member_a.post("/v1/models", json={"spec": {"name": "model-a", "evaluation": evaluation}})
    assert model.status_code == 422 and model.json()["errors"][0]["field"] == "evaluation.dataset"
    assert world.member_a.post("/v1/training-jobs", json={"spec": {**job, "dataset": "data-a@v1"}}).status_code == 201
    assert "reader" not in names(world.member_b, "/v1/training-jobs")


def test_quotas_and_priority_classes_take_a_platform_admin(world):
    before = (world.member_a.get("/v1/teams").json(), world.member_a.get("/v1/priority-classes").json())
    for method, path, body in (("PUT", f"/v1/teams/{A}", {"name": A, "cpus": 64}),
                               ("DELETE", f"/v1/teams/{B}", None),
                               ("PUT", "/v1/priority-classes/urgent", {"value": 999}),
                               ("PUT", "/v1/priority-classes/low", {"value": 999})):
        resp = world.member_a.request(method, path, json=body)
        assert resp.status_code == 403 and "takes a platform admin" in resp.json()["detail"], resp.text
    after = (world.member_a.get("/v1/teams").json(), world.member_a.get("/v1/priority-classes").json())
    quotas = {t["name"]: t["cpus"] for t in after[0]["items"]}
    assert after == before and quotas[A] == quotas[B] == 0


def test_a_viewer_reads_its_teams_objects_but_cannot_change_them(world):
    v = world.viewer_a
    assert v.get("/v1/datasets/data-a").status_code == 200
    assert v.get("/v1/models/model-a").status_code == 200
    assert v.get(f"/v1/sweeps/{world.sweep_a}/trials").status_code == 200
    for method, path, body in (("PATCH", "/v1/models/model-a", {"description": "viewer's"}),
                               ("POST", "/v1/models", {"spec": {"name": "model-a", "description": "viewer's"}}),
                               ("PUT", "/v1/models/model-a/aliases/staging", {"version": 1, "reason": "r"}),
                               ("POST", "/v1/models/model-a/aliases/staging/rollback", {"reason": "r"}),
                               ("POST", f"/v1/sweeps/{world.sweep_a}/cancel", None)):
        resp = v.request(method, path, json=body)
        assert resp.status_code == 403, (path, resp.text)
        assert "takes the member role in team 'team-a'" in resp.json()["detail"]
    for resp in (dataset(v, "data-a", "a viewer's version"),
                 v.post("/v1/dataset-blobs/missing", json={"sha256": ["0" * 64]}),
                 v.post("/v1/code-archives", content=b"not even an archive"),
                 v.post("/v1/datasets", json={"name": "data-a", "files": []})):
        assert resp.status_code == 403 and "takes the member role in some team" in resp.json()["detail"]
    assert world.admin.get("/v1/datasets/data-a").json()["versions"] == 1
    assert world.admin.get("/v1/models/model-a").json()["description"] == "mine"
    assert world.admin.get(f"/v1/sweeps/{world.sweep_a}").json()["state"] == "RUNNING"


def test_a_member_uploads_code_and_dataset_contents(world, tmp_path):
    (tmp_path / "train.py").write_text("print('hi')\n")
    archive = pack_directory(tmp_path).archive
    resp = world.member_a.post("/v1/code-archives", content=archive)
    assert resp.status_code == 201 and resp.json()["digest"] == "sha256:" + hashlib.sha256(archive).hexdigest()
    sha = hashlib.sha256(b"fresh").hexdigest()
    assert world.member_a.post("/v1/dataset-blobs/missing", json={"sha256": [sha]}).json() == {"missing": [sha]}


def test_a_new_objects_team_is_the_callers_only_team_or_must_be_named(world):
    assert created(dataset(world.member_a, "data-a3", "defaults to a"))["team"] == A
    tokens = people(world.server.home, {"two-teams": {A: Role.MEMBER, "team-c": Role.ADMIN}})
    with world.as_token(tokens["two-teams"]) as two:
        unsure = dataset(two, "data-c", "which team?")
        assert unsure.status_code == 422
        [error] = unsure.json()["errors"]
        assert error["field"] == "team" and "team-a, team-c" in error["message"]
        assert created(dataset(two, "data-c", "team c's", team="team-c"))["team"] == "team-c"
        model = created(two.post("/v1/models", json={"spec": {"name": "model-c", "team": "team-c"}}))
        assert model["team"] == "team-c"
        again = two.post("/v1/models", json={"spec": {"name": "model-c", "team": A}})
        assert again.status_code == 422 and again.json()["errors"][0]["field"] == "team"
    assert "data-c" not in names(world.member_a, "/v1/datasets")
