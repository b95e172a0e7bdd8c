"""A real `yard server` for a benchmark: a throwaway home, a free port, gone when done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from trainyard.backends.local import free_port

REPO = Path(__file__).resolve().parents[1]
YARD = [sys.executable, "-m", "trainyard.cli.main"]
T = TypeVar("T")


def wait(pred: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := pred():
            return value
        time.sleep(interval)
    raise TimeoutError


@dataclass
class BenchServer:
    url: str
    env: dict[str, str]  # TRAINYARD_HOME and TRAINYARD_SERVER set: hand it to `yard` subprocesses
    tmp: Path  # scratch space that goes with the server
    http: httpx.Client


@contextmanager
def running_server(*args: str, timeout_s: float = 30) -> Iterator[BenchServer]:
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as d:
        tmp = Path(d)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "TRAINYARD_HOME": str(tmp / "home"), "TRAINYARD_SERVER": url}
        server = subprocess.Popen([*YARD, "server", "--port", str(port), *args], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with httpx.Client(base_url=url, timeout=timeout_s) as http:
                wait(lambda: _up(http), 60, 0.2)
                # the admin token the server wrote: for this process, its `yard` and its clients' children
                token = (tmp / "home" / "token").read_text().strip()
                os.environ["TRAINYARD_TOKEN"] = env["TRAINYARD_TOKEN"] = token
                http.headers["Authorization"] = f"Bearer {token}"
                yield BenchServer(url, env, tmp, http)
        finally:
            server.terminate()
            server.wait(30)


def _up(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def run_clients(python: str, code: str, args_for: Any, clients: int) -> tuple[float, int]:
    """Start `clients` processes, let them all go at once; returns (points/s over the whole
    window from the first start to the last finish, points sent)."""
    procs = [subprocess.Popen([python, "-c", code, *map(str, args_for(w))], cwd=REPO, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE) for w in range(clients)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready", "a client failed to start"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(f"a client exited with {p.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    start = min(r[0] for r in results)
    end = max(r[1] for r in results)
    points = sum(r[2] for r in results)
    return points / (end - start), points
