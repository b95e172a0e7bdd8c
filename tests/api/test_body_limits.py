"""Every route has a body limit, enforced while the body streams in: 413 naming the limit and the fix."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import msgpack

from tests.api.abuse import GiB, MiB, Watch, metric_batch, repeated
from tests.conftest import rank_token, wait_for

RSS_BUDGET = 100 * MiB  # above the server's resting RSS, while refusing bodies of hundreds of MiB


def _refusal(resp: httpx.Response, limit: str) -> str:
    assert resp.status_code == 413, resp.text[:500]
    [error] = resp.json()["errors"]
    assert error["field"] == "(body)"
    assert f"at most {limit}" in error["message"], error["message"]
    return error["message"]


def test_oversized_metric_batch_is_refused_quickly_without_buffering_it(server):
    run = server.client().create_run("big-batch")["id"]
    with Watch(server.proc.pid, server.url) as watch:
        t0 = time.monotonic()
        resp = server.http.post(f"/v1/runs/{run}/metrics", content=metric_batch(286 * MiB),
                          headers={"content-type": "application/json"}, timeout=120)
        elapsed = time.monotonic() - t0
    message = _refusal(resp, "16 MiB")
    assert "10,000 points" in message
    assert elapsed < 10, elapsed
    assert watch.rss_growth < RSS_BUDGET, watch.rss_growth
    assert server.client().run(run)["metrics"] == {}


def test_metric_batch_declaring_an_oversized_length_is_refused_before_it_is_read(server):
    run = server.client().create_run("declared")["id"]
    size = 64 * MiB
    t0 = time.monotonic()
    resp = server.http.post(f"/v1/runs/{run}/metrics", content=repeated(b"x" * MiB, size),
                      headers={"content-type": "application/json", "content-length": str(size)}, timeout=60)
    assert time.monotonic() - t0 < 10
    assert "64 MiB" in _refusal(resp, "16 MiB")


def test_an_attempts_oversized_metric_batch_is_refused_too(server):
    job = server.client().submit({"name": "sleeper", "entrypoint": ["python", "-c", "import time; time.sleep(600)"],
                                  "resources": {"workers": 1, "cpus_per_worker": 0.5, "memory_gb": 0.5}})
    token = wait_for(lambda: _live_rank_token(server, job["id"]), 60, what="the rank to start")
    resp = httpx.post(f"{server.url}/v1/training-jobs/{job['id']}/attempts/1/metrics", timeout=60,
                      content=metric_batch(40 * MiB), headers={"content-type": "application/json",
                                                               "Authorization": f"Bearer {token}"})
    _refusal(resp, "16 MiB")
    without = server.http.post("/v1/training-jobs/j-1/attempts/1/metrics", content=metric_batch(40 * MiB),
                               headers={"content-type": "application/json"}, timeout=60)
    assert without.status_code == 403  # a user's token is refused before any of the body is read


def _live_rank_token(server, job_id: str) -> str | None:
    try:
        return rank_token(server.home, job_id, 1)
    except AssertionError:
        return None


def test_a_runtime_sized_batch_with_the_longest_keys_is_accepted(server):
    """The runtime sends at most 10,000 points a request: far under the limit, even as JSON points."""
    run = server.client().create_run("long-keys")["id"]
    key = "k" * 250
    points = [{"key": key, "step": 2**62 + i, "timestamp": 1700000000.123456, "value": 1e-300 * i}
              for i in range(10_000)]
    resp = server.http.post(f"/v1/runs/{run}/metrics", json={"points": points}, timeout=60)
    assert resp.status_code == 200 and resp.json() == {"accepted": 10_000}
    body = msgpack.packb({"columns": {"key": [key] * 10_000, "step": list(range(10_000)),
                                      "timestamp": [1.7e9] * 10_000, "value": [0.5] * 10_000}})
    resp = server.http.post(f"/v1/runs/{run}/metrics", content=body,
                      headers={"content-type": "application/msgpack"}, timeout=60)
    assert resp.json() == {"accepted": 10_000}


def test_code_archive_over_200_mib_is_refused_while_it_streams(server):
    with Watch(server.proc.pid, server.url) as watch:
        resp = server.http.post("/v1/code-archives", content=repeated(b"\x1f" * MiB, 300 * MiB),
                          headers={"content-type": "application/gzip"}, timeout=120)
    message = _refusal(resp, "200 MiB")
    assert "dataset" in message
    assert watch.rss_growth < RSS_BUDGET, watch.rss_growth
    assert not list((server.home / "blobs").rglob("*.tar.gz"))


def test_a_json_body_over_the_default_limit_is_refused(server):
    spec = {"name": "big", "entrypoint": ["python", "-c", "pass"], "env": {"PAD": "x" * (5 * MiB)}}
    resp = server.http.post("/v1/training-jobs", json={"spec": spec}, timeout=60)
    _refusal(resp, "4 MiB")
    assert server.http.get("/v1/training-jobs").json()["items"] == []


def test_an_artifact_is_streamed_to_disk_not_memory(server, tmp_path):
    run = server.client().create_run("artifact")["id"]
    with Watch(server.proc.pid, server.url) as watch:
        resp = server.http.put(f"/v1/runs/{run}/artifacts/big.bin", content=repeated(b"a" * MiB, 400 * MiB),
                         headers={"content-type": "application/octet-stream"}, timeout=120)
    assert resp.status_code == 201, resp.text
    assert resp.json()["bytes"] == 400 * MiB
    assert watch.rss_growth < RSS_BUDGET, watch.rss_growth


def _send_until_refused(url: str, head: str, body: Iterator[bytes]) -> tuple[int, bytes]:
    """Send `head` and then `body` on one connection until the server stops reading; returns the bytes
    of body sent and what the server answered."""
    host, port = url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        try:
            for piece in body:
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    return sent, answer


def _chunked(piece: bytes, total: int) -> Iterator[bytes]:
    framed = b"%x\r\n%s\r\n" % (len(piece), piece)
    for _ in range(total // len(piece)):
        yield framed


def test_a_refused_body_is_not_read_to_its_end_the_connection_closes(server):
    """After its 413 the server reads no more of a body: a client sending 1 GiB is cut off near the limit
    (and whatever socket buffers hold), not drained to its end."""
    run = server.client().create_run("cut-off")["id"]
    head = (f"POST /v1/runs/{run}/metrics HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {server.token}\r\n"
            "content-type: application/json\r\n"
            "transfer-encoding: chunked\r\n\r\n")
    sent, answer = _send_until_refused(server.url, head, _chunked(b" " * MiB, 1024 * MiB))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"connection: close" in answer.lower()
    assert sent < 16 * MiB + 64 * MiB, f"{sent / MiB:.0f} MiB sent"

    declared = 64 * GiB
    head = (f"POST /v1/training-jobs HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {server.token}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {declared}\r\n\r\n")
    sent, answer = _send_until_refused(server.url, head, repeated(b" " * MiB, 1024 * MiB))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"65536 MiB" in answer
    assert sent < 64 * MiB, f"{sent / MiB:.0f} MiB sent"
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_a_client_refused_over_and_over_is_answered_no_faster_than_its_refusal_budget(server):
    """Oversized metric batches in a loop: the first 256 MiB of refused bodies are answered at once,
    then each refusal is held so that no more than ~32 MiB a second is read for nothing; meanwhile
    the same client's good requests are answered without waiting, and the held answers are still 413s."""
    run = server.client().create_run("refused-loop")["id"]
    url = f"{server.url}/v1/runs/{run}/metrics"
    good = {"points": [{"key": "loss", "step": 1, "timestamp": 1700000000.5, "value": 0.5}]}
    refused, waits, t0 = 0, [], time.monotonic()
    with httpx.Client(timeout=120, headers=server.auth) as http:
        while time.monotonic() - t0 < 60 and len([w for w in waits if w > 0.3]) < 3:
            t = time.monotonic()
            resp = http.post(url, content=repeated(b" " * MiB, 20 * MiB), headers={"content-type": "application/json"})
            waits.append(time.monotonic() - t)
            _refusal(resp, "16 MiB")
            refused += 16 * MiB
        elapsed = time.monotonic() - t0
        assert waits[0] < 2 and sum(w > 0.3 for w in waits[:8]) <= 1, waits  # the first ones: at once
        assert refused <= 256 * MiB + 32 * MiB * elapsed + 64 * MiB, (refused / MiB, elapsed, waits)

        held: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: held.append(http.post(
            url, content=repeated(b" " * MiB, 20 * MiB), headers={"content-type": "application/json"})))
        worker.start()
        time.sleep(0.1)
        t = time.monotonic()
        assert httpx.post(url, json=good, headers=server.auth, timeout=30).json() == {"accepted": 1}
        assert time.monotonic() - t < 1.0
        worker.join(60)
    _refusal(held[0], "16 MiB")
