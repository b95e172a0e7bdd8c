"""The whole abuse set against one server: peak RSS stays under 500 MB and /healthz under 100 ms."""

from __future__ import annotations

import time

import httpx

from tests.api.abuse import GiB, MiB, Watch, gzip_bomb, many_members, metric_batch, repeated

PEAK_RSS = 500 * 1000 * 1000


def test_server_memory_and_healthz_stay_bounded_through_oversized_and_bomb_requests(server):
    run = server.client().create_run("abuse")["id"]
    gz = {"content-type": "application/gzip"}
    grid = {"name": "g", "sampler": "grid", "metric": {"name": "loss"},
            "job": {"name": "t", "entrypoint": ["python", "x.py"]},
            "search": {"n": {"type": "int", "low": 0, "high": 150_000_000}}}
    crowded = many_members(50_000)
    requests = [
        ("metric batch 286 MiB", "POST", f"/v1/runs/{run}/metrics",
         {"content": metric_batch(286 * MiB), "headers": {"content-type": "application/json"}}),
        ("attempt metric batch 64 MiB", "POST", f"/v1/training-jobs/{run}/attempts/1/metrics",
         {"content": metric_batch(64 * MiB)}),
        ("code archive 300 MiB", "POST", "/v1/code-archives",
         {"content": repeated(b"\0" * MiB, 300 * MiB), "headers": gz}),
        ("gzip bomb 8 GiB", "POST", "/v1/code-archives", {"content": gzip_bomb(8 * GiB), "headers": gz}),
        ("50,000 members", "POST", "/v1/code-archives", {"content": crowded, "headers": gz}),
        ("grid of 1.5e8", "POST", "/v1/sweeps", {"json": {"spec": grid}}),
    ]
    spans = []
    with (Watch(server.proc.pid, server.url, every_s=0.02) as watch,
          httpx.Client(timeout=120, headers=server.auth) as http):
        for name, method, path, body in requests:
            t0 = time.monotonic()
            status = http.request(method, f"{server.url}{path}", **body).status_code
            spans.append((name, t0, time.monotonic(), status))
    # the attempt's batch comes with a user's token, not the attempt's: refused (403) before it is read
    assert [s[3] for s in spans] == [413, 403, 413, 422, 422, 422], spans
    assert watch.peak_rss < PEAK_RSS, f"peak RSS {watch.peak_rss / 1e6:.0f} MB"
    stalls = [(round(s * 1000), [n for n, t0, t1, _ in spans if t0 <= at <= t1]) for at, s in watch.stalls(0.1)]
    assert not stalls, f"/healthz held up 100 ms or more (ms, during): {stalls}"
