"""Write rate limits per token, on a real server started with a low limit: a burst of writes is
answered 429 with when to retry; metric batches and an attempt's calls are never counted, nor are
calls without a token; another token is not held back; after Retry-After the next write goes."""

from __future__ import annotations

import time
from datetime import datetime

import httpx

from tests.auth.identities import user_token
from tests.conftest import Server, rank_token, wait_for

RATE, BURST = 1, 5  # writes a second, and at once, per token


def limited(make_server) -> Server:  # type: ignore[no-untyped-def]
    return make_server("--write-rate", str(RATE), "--write-burst", str(BURST))


def points(step: int) -> list[dict]:
    return [{"key": "loss", "step": step * 100 + i, "timestamp": time.time(), "value": 1.0 / (1 + i)}
            for i in range(100)]


def write_until_refused(http: httpx.Client, run_id: str, most: int = 30) -> tuple[int, httpx.Response]:
    """Tag writes one after another until one is refused: (how many went through, the refusal)."""
    for n in range(most):
        resp = http.post(f"/v1/runs/{run_id}/tags", json={"tags": {"n": str(n)}})
        if resp.status_code != 200:
            return n, resp
    raise AssertionError(f"{most} writes in a row were never refused")


def test_a_burst_of_writes_is_refused_429_until_retry_after_while_metric_batches_flow(make_server) -> None:  # type: ignore[no-untyped-def]
    server = limited(make_server)
    http = server.http
    run_id = http.post("/v1/runs", json={"name": "throttled"}).json()["id"]
    time.sleep(BURST / RATE)  # the bucket full again

    for _ in range(3 * BURST):  # calls without a token are refused 401 and take nothing from any bucket
        assert httpx.post(f"{server.url}/v1/runs/{run_id}/tags", json={"tags": {"x": "y"}}).status_code == 401
    started = time.monotonic()
    went, refused = write_until_refused(http, run_id)
    assert BURST <= went <= BURST + (time.monotonic() - started) * RATE + 1
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    body = refused.json()
    assert 0 < body["retry_after_s"] <= 1 / RATE
    assert datetime.fromisoformat(body["retry_at"]) and "retry in" in body["detail"]
    assert f"at most {RATE} a second, {BURST} at once" in body["detail"]

    with server.client() as client:  # the same token's metric batches are never throttled
        for step in range(4 * BURST):
            assert client.log_metrics(run_id, points(step)) == 100
    bob = user_token(server, "bob")  # nor is another token held back by this one's writes
    assert server.client(bob).create_run(name="bobs")["name"] == "bobs"

    _, refused = write_until_refused(http, run_id)  # still out of writes: wait as told, then write
    time.sleep(int(refused.headers["Retry-After"]))
    assert http.post(f"/v1/runs/{run_id}/tags", json={"tags": {"after": "waiting"}}).status_code == 200

    throttled = http.get("/v1/audit", params={"actor": "admin", "action": "set_tags"}).json()["items"]
    assert {r["outcome"] for r in throttled} == {200, 429}  # refusals by the limit are on record too


def test_a_running_jobs_own_calls_are_never_throttled(make_server) -> None:  # type: ignore[no-untyped-def]
    server = limited(make_server)
    job = server.http.post("/v1/training-jobs", json={"spec": {
        "name": "busy", "entrypoint": ["python", "-c", "import time; time.sleep(120)"],
        "resources": {"cpus_per_worker": 0.5, "memory_gb": 0.1}}}).json()
    token = wait_for(lambda: live_rank_token(server, job["id"]), 60, what="the rank to start")
    with server.client(token) as rank:
        attempt = rank.attempt(job["id"], 1)
        for step in range(4 * BURST):  # the attempt's metric batches and events, well past a burst
            assert attempt.metrics(0, points(step))["accepted"] == 100
        for _ in range(2 * BURST):
            attempt.event("note", "a rank's event")
    assert server.http.post(f"/v1/training-jobs/{job['id']}/cancel").status_code == 200


def live_rank_token(server: Server, job_id: str) -> str | None:
    try:
        return rank_token(server.home, job_id, 1)
    except AssertionError:
        return None
