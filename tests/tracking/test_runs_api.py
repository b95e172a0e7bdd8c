"""Runs through a real server: search filters, sorting, pagination, compare, params, states, jobs."""

from __future__ import annotations

import time
import uuid

import pytest

from trainyard.client import Client, TrainyardError


@pytest.fixture
def experiment() -> str:
    return f"exp-{uuid.uuid4().hex[:8]}"


def make_run(client: Client, experiment: str, lr: float, val_acc: float, opt: str = "adam", **tags) -> str:
    run = client.create_run("lr", experiment=experiment, params={"lr": lr, "optimizer": {"name": opt}},
                            tags={"team": "vision", **tags})["id"]
    client.log_metrics(run, [{"key": "val_acc", "step": 1, "timestamp": time.time(), "value": val_acc - 0.1},
                             {"key": "val_acc", "step": 2, "timestamp": time.time(), "value": val_acc}])
    return run


def names(page: dict) -> list[str]:
    return [r["id"] for r in page["items"]]


def test_filter_by_latest_metric_and_numeric_param(client: Client, experiment: str):
    good = make_run(client, experiment, lr=0.001, val_acc=0.97)
    make_run(client, experiment, lr=0.1, val_acc=0.98)  # fast but lr too high
    make_run(client, experiment, lr=0.005, val_acc=0.90)  # lr fine, accuracy not
    # val_acc was 0.87 at step 1: filters see the latest value only
    page = client.search_runs("val_acc > 0.95 and params.lr < 0.01", experiment=experiment)
    assert names(page) == [good]
    assert page["items"][0]["params"] == {"lr": "0.001", "optimizer.name": "adam"}
    assert page["items"][0]["metrics"]["val_acc"]["value"] == 0.97


def test_filter_by_text_param_tag_and_attributes(client: Client, experiment: str):
    adam = make_run(client, experiment, lr=0.01, val_acc=0.9, opt="adam", owner="ana")
    sgd = make_run(client, experiment, lr=0.01, val_acc=0.9, opt="sgd", owner="bo")
    client.end_run(sgd, "FAILED", "diverged")

    def found(expr: str) -> set[str]:
        return set(names(client.search_runs(expr, experiment=experiment)))

    assert found("params.optimizer.name = 'adam'") == {adam}
    assert found("params.optimizer.name like 's%'") == {sgd}
    assert found("params.optimizer.name != 'adam'") == {sgd}
    assert found("tags.owner in ('ana', 'cy')") == {adam}
    assert found("state = 'failed'") == {sgd}
    assert found("state = 'RUNNING' and tags.team = 'vision'") == {adam}
    assert found("metrics.val_acc >= 0.9 and params.lr = 0.01") == {adam, sgd}
    assert found("params.nonexistent = 1") == set()


@pytest.mark.parametrize("expr, says", [
    ("val_acc >", "ends where a value"),
    ("val_acc > 0.9 or params.lr < 1", "'or' is not supported"),
    ("val_acc = 'high'", "compares with numbers"),
    ("tags.owner > 3", "is text"),
    ("attributes.color = 'red'", "not a run attribute"),
    ("val_acc ~ 3", "cannot read"),
])
def test_a_filter_that_does_not_parse_is_a_422_that_says_why(client: Client, tracking_server, expr, says):
    resp = tracking_server.http.get("/v1/runs", params={"filter": expr})
    assert resp.status_code == 422
    error = resp.json()["errors"][0]
    assert error["field"] == "filter" and says in error["message"]


def test_sort_by_metric_then_page_through_without_gaps_or_repeats(client: Client, experiment: str):
    accs = [0.91, 0.95, 0.93, 0.99, 0.92, 0.97, 0.94]
    by_acc = {make_run(client, experiment, lr=0.01, val_acc=a): a for a in accs}
    seen, token, pages = [], None, 0
    while True:
        page = client.search_runs(experiment=experiment, order_by=["metrics.val_acc desc"], limit=3,
                                  page_token=token)
        seen += names(page)
        pages += 1
        token = page["next_page_token"]
        if not token:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == len(accs)
    assert [by_acc[r] for r in seen] == sorted(accs, reverse=True)
    everything = list(client.iter_runs(experiment=experiment, order_by=["params.lr", "name asc"], limit=2))
    assert len(everything) == len(accs)


def test_runs_without_the_sort_key_come_last(client: Client, experiment: str):
    with_acc = make_run(client, experiment, lr=0.01, val_acc=0.5)
    without = client.create_run("bare", experiment=experiment)["id"]
    for order in ("metrics.val_acc desc", "metrics.val_acc asc"):
        assert names(client.search_runs(experiment=experiment, order_by=[order])) == [with_acc, without]


def test_bad_paging_and_sorting_are_refused_with_the_field(tracking_server):
    url = "/v1/runs"
    for params, field in (({"page_token": "garbage!"}, "page_token"),
                          ({"order_by": "metrics.val_acc sideways"}, "order_by"),
                          ({"order_by": "colour"}, "order_by"),
                          ({"limit": 0}, "limit")):
        resp = tracking_server.http.get(url, params=params)
        assert resp.status_code == 422, params
        assert resp.json()["errors"][0]["field"] == field


def test_compare_lines_runs_up_side_by_side(client: Client, experiment: str):
    a = make_run(client, experiment, lr=0.01, val_acc=0.9)
    b = make_run(client, experiment, lr=0.02, val_acc=0.8, opt="sgd")
    c = client.create_run("bare", experiment=experiment, params={"seed": 1})["id"]
    table = client.compare_runs([a, b, c])
    assert [r["id"] for r in table["runs"]] == [a, b, c]
    assert table["params"]["lr"] == ["0.01", "0.02", None]
    assert table["params"]["seed"] == [None, None, "1"]
    assert table["metrics"]["val_acc"] == [0.9, 0.8, None]


def test_a_client_run_ends_once_with_an_event_and_its_params_are_fixed(client: Client):
    run = client.create_run("once", params={"lr": 0.1})["id"]
    client.log_params(run, {"lr": 0.1, "batch": 32})  # same value again is fine
    with pytest.raises(TrainyardError) as err:
        client.log_params(run, {"lr": 0.2})
    assert err.value.status == 422 and "params.lr" in str(err.value)
    assert client.run(run)["params"] == {"batch": "32", "lr": "0.1"}

    assert client.end_run(run, "SUCCEEDED")["state"] == "SUCCEEDED"
    with pytest.raises(TrainyardError) as err:
        client.end_run(run, "FAILED")
    assert "already ended as SUCCEEDED" in str(err.value)
    kinds = [e["kind"] for e in client.request("GET", f"/v1/runs/{run}/events")["items"]]
    assert kinds == ["created", "succeeded"]


def test_every_job_is_a_run_with_its_hyperparameters_and_labels(client: Client, experiment: str):
    spec = {"name": "jobrun", "team": "nlp", "experiment": experiment, "entrypoint": ["python", "-c", "pass"],
            "hyperparameters": {"lr": 0.003, "model": {"layers": 4}}, "labels": {"dataset": "wiki"},
            "resources": {"workers": 1, "cpus_per_worker": 0.1, "memory_gb": 0.1}}
    job = client.submit(spec)
    run = client.run(job["id"])
    assert run["source"] == "job" and run["experiment"] == experiment
    assert run["params"] == {"lr": "0.003", "model.layers": "4"}
    assert run["tags"] == {"dataset": "wiki", "team": "nlp"}
    assert run["state"] == client.job(job["id"])["state"]
    assert names(client.search_runs("params.lr < 0.01", experiment=experiment)) == [job["id"]]
    with pytest.raises(TrainyardError) as err:
        client.end_run(job["id"], "SUCCEEDED")
    assert f"yard cancel {job['id']}" in str(err.value)
    experiments = {(e["project"], e["experiment"]): e["runs"] for e in client.experiments()}
    assert experiments[("default", experiment)] == 1


def test_unknown_run_is_404_and_bad_names_are_422(client: Client, tracking_server):
    with pytest.raises(TrainyardError) as err:
        client.run("missing-run")
    assert err.value.status == 404
    resp = tracking_server.http.post("/v1/runs", json={"name": "Bad Name!"})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "name"
