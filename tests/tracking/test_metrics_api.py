"""Metric ingestion and history through a real server: both encodings, both shapes, refusals."""

from __future__ import annotations

import httpx
import msgpack
import pytest

from trainyard.client import Client, TrainyardError


def points(key: str, steps: range, value=lambda s: s / 10) -> list[dict]:
    return [{"key": key, "step": s, "timestamp": 1.7e9 + s, "value": value(s)} for s in steps]


def test_history_returns_every_point_in_step_order_whatever_order_and_encoding_they_came_in(client: Client):
    run = client.create_run("history")["id"]
    assert client.log_metrics(run, points("loss", range(500, 1000))) == 500
    assert client.log_metrics(run, points("loss", range(0, 500)), encoding="json") == 500
    client.log_metrics(run, points("acc", range(0, 10)))

    history = client.metric_history(run, "loss")
    assert [p["step"] for p in history] == list(range(1000))
    assert history[3] == {"step": 3, "timestamp": 1.7e9 + 3, "value": 0.3}
    as_points = client.request("GET", f"/v1/runs/{run}/metrics/loss")
    assert as_points["total"] == 1000 and as_points["points"][999]["value"] == 99.9
    assert client.run(run)["metrics"]["loss"] == {"value": 99.9, "step": 999, "timestamp": 1.7e9 + 999}
    assert set(client.request("GET", f"/v1/runs/{run}/metrics")["items"]) == {"loss", "acc"}


def test_nan_values_are_kept_and_read_back_as_null(client: Client, tracking_server):
    run = client.create_run("nan")["id"]
    body = b'{"points": [{"key": "loss", "step": 1, "timestamp": 1.0, "value": NaN},' \
           b' {"key": "loss", "step": 2, "timestamp": 2.0, "value": 0.5}]}'
    resp = tracking_server.http.post(f"/v1/runs/{run}/metrics", content=body,
                      headers={"content-type": "application/json"})
    assert resp.json() == {"accepted": 2}
    client.log_metrics(run, [{"key": "loss", "step": 3, "timestamp": 3.0, "value": None}])
    assert [p["value"] for p in client.metric_history(run, "loss")] == [None, 0.5, None]


def test_downsampled_history_fits_max_points_and_keeps_the_spike(client: Client):
    run = client.create_run("sampled")["id"]
    spike = 4321
    for start in range(0, 10_000, 1000):
        client.log_metrics(run, points("loss", range(start, start + 1000),
                                       value=lambda s: 100.0 if s == spike else 1.0))
    cols = client.metric_columns(run, "loss", max_points=100)
    assert cols["sampled"] and cols["total"] == 10_000
    assert len(cols["step"]) <= 100
    assert sum(cols["count"]) == 10_000
    assert max(cols["max"]) == 100.0 and min(cols["min"]) == 1.0
    assert cols["step"] == sorted(cols["step"])
    assert not client.metric_columns(run, "loss", max_points=20_000)["sampled"]


def test_job_and_run_routes_serve_the_same_history(client: Client):
    run = client.create_run("both-routes")["id"]
    client.log_metrics(run, points("x", range(5)))
    assert client.request("GET", f"/v1/runs/{run}/metrics/x")["points"] == client.metric_history(run, "x")


@pytest.mark.parametrize("body, field", [
    ({"points": [{"key": "loss", "step": 1, "timestamp": 1.0, "value": 1.0},
                 {"key": "loss", "step": "two", "timestamp": 2.0, "value": 1.0}]}, "points.1.step"),
    ({"points": [{"key": "loss", "step": 1, "timestamp": 1.0}]}, "points.0.value"),
    ({"points": [{"key": "", "step": 1, "timestamp": 1.0, "value": 1.0}]}, "points.0.key"),
    ({"points": [{"key": "loss", "step": 2**70, "timestamp": 1.0, "value": 1.0}]}, "points.0.step"),
    ({"points": "loss=1"}, "points"),
    ({"columns": {"key": ["a", "a"], "step": [1, 2], "timestamp": [1.0, 2.0], "value": [1.0, "x"]}},
     "columns.value.1"),
    ({"columns": {"key": ["a"], "step": [1, 2], "timestamp": [1.0, 2.0], "value": [1.0, 2.0]}}, "columns"),
])
def test_a_malformed_batch_is_refused_whole_naming_the_bad_field(client, tracking_server, body, field):
    run = client.create_run("refused")["id"]
    encodings = [(httpx.Request("POST", "/", json=body).content, "application/json")]
    if field != "points.0.step":  # MessagePack itself cannot carry an integer past 64 bits
        encodings.append((msgpack.packb(body), "application/msgpack"))
    for content, ctype in encodings:
        resp = tracking_server.http.post(f"/v1/runs/{run}/metrics", content=content,
                          headers={"content-type": ctype})
        assert resp.status_code == 422, resp.text
        assert resp.json()["errors"][0]["field"] == field
    assert client.run(run)["metrics"] == {}
    assert client.metric_history(run, "loss") == []


def test_undecodable_bodies_and_unknown_encodings_are_refused(client: Client, tracking_server):
    run = client.create_run("undecodable")["id"]
    url = f"/v1/runs/{run}/metrics"
    bad_json = tracking_server.http.post(url, content=b'{"points": [', headers={"content-type": "application/json"})
    assert bad_json.status_code == 422 and bad_json.json()["errors"][0]["field"] == "(body)"
    text = tracking_server.http.post(url, content=b"loss 1 2 3", headers={"content-type": "text/plain"})
    assert text.status_code == 415 and "application/msgpack" in text.json()["detail"]


def test_metrics_for_a_run_that_does_not_exist_are_refused(client: Client):
    with pytest.raises(TrainyardError) as err:
        client.log_metrics("no-such-run", points("loss", range(3)))
    assert err.value.status == 404 and "POST /v1/runs" in str(err.value)


def test_the_rank_route_decodes_msgpack_and_still_checks_the_attempt(tracking_server):
    body = msgpack.packb({"rank": 0, "points": points("loss", range(3))})
    resp = tracking_server.http.post("/v1/training-jobs/nope/attempts/1/metrics", content=body,
                                     headers={"content-type": "application/msgpack"})
    assert resp.status_code == 403 and "attempt's own credential" in resp.json()["detail"]
