"""What authentication costs: job reads and metric ingestion with auth on and off, same run.

Two real servers on 127.0.0.1, each in a throwaway home, started by the same launcher (what
`yard server` runs: Platform.open, the control loop, uvicorn over create_app). They differ in
one thing: the "off" one overrides the gates FastAPI resolves per request (the `authenticate`
dependency, the write rate limit, the job-read authorization `readable_job`) with ones that ask
nothing, so its requests do everything else the same. trainyard itself has no switch to turn
authentication off: the override lives in this file only. The audit middleware is in both (for
reads and metric batches it only looks at the method and path). Both get the same requests,
Authorization header included.

Measured, with the phases of each interleaved (on/off, then off/on, ...) so that the machine's
own drift falls on both:
- job_read_ms: `GET /v1/training-jobs/{id}` one after another, p50 and p99 of each server, and
  the p99 auth adds (target <= 1 ms);
- ingest_points_per_s: client processes sending MessagePack batches of 1,000 points to
  `POST /v1/runs/{id}/metrics`, and the throughput auth costs (target <= 5 %).

Prints one JSON line per round and measurement, then one summary line per measurement.

    python benchmarks/auth_overhead.py [--rounds 6] [--reads 1000] [--points 600000] [--clients 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _server import REPO, run_clients, wait

from trainyard.backends.local import free_port

BATCH = 1000
READ_TARGET_MS = 1.0
INGEST_TARGET = 0.05

LAUNCHER = """
import sys
import uvicorn
from fastapi import Request
from trainyard.api import Platform, create_app
from trainyard.api.auth import authenticate
from trainyard.api.deps import readable_job
from trainyard.api.rate_limits import throttle
from trainyard.config import ServerConfig
from trainyard.principal import Principal, Role

home, port, auth = sys.argv[1], int(sys.argv[2]), sys.argv[3]
platform = Platform.open(ServerConfig(home=home, port=port))
platform.loop.start()
app = create_app(platform)
if auth == "off":  # this benchmark's baseline only: nobody is asked who they are
    admin = Principal(name="admin", platform_admin=True, roles={"default": Role.ADMIN})

    async def nobody_asked(request: Request) -> Principal:
        request.state.principal = admin
        return admin

    async def no_limit() -> None:
        return None

    async def any_job(job_id: str) -> str:
        return job_id

    app.dependency_overrides.update({authenticate: nobody_asked, throttle: no_limit, readable_job: any_job})
try:
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
finally:
    platform.close()
"""

# Each client builds its batches first, says "ready", waits for "go", sends them and prints
# (start, end, points).
CLIENT = """
import gc, json, sys, time
from trainyard.client import Client
url, token, run_id, worker, batches, batch = sys.argv[1:7]
worker, batches, batch = int(worker), int(batches), int(batch)
c = Client(url, token=token)
base = worker * batches * batch
data = [[{"key": "loss", "step": base + b * batch + i, "timestamp": 1.7e9 + b + i / batch,
          "value": 1.0 / (1 + b * batch + i)} for i in range(batch)] for b in range(batches)]
gc.freeze()
print("ready", flush=True)
sys.stdin.readline()
t0 = time.time()
for points in data:
    c.log_metrics(run_id, points)
print(json.dumps([t0, time.time(), batches * batch]))
"""


def emit(**fields: Any) -> None:
    print(json.dumps({"benchmark": "auth_overhead", **fields}), flush=True)


@dataclass
class Served:
    auth: str  # "on" | "off"
    url: str
    token: str
    http: httpx.Client
    job_id: str = ""


@contextmanager
def serving(auth: str, root: Path) -> Iterator[Served]:
    home = root / f"auth-{auth}"
    home.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(home / "server.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(home), str(port), auth], cwd=REPO,
                            env={**os.environ, "TRAINYARD_HOME": str(home)}, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        wait(lambda: proc.poll() is not None or _up(url), 60, 0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"the auth-{auth} server exited: {(home / 'server.log').read_text()[-2000:]}")
        token = (home / "token").read_text().strip()
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
            yield Served(auth, url, token, http)
    finally:
        proc.terminate()
        proc.wait(30)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def finished_job(srv: Served) -> str:
    """A job that ran and ended, so that no rank runs while the server is measured."""
    resp = srv.http.post("/v1/training-jobs", json={"spec": {
        "name": "probe", "entrypoint": ["python", "-c", "pass"],
        "resources": {"workers": 1, "cpus_per_worker": 0.1, "memory_gb": 0.1}}})
    resp.raise_for_status()
    job_id = resp.json()["id"]
    wait(lambda: srv.http.get(f"/v1/training-jobs/{job_id}").json()["state"] in ("SUCCEEDED", "FAILED"), 120, 0.2)
    return job_id


def read_latencies_ms(srv: Served, n: int) -> list[float]:
    path = f"/v1/training-jobs/{srv.job_id}"
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        srv.http.get(path).raise_for_status()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def ingest(srv: Served, points: int, clients: int) -> float:
    """Points a second over the whole window, first start to last finish, into a fresh run."""
    run_id = srv.http.post("/v1/runs", json={"name": "ingest"}).json()["id"]
    batches = max(1, points // (clients * BATCH))
    rate, _ = run_clients(sys.executable, CLIENT, lambda w: (srv.url, srv.token, run_id, w, batches, BATCH), clients)
    return rate


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds of each measurement, on and off interleaved")
    parser.add_argument("--reads", type=int, default=1000, help="job reads per server and round")
    parser.add_argument("--points", type=int, default=600_000, help="metric points per server and round")
    parser.add_argument("--clients", type=int, default=2, help="client processes sending at once")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="trainyard-bench-auth-") as d, ExitStack() as stack:
        on = stack.enter_context(serving("on", Path(d)))
        off = stack.enter_context(serving("off", Path(d)))
        assert httpx.get(f"{on.url}/v1/training-jobs").status_code == 401, "auth-on must ask for a token"
        for srv in (on, off):
            srv.job_id = finished_job(srv)
            read_latencies_ms(srv, 200)  # warm up
            ingest(srv, 20_000, 1)

        reads: dict[str, list[float]] = {"on": [], "off": []}
        added_p99: list[float] = []
        for r in range(args.rounds):
            got = {s.auth: read_latencies_ms(s, args.reads) for s in ((on, off) if r % 2 == 0 else (off, on))}
            for auth, sample in got.items():
                reads[auth] += sample
            added_p99.append(pct(got["on"], 0.99) - pct(got["off"], 0.99))
            emit(measure="job_read_ms", round=r + 1, auth_on={"p50_ms": round(statistics.median(got["on"]), 3),
                                                              "p99_ms": round(pct(got["on"], 0.99), 3)},
                 baseline_auth_off={"p50_ms": round(statistics.median(got["off"]), 3),
                                    "p99_ms": round(pct(got["off"], 0.99), 3)},
                 added_p99_ms=round(added_p99[-1], 3))

        rates: dict[str, list[float]] = {"on": [], "off": []}
        for r in range(args.rounds):
            got = {s.auth: ingest(s, args.points, args.clients) for s in ((off, on) if r % 2 == 0 else (on, off))}
            for auth, rate in got.items():
                rates[auth].append(rate)
            emit(measure="ingest_points_per_s", round=r + 1, auth_on=round(got["on"]),
                 baseline_auth_off=round(got["off"]), cost_pct=round(100 * (1 - got["on"] / got["off"]), 1))

    p99_cost = statistics.median(added_p99)
    emit(measure="job_read_ms", summary=True, reads_per_server=len(reads["on"]),
         auth_on={"p50_ms": round(statistics.median(reads["on"]), 3), "p99_ms": round(pct(reads["on"], 0.99), 3)},
         baseline_auth_off={"p50_ms": round(statistics.median(reads["off"]), 3),
                            "p99_ms": round(pct(reads["off"], 0.99), 3)},
         added_p50_ms=round(statistics.median(reads["on"]) - statistics.median(reads["off"]), 3),
         added_p99_ms_median_of_rounds=round(p99_cost, 3), target_added_p99_ms=READ_TARGET_MS,
         met=p99_cost <= READ_TARGET_MS)
    cost = 1 - statistics.median(rates["on"]) / statistics.median(rates["off"])
    emit(measure="ingest_points_per_s", summary=True, auth_on=round(statistics.median(rates["on"])),
         baseline_auth_off=round(statistics.median(rates["off"])), cost_pct=round(100 * cost, 1),
         target_cost_pct=100 * INGEST_TARGET, met=cost <= INGEST_TARGET)
    return 0 if p99_cost <= READ_TARGET_MS and cost <= INGEST_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
