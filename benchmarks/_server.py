"""A real `yard server` for a benchmark: a throwaway home, a free port, gone when done."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

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
