"""Registering runs evaluation jobs; gated aliases take only passing versions; rollback; history."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from tests.people import people
from tests.registry.conftest import declare, evaluated, train
from trainyard.client import TrainyardError
from trainyard.principal import Role


def register(server, job_id: str, model: str, *extra: str) -> str:
    res = server.yard("models", "register", job_id, "--name", model, *extra)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_registering_runs_the_evaluation_and_production_refuses_a_version_that_failed(registry_server, tmp_path):
    srv = registry_server
    declare(srv, tmp_path, "gated")
    good = train(srv, tmp_path)  # val_acc per step 0.5, 0.95, 0.93; evaluation reports 0.95
    assert register(srv, good, "gated") == "gated@v1"
    v1 = evaluated(srv, "gated", 1)
    assert v1["checkpoint_step"] == 2 and v1["checkpoint_metrics"] == {"val_acc": 0.95}  # best by keep_best
    assert v1["evaluation"]["state"] == "PASSED", v1["evaluation"]["reason"]
    assert "val_acc >= 0.9: 0.95 >= 0.9, holds" in v1["evaluation"]["reason"]
    with srv.client() as c:
        eval_job = c.job(v1["evaluation"]["job_id"])
        assert eval_job["state"] == "SUCCEEDED" and eval_job["spec"]["dataset"] == "evalset@v1"
        assert eval_job["spec"]["hyperparameters"]["checkpoint_uri"] == v1["checkpoint_uri"]
        assert eval_job["spec"]["labels"]["model_version"] == "1"
    assert "evaluated gated@v1 (weights at step 2)" in srv.yard("logs", eval_job["id"]).stdout
    res = srv.yard("models", "promote", "gated@v1", "--reason", "first good model")
    assert res.returncode == 0, res.stderr

    worse = train(srv, tmp_path, hyperparameters={"eval_acc": 0.8})
    assert register(srv, worse, "gated", "--checkpoint", "latest") == "gated@v2"
    v2 = evaluated(srv, "gated", 2)
    assert v2["evaluation"]["state"] == "FAILED"
    assert "val_acc >= 0.9: 0.8 >= 0.9, fails" in v2["evaluation"]["reason"]
    assert "val_acc >= champion.val_acc - 0.01: 0.8 >= 0.94, fails" in v2["evaluation"]["reason"]

    res = srv.yard("models", "promote", "gated@v2", "--reason", "try the new one")
    assert res.returncode != 0
    assert "cannot move production to gated@v2: it failed its evaluation: val_acc >= 0.9: 0.8 >= 0.9" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    with srv.client() as c:
        assert c.model_version("gated", "production")["version"] == 1
        refused = [e for e in c.model_events("gated") if e["kind"] == "alias_refused"]
        assert refused and refused[0]["version"] == 2 and "try the new one" in refused[0]["reason"]
        c.move_alias("gated", "staging", 2, "ungated alias: anything goes")  # staging has no gate
        assert c.model("gated")["aliases"] == {"production": 1, "staging": 2}


def test_production_is_checked_again_against_the_champion_it_would_replace(registry_server, tmp_path):
    srv = registry_server
    declare(srv, tmp_path, "champion")
    strong = train(srv, tmp_path, hyperparameters={"eval_acc": 0.95})
    weak = train(srv, tmp_path, hyperparameters={"eval_acc": 0.92})
    with srv.client() as c:
        c.register_model_version("champion", strong)
        c.register_model_version("champion", weak)
        # Both were judged with no champion yet, so both passed...
        assert evaluated(srv, "champion", 1)["evaluation"]["state"] == "PASSED"
        v2 = evaluated(srv, "champion", 2)
        assert v2["evaluation"]["state"] == "PASSED" and "no champion yet, holds" in v2["evaluation"]["reason"]
        c.move_alias("champion", "production", 1, "the stronger one")
        # ...but v2 may not replace v1: the rule is checked again against the current holder.
        with pytest.raises(TrainyardError) as refused:
            c.move_alias("champion", "production", 2, "cheaper to serve")
    assert refused.value.status == 422
    message = refused.value.detail["errors"][0]["message"]
    assert "passed its evaluation, but not against production's current holder v1" in message
    assert "0.92 >= 0.94, fails" in message


def test_rollback_moves_production_to_its_previous_holder_and_history_says_who_and_why(registry_server, tmp_path):
    srv = registry_server
    declare(srv, tmp_path, "rolling")
    first = train(srv, tmp_path, hyperparameters={"eval_acc": 0.95})
    better = train(srv, tmp_path, hyperparameters={"eval_acc": 0.97})
    tokens = people(srv.home, {"alice": {"default": Role.MEMBER}, "bob": {"default": Role.MEMBER}})
    with srv.client() as c, srv.client(tokens["alice"]) as alice, srv.client(tokens["bob"]) as bob:
        c.register_model_version("rolling", first)
        assert evaluated(srv, "rolling", 1)["evaluation"]["state"] == "PASSED"
        alice.move_alias("rolling", "production", 1, "launch")
        c.register_model_version("rolling", better)
        assert evaluated(srv, "rolling", 2)["evaluation"]["state"] == "PASSED"
        bob.move_alias("rolling", "production", 2, "two points better")
    res = srv.yard("models", "rollback", "rolling", "--reason", "latency regression")
    assert res.returncode == 0, res.stderr
    assert "rolling@production rolled back → v1" in res.stderr
    with srv.client() as c:
        assert c.model_version("rolling", "production")["version"] == 1
        with pytest.raises(TrainyardError) as refused:
            c.rollback_alias("rolling", "production", "again")
        assert "no previous holder" in refused.value.detail["errors"][0]["message"]
        moves = c.model_events("rolling", alias="production")
    assert [(e["kind"], e["from_version"], e["to_version"], e["actor"]) for e in moves] == [
        ("alias_moved", None, 1, "alice"), ("alias_moved", 1, 2, "bob"),
        ("alias_rolled_back", 2, 1, "admin")]
    assert "two points better" in moves[1]["reason"] and "latency regression" in moves[2]["reason"]
    history = srv.yard("models", "history", "rolling", "--alias", "production")
    assert "alice" in history.stdout and "bob" in history.stdout and "rolled back" in history.stdout


def test_retention_never_deletes_the_checkpoint_a_version_points_to(registry_server, tmp_path):
    srv = registry_server
    declare(srv, tmp_path, "pinned", none=True)
    go = tmp_path / "go"
    job_id = train(srv, tmp_path, wait=False, checkpoint={"keep_last": 1},
                   hyperparameters={"val_acc": [0.9, 0.1, 0.2, 0.3], "pause_after": 1, "go_file": str(go)})
    with srv.client() as c:
        wait_for(lambda: c.checkpoints(job_id), 60, what="the first checkpoint")
        v = c.register_model_version("pinned", job_id, checkpoint="1")
        assert v["evaluation"]["state"] == "NONE"
        go.write_text("go")
        wait_for(lambda: c.job(job_id)["state"] == "SUCCEEDED", 60, what="the job to finish")
        kept = {ck["step"]: ck for ck in c.checkpoints(job_id)}
        every = {ck["step"]: ck["state"] for ck in c.request(
            "GET", f"/v1/training-jobs/{job_id}/checkpoints", params={"all": True})["items"]}
    assert sorted(kept) == [1, 4]  # keep_last 1 keeps step 4; the version keeps step 1
    assert every == {1: "COMMITTED", 2: "DELETED", 3: "DELETED", 4: "COMMITTED"}
    from pathlib import Path
    assert (Path(v["checkpoint_uri"]) / "state.pt").read_text() == "weights at step 1"


@pytest.mark.parametrize("body, field, message", [
    ({"run_id": "no-such-job"}, "run_id", "no job run 'no-such-job'"),
    ({"run_id": "JOB", "checkpoint": "77"}, "checkpoint", "no committed checkpoint at step 77"),
    ({"run_id": "JOB", "checkpoint": "newest"}, "checkpoint", "use 'best', 'latest' or a step"),
])
def test_registering_from_a_missing_run_or_checkpoint_is_a_field_error(registry_server, tmp_path, body,
                                                                       field, message):
    declare(registry_server, tmp_path, "refusals", none=True)
    job_id = refusals_job(registry_server, tmp_path)
    with registry_server.client() as c, pytest.raises(TrainyardError) as refused:
        c.request("POST", "/v1/models/refusals/versions",
                  json={k: (job_id if v == "JOB" else v) for k, v in body.items()})
    assert refused.value.status == 422
    assert refused.value.detail["errors"] == [{"field": field, "message": refused.value.detail["errors"][0]["message"]}]
    assert message in refused.value.detail["errors"][0]["message"]


_JOBS: dict[str, str] = {}


def refusals_job(server, tmp_path) -> str:
    if server.url not in _JOBS:
        _JOBS[server.url] = train(server, tmp_path)
    return _JOBS[server.url]


@pytest.mark.parametrize("evaluation, field, message", [
    ({"rule": "__import__('os').system('true') > 0"}, "evaluation.rule", "is not allowed"),
    ({"rule": "val_acc"}, "evaluation.rule", "is not a comparison"),
    ({"dataset": "evalset"}, "evaluation.dataset", "is not a snapshot"),
    ({"dataset": "nope@v1"}, "evaluation.dataset", "no dataset 'nope'"),
    ({"gates": ["Production"]}, "evaluation.gates", "is not an alias name"),
])
def test_a_model_with_a_bad_evaluation_is_refused_naming_the_field(registry_server, evaluation, field, message):
    spec = {"name": "bad-model", "evaluation": {"entrypoint": ["python", "evaluate.py"], "dataset": "evalset@v1",
                                                "rule": "val_acc > 0.5", **evaluation}}
    with registry_server.client() as c:
        with pytest.raises(TrainyardError) as refused:
            c.declare_model(spec)
        assert refused.value.status == 422
        [error] = refused.value.detail["errors"]
        assert error["field"] == field and message in error["message"]
        with pytest.raises(TrainyardError):
            c.model("bad-model")


def test_a_code_archive_that_was_never_uploaded_is_refused_for_an_evaluation_and_for_a_job(registry_server):
    never_uploaded = {"digest": "sha256:" + "0" * 64}
    model = {"name": "no-code", "evaluation": {"entrypoint": ["python", "evaluate.py"], "dataset": "evalset@v1",
                                               "rule": "val_acc > 0.5"}}
    job = {"name": "no-code", "entrypoint": ["python", "-c", "pass"]}
    with registry_server.client() as c:
        for submit in (lambda: c.declare_model(model, never_uploaded), lambda: c.submit(job, never_uploaded)):
            with pytest.raises(TrainyardError) as refused:
                submit()
            assert refused.value.status == 422
            [error] = refused.value.detail["errors"]
            assert error["field"] == "code_snapshot.digest"
            assert error["message"] == f"no code archive {never_uploaded['digest']}; upload it first with " \
                                       "POST /v1/code-archives"
        with pytest.raises(TrainyardError):
            c.model("no-code")
        assert not [j for j in c.jobs() if j["name"] == "no-code"]
