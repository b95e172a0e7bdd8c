"""API latency under abuse: p99 of `GET /v1/training-jobs/{id}` while another client sends
oversized bodies and archive bombs in a loop, against the same p99 with no abuse, same run.

One real `yard server` on 127.0.0.1. Phases alternate, `--rounds` of each (so that the
machine's own load drifts into all alike); in each, this process sends at least `--requests`
GETs one after another, and in a loaded phase at least until the other client has sent one
whole pass of its set. The other client is a process of its own:
- abused: refused bodies in a loop, each streamed, never built whole:
  a 64 MiB metric batch, chunked (refused at 16 MiB while it streams);
  a 300 MiB code archive, chunked (refused at 200 MiB);
  a gzip bomb, 8 MiB on the wire and 8 GiB inflated (refused at its first header);
  a tar.gz of 50,000 empty files (refused at the 20,001st);
  a job spec declaring 64 MiB (refused before a byte is read);
- uploads (the control): a well-behaved client uploading 300 MiB artifacts in a loop, to tell
  what moving that many bytes costs this machine from what refusing them costs the server.

Prints one JSON line per phase and round, then a summary: p50 and p99 of each phase, the
abused/quiet p99 ratio (target <= 2), the uploads/quiet one, and the server's peak RSS.

    python benchmarks/api_abuse.py [--rounds 3] [--requests 1000]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import multiprocessing
import os
import statistics
import tarfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
from _server import running_server, wait

MiB = 1 << 20
GiB = 1 << 30
TARGET_RATIO = 2.0


def emit(**fields: Any) -> None:
    print(json.dumps({"benchmark": "api_abuse", **fields}), flush=True)


# -- the abusive client ------------------------------------------------------------


def repeated(chunk: bytes, total: int) -> Iterator[bytes]:
    for _ in range(total // len(chunk)):
        yield chunk


def gzip_bomb(inflated: int, piece: int = 64 * MiB) -> list[bytes]:
    """One tar member of `inflated` zero bytes as concatenated gzip members (~1/1000 the size):
    the parts, made once, so that sending the bomb again costs the abuser nothing."""
    info = tarfile.TarInfo("weights.bin")
    info.size = inflated
    zeros = gzip.compress(bytes(piece))
    return [gzip.compress(info.tobuf(tarfile.PAX_FORMAT)), *[zeros] * (inflated // piece), gzip.compress(bytes(1024))]


def many_members(count: int) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as gz:
        for i in range(count):
            gz.write(tarfile.TarInfo(f"f/{i}").tobuf(tarfile.PAX_FORMAT))
        gz.write(bytes(1024))
    return buf.getvalue()


def abuse_set(run_id: str) -> list[tuple[str, str, Any]]:
    """The oversized bodies and bombs, each as (method, path, body factory); refused, every one."""
    crowded = many_members(50_000)
    gz = {"content-type": "application/gzip"}
    metric = b'{"key":"loss","step":1,"timestamp":1700000000.5,"value":0.25},' * 16_000
    bomb = gzip_bomb(8 * GiB)
    return [
        ("POST", f"/v1/runs/{run_id}/metrics", lambda: {"content": repeated(metric, 64 * MiB)}),
        ("POST", "/v1/code-archives", lambda: {"content": repeated(b"\0" * MiB, 300 * MiB), "headers": gz}),
        ("POST", "/v1/code-archives", lambda: {"content": iter(bomb), "headers": gz}),
        ("POST", "/v1/code-archives", lambda: {"content": crowded, "headers": gz}),
        ("POST", "/v1/training-jobs", lambda: {"content": repeated(b" " * MiB, 64 * MiB),
                                               "headers": {"content-length": str(64 * MiB)}}),
    ]


def upload_set(run_id: str) -> list[tuple[str, str, Any]]:
    """The control: a well-behaved client moving as many bytes, a 300 MiB artifact at a time."""
    return [("PUT", f"/v1/runs/{run_id}/artifacts/checkpoint.bin",
             lambda: {"content": repeated(b"w" * MiB, 300 * MiB)})]


PASS = {"abused": 5, "uploads": 1}  # requests in one pass of each set


def load(kind: str, url: str, run_id: str, ready: Any, stop: Any, answered: Any, max_s: float) -> None:
    """Send `kind`'s requests over and over until `stop` is set (or `max_s` passes); count the answers."""
    requests = abuse_set(run_id) if kind == "abused" else upload_set(run_id)
    expected = (413, 422) if kind == "abused" else (201,)
    deadline = time.monotonic() + max_s
    ready.set()
    auth = {"Authorization": f"Bearer {os.environ['TRAINYARD_TOKEN']}"}  # set by running_server
    with httpx.Client(base_url=url, headers=auth, timeout=120) as http:
        while not stop.is_set() and time.monotonic() < deadline:
            for method, path, body in requests:
                if stop.is_set():
                    break
                status = http.request(method, path, **body()).status_code
                assert status in expected, f"{path} answered {status}"
                with answered.get_lock():
                    answered.value += 1


# -- the measuring client ----------------------------------------------------------


def latencies_ms(http: httpx.Client, path: str, n: int, until: Any = None) -> list[float]:
    """`n` GETs one after another, and more until `until()` is true."""
    out: list[float] = []
    while len(out) < n or (until is not None and not until()):
        t0 = time.perf_counter()
        http.get(path).raise_for_status()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def p(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))]


def server_process(url: str) -> psutil.Process:
    port = url.rsplit(":", 1)[1]
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "server" in cmd and port in cmd:
            return proc
    raise RuntimeError(f"no server process listening on port {port}")


def peak_rss(proc: psutil.Process, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.01)


def summary(sample: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(sample), 2), "p99_ms": round(p(sample, 0.99), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each phase")
    parser.add_argument("--requests", type=int, default=1000, help="GETs per phase and round, at least")
    parser.add_argument("--max-load-s", type=float, default=120, help="a loaded phase ends by then")
    args = parser.parse_args()

    ctx = multiprocessing.get_context("spawn")
    # The abuser's token is never rate-limited here: this measures what refusing bodies costs.
    with running_server("--write-rate", "1000000", "--write-burst", "1000000") as srv:
        http = srv.http
        job = http.post("/v1/training-jobs", json={"spec": {
            "name": "probe", "entrypoint": ["python", "-c", "pass"],
            "resources": {"workers": 1, "cpus_per_worker": 0.1, "memory_gb": 0.1}}})
        job.raise_for_status()
        job_id = job.json()["id"]
        wait(lambda: http.get(f"/v1/training-jobs/{job_id}").json()["state"] in ("SUCCEEDED", "FAILED"), 120)
        run_id = http.post("/v1/runs", json={"name": "uploads"}).json()["id"]
        path = f"/v1/training-jobs/{job_id}"
        server = server_process(srv.url)
        latencies_ms(http, path, 200)  # warm up
        rss_stop, rss = threading.Event(), [server.memory_info().rss]
        sampler = threading.Thread(target=peak_rss, args=(server, rss_stop, rss), daemon=True)
        sampler.start()
        samples: dict[str, list[float]] = {"quiet": [], "abused": [], "uploads": []}
        answered = {kind: ctx.Value("i", 0) for kind in ("abused", "uploads")}
        for round_ in range(args.rounds):
            for kind in samples:
                if kind == "quiet":
                    sample = latencies_ms(http, path, args.requests)
                else:
                    ready, stop, count = ctx.Event(), ctx.Event(), answered[kind]
                    client = ctx.Process(target=load, args=(kind, srv.url, run_id if kind == "uploads" else job_id,
                                                            ready, stop, count, args.max_load_s))
                    client.start()
                    assert ready.wait(120), f"the {kind} client did not start"
                    before = count.value
                    # at least one whole pass of the loaded client's set falls inside the phase
                    sample = latencies_ms(http, path, args.requests, until=lambda b=before, c=count, a=client,
                                          n=PASS[kind]: c.value - b >= n or not a.is_alive())
                    stop.set()
                    client.join(300)
                    assert client.exitcode == 0, f"the {kind} client failed: see above"
                samples[kind] += sample
                emit(round=round_, phase=kind, requests=len(sample), **summary(sample),
                     **({"answered": answered[kind].value} if kind in answered else {}))
        rss_stop.set()
        sampler.join()
        quiet_p99 = p(samples["quiet"], 0.99)
        ratio = p(samples["abused"], 0.99) / quiet_p99
        emit(measure="get_job_p99_under_abuse", **{f"{k}_{m}": v for k, s in samples.items()
                                                   for m, v in summary(s).items()},
             ratio=round(ratio, 2), target_ratio=TARGET_RATIO, ok=ratio <= TARGET_RATIO,
             uploads_ratio=round(p(samples["uploads"], 0.99) / quiet_p99, 2),
             abuse_requests_answered=answered["abused"].value, server_peak_rss_mb=round(rss[0] / 1e6),
             requests_per_phase=len(samples["quiet"]))


if __name__ == "__main__":
    main()
