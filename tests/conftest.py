"""Shared fixtures: a real `yard server` process in a throwaway TRAINYARD_HOME."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.people import people
from trainyard.backends.local import free_port
from trainyard.client import Client
from trainyard.principal import Role

REPO = Path(__file__).resolve().parents[1]
YARD = [sys.executable, "-m", "trainyard.cli.main"]


@dataclass
class Server:
    home: Path
    port: int
    extra_args: list[str]
    proc: subprocess.Popen | None = None
    _http: httpx.Client | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "TRAINYARD_HOME": str(self.home), "TRAINYARD_SERVER": self.url}

    def start(self) -> None:
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([*YARD, "server", "--port", str(self.port), *self.extra_args],
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.home / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("server did not come up in 60 s")

    def kill(self) -> None:
        """SIGKILL, as a crash would: ranks live on."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def yard(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*YARD, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=REPO)

    @property
    def token(self) -> str:
        """The platform admin's token the server wrote at its first start."""
        return (self.home / "token").read_text().strip()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def http(self) -> httpx.Client:
        """Raw HTTP as the platform admin (paths relative to the server)."""
        if self._http is None:
            self._http = httpx.Client(base_url=self.url, headers=self.auth, timeout=30)
        return self._http

    def client(self, token: str | None = None) -> Client:
        return Client(self.url, token=token or self.token)


def processes_under(home: Path) -> list[psutil.Process]:
    """Every live process working inside `home`: ranks and their rank wrappers."""
    found = []
    for p in psutil.process_iter(["cwd"]):
        try:
            cwd = p.info["cwd"]
            if cwd and cwd.startswith(str(home)) and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:
            continue
    return found


def make_user(server: Server, name: str, team: str = "default", role: str = "member") -> str:
    """A user with `role` in `team` and a token of theirs (tests/people.py); returns the token."""
    return people(server.home, {name: {team: Role(role)}})[name]


def rank_token(home: Path, job_id: str, attempt: int) -> str:
    """The credential one attempt's ranks hold, read from a live rank's environment, as the rank
    itself reads it (TRAINYARD_TOKEN): how a test plays a rank's part, or a zombie's."""
    for p in processes_under(home):
        try:
            env = p.environ()
        except psutil.Error:
            continue
        if env.get("TRAINYARD_JOB_ID") == job_id and env.get("TRAINYARD_ATTEMPT") == str(attempt):
            return env["TRAINYARD_TOKEN"]
    raise AssertionError(f"no live rank of job {job_id} attempt {attempt} under {home}")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator:
    servers: list[Server] = []

    def make(*extra_args: str) -> Server:
        srv = Server(home=tmp_path / "home", port=free_port(), extra_args=list(extra_args))
        srv.home.mkdir(exist_ok=True)
        srv.start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()
    for p in processes_under(tmp_path):
        try:
            p.kill()
        except psutil.Error:
            pass


@contextmanager
def shared_server(tmp_path_factory: pytest.TempPathFactory, name: str,
                  *extra_args: str) -> Iterator[tuple[Server, Path]]:
    """One real server for a module's or package's tests (4 CPUs); its ranks gone afterwards."""
    root: Path = tmp_path_factory.mktemp(name)
    home = root / "home"
    home.mkdir()
    srv = Server(home=home, port=free_port(), extra_args=["--cpus", "4", *extra_args])
    srv.start()
    try:
        yield srv, root
    finally:
        srv.stop()
        for p in processes_under(root):
            p.kill()


@pytest.fixture
def server(make_server) -> Server:
    return make_server()


def wait_for(predicate, timeout: float, interval: float = 0.3, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
