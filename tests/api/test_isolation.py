"""Isolation, generated from the OpenAPI schema: every route, called as team A's people with the
ids of team B's real objects, shows nothing of B and changes nothing of B.

The routes come from the running server's /openapi.json, so a route added later is called here
too: one without authorization returns B's object (or lists it) and fails this test, and one
whose request body this file does not know fails it with the line to add.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import Server, make_user, rank_token, shared_server, wait_for

pytestmark = pytest.mark.slow  # two teams' real jobs, a sweep and a model

FAKE = Path(__file__).parents[1] / "registry" / "fake"
OBJECTIVE = Path(__file__).parents[1] / "sweeps" / "objective"
ENDED = ("SUCCEEDED", "FAILED", "CANCELLED")
MISSING = "zz-missing-000000"  # stands in for an id that exists nowhere


@dataclass
class Team:
    name: str
    job: str = ""
    run: str = ""
    sweep: str = ""
    dataset: str = ""
    blob: str = ""
    model: str = ""
    secret: str = ""
    token_id: str = ""
    member: str = ""

    @property
    def markers(self) -> list[str]:
        """Strings that appear in a response only if it shows this team's objects."""
        return [m for m in (self.job, self.run, self.sweep, self.dataset, self.model, self.secret,
                            self.member) if m]


@dataclass
class World:
    server: Server
    a: Team
    b: Team
    tokens: dict[str, str] = field(default_factory=dict)  # who -> token

    def as_(self, who: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=60)


def _yard(server: Server, *args: str) -> str:
    res = server.yard(*args)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def _seed_team(server: Server, root: Path, team: str) -> Team:
    """A job (with checkpoints and a run), a client run with an artifact, a dataset, a model with a
    version and an alias, a finished sweep and a secret, all of `team`, made by the platform admin."""
    t = Team(team)
    code = root / f"fake-{team}"
    shutil.copytree(FAKE, code)
    spec = yaml.safe_load((code / "job.yaml").read_text())
    (code / "job.yaml").write_text(yaml.safe_dump({**spec, "team": team, "name": f"train-{team}"}))
    objective = root / f"objective-{team}"
    shutil.copytree(OBJECTIVE, objective)
    spec = yaml.safe_load((objective / "job.yaml").read_text())
    (objective / "job.yaml").write_text(yaml.safe_dump({**spec, "team": team}))
    data = root / f"data-{team}"
    data.mkdir()
    (data / "labels.txt").write_text(f"labels of {team}\n")

    with server.client() as c:
        snapshot = c.create_dataset(f"evalset-{team}", data, team=team)
        t.dataset = f"evalset-{team}"
        t.blob = c.dataset_version(t.dataset, snapshot["version"])["files"][0]["sha256"]
        t.job = _yard(server, "submit", str(code / "job.yaml"), "-q")
        sweep = {"name": f"sweep-{team}", "job": f"objective-{team}/job.yaml", "metric": {"name": "loss"},
                 "search": {"x": {"type": "float", "low": -1.0, "high": 1.0}},
                 "sampler": "random", "max_trials": 1, "parallelism": 1}
        (root / f"sweep-{team}.yaml").write_text(yaml.safe_dump(sweep))
        t.sweep = _yard(server, "sweep", "submit", str(root / f"sweep-{team}.yaml"), "-q")
        t.run = c.create_run(name=f"notebook-{team}", experiment=f"exp-{team}", team=team)["id"]
        c.log_metrics(t.run, [{"key": "loss", "step": 1, "timestamp": time.time(), "value": 0.5}])
        c.upload_artifact(t.run, "out/model.txt", b"weights\n")
        t.secret = team.upper().replace("-", "_") + "_TOKEN"
        c.set_secret(team, t.secret, f"the value of {team}'s secret")
        job = wait_for(lambda: (j := c.job(t.job))["state"] in ENDED and j, 180, what=f"job {t.job}")
        assert job["state"] == "SUCCEEDED", job["reason"]
        model = yaml.safe_load((code / "model.yaml").read_text())
        model.update(name=f"model-{team}", team=team)
        model["evaluation"]["dataset"] = f"{t.dataset}@v1"
        (code / "model.yaml").write_text(yaml.safe_dump(model))
        _yard(server, "models", "create", str(code / "model.yaml"))
        t.model = f"model-{team}"
        version = c.register_model_version(t.model, t.job, "best")
        c.move_alias(t.model, "staging", version["version"], "seeded")
        wait_for(lambda: c.sweep(t.sweep)["state"] in ENDED, 180, what=f"sweep {t.sweep}")
    return t


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with shared_server(tmp_path_factory, "isolation") as (server, root):
        a, b = _seed_team(server, root, "team-a"), _seed_team(server, root, "team-b")
        w = World(server, a, b)
        w.tokens["viewer-a"] = make_user(server, "viewer-a", "team-a", "viewer")
        w.tokens["member-a"] = make_user(server, "member-a", "team-a", "member")
        w.tokens["admin-a"] = make_user(server, "admin-a", "team-a", "admin")
        w.tokens["member-b"] = make_user(server, "member-b", "team-b", "member")
        b.member = "member-b"
        with server.client(w.tokens["member-b"]) as c:
            b.token_id = c.tokens()[0]["id"]
        yield w


# -- the routes, filled with B's ids ------------------------------------------------------------

def _value(param: str, path: str, b: Team) -> str:
    """The path parameter `param` of `path`, naming one of B's objects."""
    if param == "name" and "/secrets/" in path:
        return b.secret
    if param == "name":
        for prefix, value in (("/v1/datasets", b.dataset), ("/v1/models", b.model), ("/v1/lineage/models", b.model),
                              ("/v1/teams", b.name), ("/v1/priority-classes", "normal")):
            if path.startswith(prefix):
                return value
    by_name = {
        "job_id": b.job, "run_id": b.run if path.startswith("/v1/runs") else b.job, "sweep_id": b.sweep,
        "team": b.name, "user": b.member, "attempt": "1", "step": "1", "key": "loss", "path": "out/model.txt",
        "version": "1", "which": "1", "alias": "staging", "sha256": b.blob, "token_id": b.token_id,
        "id": b.token_id,
    }
    if param not in by_name:
        pytest.fail(f"{path}: no value for path parameter {param!r}; add one to _value in {__file__}")
    return by_name[param]


def _bodies(b: Team) -> dict[str, dict[str, Any]]:
    """A request body per write route that, if the caller were allowed, would change B's objects."""
    job = {"name": "intruder", "team": b.name, "entrypoint": ["python", "-c", "pass"],
           "resources": {"workers": 1, "cpus_per_worker": 0.1, "memory_gb": 0.1}}
    point = {"key": "loss", "step": 9, "timestamp": 1.0, "value": 0.0}
    return {
        "POST /v1/training-jobs": {"json": {"spec": job}},
        "POST /v1/training-jobs/{job_id}/cancel": {},
        "POST /v1/training-jobs/{job_id}/rerun": {},
        "POST /v1/training-jobs/{job_id}/attempts/{attempt}/heartbeat":
            {"json": {"rank": 0, "host": "h", "pid": 1, "step": 1}},
        "POST /v1/training-jobs/{job_id}/attempts/{attempt}/metrics": {"json": {"rank": 0, "points": [point]}},
        "POST /v1/training-jobs/{job_id}/attempts/{attempt}/checkpoints":
            {"json": {"step": 1, "bytes": 1, "manifest": {}, "metrics": {}}},
        "POST /v1/training-jobs/{job_id}/attempts/{attempt}/checkpoints/{step}/corrupt": {"json": {"reason": "x"}},
        "POST /v1/training-jobs/{job_id}/attempts/{attempt}/events": {"json": {"kind": "note", "reason": "x"}},
        "POST /v1/runs": {"json": {"name": "intruder", "team": b.name}},
        "PATCH /v1/runs/{run_id}": {"json": {"state": "FAILED"}},
        "POST /v1/runs/{run_id}/params": {"json": {"params": {"lr": 1}}},
        "POST /v1/runs/{run_id}/tags": {"json": {"tags": {"x": "y"}}},
        "DELETE /v1/runs/{run_id}/tags/{key}": {},
        "POST /v1/runs/{run_id}/metrics": {"json": {"points": [point]}},
        "PUT /v1/runs/{run_id}/artifacts/{path}": {"content": b"overwritten"},
        "POST /v1/sweeps": {"json": {"spec": {"name": "intruder", "job": job, "metric": {"name": "loss"},
                                              "search": {"x": {"type": "float", "low": 0, "high": 1}},
                                              "max_trials": 2}}},
        "POST /v1/sweeps/{sweep_id}/cancel": {},
        "PUT /v1/teams/{name}": {"json": {"gpus": 0, "cpus": 0, "weight": 1.0}},
        "DELETE /v1/teams/{name}": {},
        "PUT /v1/priority-classes/{name}": {"json": {"value": 1}},
        "POST /v1/datasets": {"json": {"name": b.dataset, "team": b.name,
                                       "files": [{"path": "labels.txt", "bytes": len(f"labels of {b.name}\n"),
                                                  "sha256": b.blob}]}},
        "POST /v1/models": {"json": {"spec": {"name": b.model, "team": b.name, "description": "taken"}}},
        "PATCH /v1/models/{name}": {"json": {"description": "taken"}},
        "POST /v1/models/{name}/versions": {"json": {"run_id": b.job, "checkpoint": "best"}},
        "PATCH /v1/models/{name}/versions/{which}": {"json": {"description": "taken"}},
        "POST /v1/models/{name}/versions/{which}/evaluate": {},
        "PUT /v1/models/{name}/aliases/{alias}": {"json": {"version": 1, "reason": "taken"}},
        "POST /v1/models/{name}/aliases/{alias}/rollback": {"json": {"reason": "taken"}},
        "PUT /v1/teams/{team}/members/{user}": {"json": {"role": "admin"}},
        "DELETE /v1/teams/{team}/members/{user}": {},
        "POST /v1/users": {"json": {"name": "intruder-user"}},
        "POST /v1/tokens": {"json": {"name": "intruder", "scopes": {b.name: "member"}}},
        "POST /v1/tokens/{token_id}/revoke": {},
        "POST /v1/teams/{team}/service-accounts/{user}/tokens": {"json": {"name": "intruder", "role": "member"}},
        "PUT /v1/teams/{team}/secrets/{name}": {"json": {"value": "stolen"}},
        "DELETE /v1/teams/{team}/secrets/{name}": {},
    }


# Writes of content every team shares, stored once by its digest (a code archive, a dataset file):
# they change nothing of any team's, and say nothing of which team holds what.
NOT_TEAM_WRITES = {"POST /v1/dataset-blobs/missing", "PUT /v1/dataset-blobs/{sha256}", "POST /v1/code-archives"}
# Creating a name another team holds says that the name is taken (names are unique on the server).
NAME_TAKEN = {"POST /v1/datasets", "POST /v1/models"}


def _operations(world: World) -> list[tuple[str, str, str]]:
    """(method, template, filled path) of every operation but /healthz."""
    schema = world.server.http.get("/openapi.json").json()
    ops = []
    for template, item in schema["paths"].items():
        if template == "/healthz":
            continue
        for method in item:
            params = re.findall(r"\{(\w+)(?::path)?\}", template)
            path = template
            for p in params:
                path = re.sub(r"\{" + p + r"(?::path)?\}", _value(p, template, world.b), path)
            ops.append((method.upper(), template, path))
    return ops


def _missing(path: str, b: Team) -> str:
    """The same path with B's object ids swapped for ones that exist nowhere."""
    for real in (b.job, b.run, b.sweep, b.dataset, b.model):
        path = path.replace(real, MISSING)
    return path


def _shown(resp: httpx.Response, sent: str, b: Team) -> list[str]:
    """B's ids in a response beyond those the caller sent (an error may echo those)."""
    return [m for m in b.markers if m in resp.text and m not in sent]


def test_team_a_sees_and_changes_nothing_of_team_b_on_any_route(world: World):
    bodies = _bodies(world.b)
    leaks, unchecked, covered = [], [], 0
    for who in ("viewer-a", "member-a", "admin-a"):
        with world.as_(who) as http:
            for method, template, path in _operations(world):
                key = f"{method} {template}"
                has_b_ids = path != template
                if method == "GET":
                    resp = http.get(path)
                    shown = _shown(resp, path, world.b)
                    if has_b_ids and resp.status_code < 400:
                        leaks.append((who, key, resp.status_code, resp.text[:200]))
                    elif shown:
                        leaks.append((who, key, resp.status_code, f"shows {shown}"))
                    elif has_b_ids and resp.status_code == 404:  # as if it did not exist, word for word
                        absent = http.get(_missing(path, world.b))
                        said, unsaid = resp.text.replace(MISSING, "?"), absent.text.replace(MISSING, "?")
                        for real in world.b.markers:
                            said = said.replace(real, "?")
                        if absent.status_code != 404 or said != unsaid:
                            leaks.append((who, key, "404 differs from a missing object's", said, unsaid))
                elif key in NOT_TEAM_WRITES:
                    continue
                elif key not in bodies:
                    unchecked.append(key)
                    continue
                else:
                    resp = http.request(method, path, **bodies[key])
                    refused = (403, 404, 409) if key in NAME_TAKEN else (403, 404)
                    if resp.status_code not in refused or _shown(resp, f"{path} {bodies[key]}", world.b):
                        leaks.append((who, key, resp.status_code, resp.text[:200]))
                covered += 1
    print(f"isolation: {covered} calls over {len(_operations(world))} operations as 3 users of team A; "
          f"{len(leaks)} showed or changed team B's objects")
    assert not unchecked, f"write routes with no request body in _bodies: {sorted(set(unchecked))}"
    assert not leaks, "\n".join(map(str, leaks))


def test_team_b_still_has_all_of_its_objects_after_team_as_attempts(world: World):
    with world.server.client(world.tokens["member-b"]) as c:
        assert c.job(world.b.job)["state"] == "SUCCEEDED"
        assert c.run(world.b.run)["state"] != "FAILED"
        assert c.dataset(world.b.dataset)["name"] == world.b.dataset
        assert c.model_version(world.b.model, "staging")["version"] == 1
        assert [j["id"] for j in c.jobs() if j["team"] == "team-b"]
        assert not [j for j in c.jobs() if j["team"] == "team-a"]


def test_without_a_token_every_route_but_healthz_is_401_whatever_the_host(world: World):
    hosts = ["localhost", "127.0.0.1", f"127.0.0.1:{world.server.port}"]
    answers = {}
    with world.as_(None) as http:
        for method, template, path in _operations(world):
            for host in hosts:
                answers[(method, template, host)] = http.request(method, path, headers={"host": host}).status_code
        assert http.get("/healthz").status_code == 200
        assert http.get("/v1/training-jobs", headers={"host": "evil.example"}).status_code == 421
    wrong = {k: v for k, v in answers.items() if v != 401}
    print(f"no token: {len(answers)} calls, {len(wrong)} not 401")
    assert not wrong, wrong


def test_a_rank_credential_reaches_only_its_own_attempt(world: World):
    job = world.server.client(world.tokens["member-a"]).submit(
        {"name": "rank-probe", "team": "team-a", "entrypoint": ["python", "-c", "import time; time.sleep(600)"],
         "resources": {"workers": 1, "cpus_per_worker": 0.1, "memory_gb": 0.1}})
    token = wait_for(lambda: _try_rank_token(world.server, job["id"]), 60, what="the probe's rank")
    rank = httpx.Client(base_url=world.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    point = {"rank": 0, "points": [{"key": "loss", "step": 1, "timestamp": 1.0, "value": 0.0}]}
    b = world.b
    assert rank.post(f"/v1/training-jobs/{b.job}/attempts/1/metrics", json=point).status_code == 404
    assert rank.get(f"/v1/training-jobs/{b.job}/checkpoints").status_code == 404
    assert rank.post(f"/v1/runs/{b.run}/metrics", json={"points": point["points"]}).status_code in (403, 404)
    assert rank.get(f"/v1/training-jobs/{world.a.job}/checkpoints").status_code == 404  # its own team's, too
    assert rank.get("/v1/training-jobs").json()["items"] == [] or all(
        j["id"] == job["id"] for j in rank.get("/v1/training-jobs").json()["items"])
    assert rank.get(f"/v1/training-jobs/{job['id']}/checkpoints").status_code == 200
    assert rank.post(f"/v1/training-jobs/{job['id']}/attempts/1/metrics", json=point).status_code == 200
    world.server.client(world.tokens["member-a"]).cancel(job["id"])
    wait_for(lambda: world.server.client().job(job["id"])["state"] in ENDED, 60, what="the probe to end")
    time.sleep(2.5)  # past the credential cache: the attempt's credential is looked up again
    late = rank.post(f"/v1/training-jobs/{job['id']}/attempts/1/metrics", json=point)
    assert late.status_code == 409 and "ended" in late.json()["detail"], late.text
    assert rank.get(f"/v1/training-jobs/{job['id']}/checkpoints").status_code == 409


def _try_rank_token(server: Server, job_id: str) -> str | None:
    try:
        return rank_token(server.home, job_id, 1)
    except AssertionError:
        return None
