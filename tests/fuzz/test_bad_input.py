"""Bad input that once gave a 500 (issue 10, finding 9), each sent to a real seeded server.

Every refusal is a 4xx whose JSON body names the field: 422 `{"errors": [{field, message}]}`,
or 404 `{"detail"}` where the input is well formed and names nothing that exists.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Iterator

import httpx
import msgpack
import pytest

from tests.conftest import rank_token, wait_for
from tests.fuzz.conftest import Seeded
from trainyard.client import Client

pytestmark = pytest.mark.slow  # a seeded server runs real jobs

BEYOND_INT64 = 2**64


def refused(resp: httpx.Response, field: str) -> str:
    """The message of the 422 that names `field`."""
    assert resp.status_code == 422, (resp.status_code, resp.text)
    errors = resp.json()["errors"]
    named = [e["message"] for e in errors if e["field"] == field]
    assert named, errors
    return named[0]


@pytest.fixture
def http(seeded: Seeded) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=seeded.server.url, headers=seeded.server.auth, timeout=60) as c:
        yield c


# -- version numbers: one parser, ASCII digits, bounded ------------------------------------------------


@pytest.mark.parametrize("which", ["v²", "³", "v1²", "v¹"])
def test_superscript_digits_in_a_model_version_read_as_an_alias_that_does_not_exist(
        http: httpx.Client, seeded: Seeded, which: str) -> None:
    for path in (f"/v1/models/{seeded.model}/versions/{which}",
                 f"/v1/lineage/models/{seeded.model}/versions/{which}"):
        resp = http.get(path)
        assert resp.status_code == 404, (path, resp.status_code, resp.text)
        assert "has no alias" in resp.json()["detail"]


@pytest.mark.parametrize("version", ["v²", "³", "v1²"])
def test_superscript_digits_in_a_dataset_version_are_refused_naming_the_version(
        http: httpx.Client, seeded: Seeded, version: str) -> None:
    message = refused(http.get(f"/v1/datasets/{seeded.dataset}/versions/{version}"), "version")
    assert "use a number such as v1" in message


def test_a_version_number_no_version_can_have_is_refused_naming_it(http: httpx.Client, seeded: Seeded) -> None:
    huge = "v" + "9" * 30
    assert "from 1 to" in refused(http.get(f"/v1/models/{seeded.model}/versions/{huge}"), "which")
    assert "from 1 to" in refused(http.get(f"/v1/lineage/models/{seeded.model}/versions/{huge}"), "which")
    assert "from 1 to" in refused(http.get(f"/v1/datasets/{seeded.dataset}/versions/{huge}"), "version")
    assert http.get(f"/v1/models/{seeded.model}/versions/v1").status_code == 200
    assert http.get(f"/v1/datasets/{seeded.dataset}/versions/1").status_code == 200


def test_a_checkpoint_step_in_superscript_digits_is_refused_naming_the_checkpoint(
        http: httpx.Client, seeded: Seeded) -> None:
    for checkpoint in ("²", str(BEYOND_INT64)):
        resp = http.post(f"/v1/models/{seeded.model}/versions", json={"run_id": seeded.job_id,
                                                                      "checkpoint": checkpoint})
        refused(resp, "checkpoint")


# -- integers past what the store holds ----------------------------------------------------------------


def test_an_attempt_number_beyond_int64_is_refused_naming_the_attempt(rank_http: httpx.Client,
                                                                     running_job: str) -> None:
    base = f"/v1/training-jobs/{running_job}/attempts/{BEYOND_INT64}"
    refused(rank_http.post(f"{base}/heartbeat", json={"rank": 0, "pid": 1}), "attempt")
    refused(rank_http.post(f"{base}/events", json={"kind": "note", "reason": "x"}), "attempt")
    refused(rank_http.post(f"{base}/checkpoints/1/corrupt", json={"reason": "x"}), "attempt")
    refused(rank_http.post(f"/v1/training-jobs/{running_job}/attempts/1/checkpoints/{BEYOND_INT64}/corrupt",
                           json={"reason": "x"}), "step")


@pytest.fixture(scope="module")
def running_job(seeded: Seeded) -> Iterator[str]:
    """A job whose attempt 1 is current, so writes reach the store (a finished one answers 409)."""
    spec = {"name": "sleeper", "entrypoint": ["python", "-c", "import time; time.sleep(600)"],
            "heartbeat_timeout_s": 900, "resources": {"cpus_per_worker": 0.5, "memory_gb": 0.25}}
    with seeded.server.client() as c:
        job_id = c.submit(spec)["id"]
        wait_for(lambda: c.job(job_id)["attempt"] == 1, 60, what=f"job {job_id} to launch")
        yield job_id
        c.cancel(job_id)
        wait_for(lambda: c.job(job_id)["state"] == "CANCELLED", 60, what=f"job {job_id} to stop")


@pytest.fixture(scope="module")
def rank_http(seeded: Seeded, running_job: str) -> Iterator[httpx.Client]:
    """HTTP as the running job's rank: with its attempt's own credential."""
    token = rank_token(seeded.server.home, running_job, 1)
    with httpx.Client(base_url=seeded.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        yield c


@pytest.mark.parametrize("field", ["pid", "step", "rank"])
def test_a_heartbeat_number_beyond_int64_is_refused_naming_the_field(
        rank_http: httpx.Client, running_job: str, field: str) -> None:
    path = f"/v1/training-jobs/{running_job}/attempts/1/heartbeat"
    refused(rank_http.post(path, json={"rank": 0, "pid": 1, "step": 1, field: BEYOND_INT64}), field)
    assert rank_http.post(path, json={"rank": 0, "pid": 1, "step": 1}).status_code == 200


def test_an_alias_version_beyond_int64_is_refused_naming_the_version(http: httpx.Client, seeded: Seeded) -> None:
    resp = http.put(f"/v1/models/{seeded.model}/aliases/staging",
                    json={"version": 339647737354478944256, "reason": "fuzzed"})
    refused(resp, "version")


def test_a_page_token_whose_offset_is_beyond_int64_is_refused_naming_the_token(http: httpx.Client) -> None:
    token = base64.urlsafe_b64encode(json.dumps({"offset": BEYOND_INT64}).encode()).decode()
    assert "next_page_token" in refused(http.get("/v1/runs", params={"page_token": token}), "page_token")


@pytest.mark.parametrize("route", ["/v1/training-jobs/{id}/logs", "/v1/runs/{id}/logs"])
def test_a_log_read_far_past_any_log_is_refused_or_empty_never_a_server_error(
        http: httpx.Client, seeded: Seeded, route: str) -> None:
    path = route.format(id=seeded.job_id)
    refused(http.get(path, params={"offset": BEYOND_INT64}), "offset")
    refused(http.get(path, params={"rank": 10**300}), "rank")
    refused(http.get(path, params={"attempt": BEYOND_INT64}), "attempt")
    past_the_end = http.get(path, params={"offset": 2**62})
    assert past_the_end.status_code == 200, past_the_end.text
    assert past_the_end.json()["text"] == "" and past_the_end.json()["offset"] == 2**62


# -- metric batches ------------------------------------------------------------------------------------


def test_a_nan_or_infinite_timestamp_in_a_metric_batch_is_refused_naming_the_point(
        http: httpx.Client, client: Client) -> None:
    run = client.create_run(name="nan-stamps")
    path = f"/v1/runs/{run['id']}/metrics"
    good = {"key": "loss", "step": 1, "timestamp": time.time(), "value": 0.5}
    nan_json = json.dumps({"points": [good, {**good, "step": 2, "timestamp": math.nan}]})  # a bare NaN
    assert "finite" in refused(http.post(path, content=nan_json, headers={"content-type": "application/json"}),
                               "points.1.timestamp")
    columns = {"key": ["loss"], "step": [1], "timestamp": [math.inf], "value": [0.5]}
    packed = msgpack.packb({"columns": columns})
    refused(http.post(path, content=packed, headers={"content-type": "application/msgpack"}),
            "columns.timestamp.0")
    refused(http.post(path, json={"points": [{**good, "timestamp": 10**400}]}), "points.0.timestamp")
    refused(http.post(path, json={"points": [{**good, "value": 10**400}]}), "points.0.value")
    assert client.run(run["id"])["metrics"] == {}  # nothing half-written
    assert http.post(path, json={"points": [good, {**good, "step": 2, "value": None}]}).json() == {"accepted": 2}


def test_a_metric_batch_nested_past_the_decoder_is_refused_not_a_server_error(
        http: httpx.Client, client: Client) -> None:
    run = client.create_run(name="deep-batch")
    deep = '{"points": ' + "[" * 100_000 + "]" * 100_000 + "}"
    refused(http.post(f"/v1/runs/{run['id']}/metrics", content=deep,
                      headers={"content-type": "application/json"}), "(body)")


# -- searches ------------------------------------------------------------------------------------------


def test_a_filter_of_1001_clauses_is_refused_naming_the_filter(http: httpx.Client) -> None:
    text = " and ".join(f"val_acc > {i}" for i in range(1001))
    assert "at most" in refused(http.get("/v1/runs", params={"filter": text}), "filter")


def test_an_in_list_of_thousands_of_values_is_refused_naming_the_filter(http: httpx.Client) -> None:
    text = "name in (" + ", ".join(f"'r{i}'" for i in range(900)) + ")"
    assert "at most" in refused(http.get("/v1/runs", params={"filter": text}), "filter")


def test_seventy_order_by_keys_are_refused_naming_order_by(http: httpx.Client) -> None:
    keys = [f"metrics.m{i} desc" for i in range(70)]
    assert "at most" in refused(http.get("/v1/runs", params={"order_by": keys}), "order_by")
    ok = http.get("/v1/runs", params={"order_by": keys[:8], "filter": "val_acc > 0.1 and params.lr < 1"})
    assert ok.status_code == 200, ok.text


def test_lists_in_a_query_are_bounded_naming_the_parameter(http: httpx.Client, seeded: Seeded) -> None:
    assert "at most 7" in refused(http.get("/v1/training-jobs", params={"state": ["QUEUED"] * 8}), "state")
    assert "at most 1000" in refused(http.get("/v1/runs/compare", params={"ids": [seeded.run_id] * 1001}), "ids")


# -- specs: rules, hyperparameters, params -------------------------------------------------------------


def test_an_evaluation_rule_of_998_added_terms_is_refused_naming_the_rule(
        client: Client, http: httpx.Client, seeded: Seeded) -> None:
    spec = {"name": "deep-rule", "evaluation": {"entrypoint": ["python", "evaluate.py"], "dataset": "fuzz-data@v1",
                                                "rule": "x>" + "+".join(["0"] * 998)}}  # 1,997 characters
    assert "levels" in refused(http.post("/v1/models", json={"spec": spec}), "evaluation.rule")


def test_hyperparameters_nested_900_deep_are_refused_naming_them(http: httpx.Client) -> None:
    deep: dict = {}
    node = deep
    for _ in range(900):
        node["a"] = {}
        node = node["a"]
    spec = {"name": "deep-hparams", "entrypoint": ["python", "-c", "pass"], "hyperparameters": deep}
    assert "levels deep" in refused(http.post("/v1/training-jobs", json={"spec": spec}), "hyperparameters")
    model = {"name": "deep-eval", "evaluation": {"entrypoint": ["python", "evaluate.py"],
                                                 "dataset": "fuzz-data@v1", "rule": "val_acc > 0.5",
                                                 "hyperparameters": deep}}
    refused(http.post("/v1/models", json={"spec": model}), "evaluation.hyperparameters")
    assert "levels deep" in refused(http.post("/v1/runs", json={"name": "deep", "params": deep}), "params")


def test_hyperparameters_too_large_for_a_ranks_environment_are_refused_naming_them(http: httpx.Client) -> None:
    spec = {"name": "huge-hparams", "entrypoint": ["python", "-c", "pass"],
            "hyperparameters": {f"h{i}": "x" * 1000 for i in range(100)}}
    assert "at most" in refused(http.post("/v1/training-jobs", json={"spec": spec}), "hyperparameters")


# -- one refusal shape ---------------------------------------------------------------------------------


def test_refusals_raised_inside_routes_have_the_declared_shape(http: httpx.Client) -> None:
    refused(http.put("/v1/teams/vision", json={"name": "audio"}), "name")
    refused(http.put("/v1/priority-classes/NOT_A_NAME", json={"value": 1}), "name")
    refused(http.post("/v1/code-archives", content=b"not a tarball"), "(body)")
    declared = http.get("/openapi.json").json()
    response = declared["paths"]["/v1/runs/{run_id}"]["get"]["responses"]["422"]
    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Refusal"}


# -- numbers JSON cannot carry back ---------------------------------------------------------------------


@pytest.mark.parametrize("field, spec", [
    ("expected_duration_s", {"expected_duration_s": math.inf}),
    ("checkpoint.every_seconds", {"checkpoint": {"every_seconds": math.inf}}),
    ("hyperparameters", {"hyperparameters": {"lr": math.nan}}),
])
def test_an_infinite_or_nan_number_in_a_job_spec_is_refused_naming_it(
        http: httpx.Client, field: str, spec: dict) -> None:
    body = json.dumps({"spec": {"name": "non-finite", "entrypoint": ["python", "-c", "pass"], **spec}})
    refused(http.post("/v1/training-jobs", content=body, headers={"content-type": "application/json"}), field)


def test_an_infinite_team_weight_is_refused_naming_it(http: httpx.Client) -> None:
    body = json.dumps({"name": "infinite", "weight": math.inf, "gpus": 1})
    refused(http.put("/v1/teams/infinite", content=body, headers={"content-type": "application/json"}), "weight")
    refused(http.put("/v1/teams/huge", json={"name": "huge", "gpus": BEYOND_INT64}), "gpus")
