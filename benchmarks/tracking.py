"""Metric ingestion and history queries: trainyard against an MLflow tracking server, same run.

Both servers are real processes on this machine with an embedded SQLite store; the
clients are separate processes sending batches of 1,000 points (MLflow's `log_batch`
limit) over HTTP. MLflow (3.x) is installed into a venv of its own under the cache dir
(`TRAINYARD_BENCH_CACHE`, default ~/.cache/trainyard-bench), never into the project.

Prints one JSON line per measurement:
- ingest_points_per_s for trainyard (MessagePack and JSON bodies) and MLflow, and the ratio
  (target: trainyard >= 300,000 points/s and >= 100 x MLflow);
- single_point_calls_per_s: one point per HTTP call, both;
- history_ms: the full history of one 100,000-point metric, fetched and decoded by a client
  (target: <= 100 ms), and a down-sampled one for plotting.

    python benchmarks/tracking.py [--points 1500000] [--clients 2] [--skip-mlflow]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _server import run_clients

from trainyard.backends.local import free_port

BATCH = 1000
HISTORY_POINTS = 100_000
CACHE = Path(os.environ.get("TRAINYARD_BENCH_CACHE", Path.home() / ".cache" / "trainyard-bench"))
MLFLOW_VENV = CACHE / "mlflow-venv"
MLFLOW_REQ = "mlflow>=3,<4"


def emit(**fields: Any) -> None:
    print(json.dumps({"benchmark": "tracking", **fields}), flush=True)


def note(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer at {url} in {timeout:.0f} s")


# -- client processes -------------------------------------------------------------

# Each client process builds its points first (then freezes them out of the GC's way), says
# "ready", waits for "go" on stdin so that all start together, sends `batches` batches and
# prints (start, end, points). The MLflow one runs in MLflow's venv.

TRAINYARD_CLIENT = """
import gc, json, sys, time
from trainyard.client import Client
url, run_id, worker, batches, batch, encoding = sys.argv[1:7]
worker, batches, batch = int(worker), int(batches), int(batch)
c = Client(url)
base = worker * batches * batch
data = [[{"key": "loss", "step": base + b * batch + i, "timestamp": 1.7e9 + b + i / batch,
          "value": 1.0 / (1 + b * batch + i)} for i in range(batch)] for b in range(batches)]
gc.freeze()
print("ready", flush=True)
sys.stdin.readline()
t0 = time.time()
for points in data:
    c.log_metrics(run_id, points, encoding=encoding)
print(json.dumps([t0, time.time(), batches * batch]))
"""

MLFLOW_CLIENT = """
import gc, json, sys, time
from mlflow.tracking import MlflowClient
from mlflow.entities import Metric
url, run_id, worker, batches, batch = sys.argv[1:6]
worker, batches, batch = int(worker), int(batches), int(batch)
c = MlflowClient(url)
base = worker * batches * batch
data = [[Metric("loss", 1.0 / (1 + b * batch + i), 1700000000000 + base + b * batch + i, base + b * batch + i)
         for i in range(batch)] for b in range(batches)]
gc.freeze()
print("ready", flush=True)
sys.stdin.readline()
t0 = time.time()
for metrics in data:
    c.log_batch(run_id, metrics=metrics)
print(json.dumps([t0, time.time(), batches * batch]))
"""

MLFLOW_SINGLE = """
import json, sys, time
from mlflow.tracking import MlflowClient
url, run_id, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
c = MlflowClient(url)
print("ready", flush=True)
sys.stdin.readline()
n, t0 = 0, time.time()
while time.time() - t0 < seconds:
    c.log_metric(run_id, "single", float(n), step=n)
    n += 1
print(json.dumps([t0, time.time(), n]))
"""

MLFLOW_HISTORY = """
import json, statistics, sys, time
from mlflow.tracking import MlflowClient
url, run_id, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = MlflowClient(url)
times, n = [], 0
for _ in range(repeats):
    t0 = time.perf_counter()
    n = len(c.get_metric_history(run_id, "loss"))
    times.append((time.perf_counter() - t0) * 1000)
print(json.dumps({"points": n, "ms": times}))
"""


# -- trainyard ----------------------------------------------------------------------


def start_trainyard(home: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "TRAINYARD_HOME": str(home)}
    log = open(home / "server.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "trainyard.cli.main", "server", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/healthz", proc, "yard server")
    os.environ["TRAINYARD_TOKEN"] = (home / "token").read_text().strip()  # for Client here and in children
    return proc, url


def bench_trainyard(url: str, points: int, clients: int) -> dict[str, float]:
    from trainyard.client import Client

    results: dict[str, float] = {}
    with Client(url) as c:
        for encoding in ("msgpack", "json"):
            run_id = c.create_run(f"ingest-{encoding}", experiment="bench")["id"]
            per_client = max(1, points // (clients * BATCH))
            rate, n = run_clients(
                sys.executable, TRAINYARD_CLIENT,
                lambda w, r=run_id, e=encoding, k=per_client: (url, r, w, k, BATCH, e), clients)
            stored = c.metric_columns(run_id, "loss", max_points=2)["total"]
            assert stored == n, f"{stored} stored of {n} sent"
            results[encoding] = rate
            emit(measure="ingest_points_per_s", system="trainyard", encoding=encoding, batch=BATCH,
                 clients=clients, points=n, value=round(rate), target=300_000)

        run_id = c.create_run("single", experiment="bench")["id"]
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 3.0:
            c.log_metrics(run_id, [{"key": "single", "step": n, "timestamp": time.time(), "value": n}])
            n += 1
        results["single"] = n / (time.perf_counter() - t0)
        emit(measure="single_point_calls_per_s", system="trainyard", value=round(results["single"]))

        run_id = c.create_run("history", experiment="bench")["id"]
        for b in range(HISTORY_POINTS // BATCH):
            c.log_metrics(run_id, [{"key": "loss", "step": b * BATCH + i, "timestamp": 1.7e9 + b + i / BATCH,
                                    "value": 1.0 / (1 + b * BATCH + i)} for i in range(BATCH)])
        for fmt, fetch in (("columns", lambda: c.metric_columns(run_id, "loss")["step"]),
                           ("points", lambda: c.request("GET", f"/v1/runs/{run_id}/metrics/loss")["points"]),
                           ("sampled-1000", lambda: c.metric_columns(run_id, "loss", 1000)["step"])):
            times = []
            for _ in range(7):
                t0 = time.perf_counter()
                got = len(fetch())
                times.append((time.perf_counter() - t0) * 1000)
            results[f"history_{fmt}"] = statistics.median(times)
            emit(measure="history_ms", system="trainyard", format=fmt, points=HISTORY_POINTS, returned=got,
                 p50=round(statistics.median(times), 1), best=round(min(times), 1),
                 target=100 if fmt != "sampled-1000" else None)
    return results


# -- MLflow -------------------------------------------------------------------------


def mlflow_python() -> str:
    python = MLFLOW_VENV / "bin" / "python"
    if not python.exists():
        note(f"installing {MLFLOW_REQ} into {MLFLOW_VENV} (once; a few minutes)")
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", MLFLOW_REQ], check=True)
    version = subprocess.run([str(python), "-c", "import mlflow; print(mlflow.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    note(f"MLflow {version} from {MLFLOW_VENV}")
    return str(python)


def bench_mlflow(work: Path, clients: int) -> dict[str, float]:
    python = mlflow_python()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(work / "mlflow.log", "ab")  # noqa: SIM115 - handed to the child
    argv = [str(Path(python).parent / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
            "--default-artifact-root", str(work / "mlflow-artifacts"),
            "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    results: dict[str, float] = {}
    try:
        wait_http(f"{url}/health", proc, "mlflow server", timeout=180)

        def new_run(name: str) -> str:
            code = ("import sys; from mlflow.tracking import MlflowClient; c = MlflowClient(sys.argv[1]); "
                    "print(c.create_run('0', run_name=sys.argv[2]).info.run_id)")
            return subprocess.run([python, "-c", code, url, name], capture_output=True, text=True,
                                  check=True).stdout.strip().splitlines()[-1]

        run_id = new_run("ingest")
        batches = HISTORY_POINTS // (clients * BATCH)  # the same run then serves the history query
        rate, n = run_clients(python, MLFLOW_CLIENT, lambda w: (url, run_id, w, batches, BATCH), clients)
        results["ingest"] = rate
        emit(measure="ingest_points_per_s", system="mlflow", encoding="log_batch", batch=BATCH,
             clients=clients, points=n, value=round(rate))

        rate, _ = run_clients(python, MLFLOW_SINGLE, lambda w: (url, new_run(f"single-{w}"), 3.0), 1)
        results["single"] = rate
        emit(measure="single_point_calls_per_s", system="mlflow", value=round(rate, 1))

        out = subprocess.run([python, "-c", MLFLOW_HISTORY, url, run_id, "3"], capture_output=True, text=True,
                             check=True).stdout.strip().splitlines()[-1]
        hist = json.loads(out)
        results["history"] = statistics.median(hist["ms"])
        emit(measure="history_ms", system="mlflow", format="get_metric_history", points=n,
             returned=hist["points"], p50=round(results["history"], 1), best=round(min(hist["ms"]), 1))
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_500_000,
                        help="trainyard ingestion points per encoding")
    parser.add_argument("--clients", type=int, default=2, help="client processes sending at once")
    parser.add_argument("--skip-mlflow", action="store_true", help="trainyard only (no baseline)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trainyard-bench-tracking-"))
    try:
        (work / "home").mkdir()
        proc, url = start_trainyard(work / "home")
        try:
            ours = bench_trainyard(url, args.points, args.clients)
        finally:
            proc.terminate()
            proc.wait(15)
        if args.skip_mlflow:
            return 0
        theirs = bench_mlflow(work, args.clients)
        emit(measure="ingest_ratio_vs_mlflow", value=round(ours["msgpack"] / theirs["ingest"], 1),
             json_value=round(ours["json"] / theirs["ingest"], 1), target=100)
        emit(measure="history_ratio_vs_mlflow", value=round(theirs["history"] / ours["history_columns"], 1))
        ok = ours["msgpack"] >= 300_000 and ours["msgpack"] >= 100 * theirs["ingest"]
        ok = ok and ours["history_columns"] <= 100
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
