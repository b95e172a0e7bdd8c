"""A script outside the platform, pointed at a server: `trainyard.init()` makes it a run.

With TRAINYARD_SERVER set and no TRAINYARD_JOB_ID, rank 0 creates a run (POST /v1/runs)
named after the script, with the script's hyperparameters as params (TRAINYARD_TEAM,
TRAINYARD_PROJECT and TRAINYARD_EXPERIMENT place it; the team defaults to the token's only
team, else `default`), ships its metrics there, and ends it at finish: SUCCEEDED,
or FAILED / CANCELLED when an exception or Ctrl-C ends the script. If the server does not
answer, training goes on with local files, as with no server at all.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from types import TracebackType
from typing import Any

from trainyard.client import Client
from trainyard.runtime.launch import RankEnv
from trainyard.runtime.metrics import Point, Send

log = logging.getLogger("trainyard.runtime")


def run_name(script: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", script.lower()).strip("-._") or "run"
    return name[:64]


class ClientRun:
    def __init__(self, server: str, run: dict[str, Any]):
        self.server = server
        self.id: str = run["id"]
        self.state = "SUCCEEDED"
        self._local = threading.local()
        self._previous_hook = sys.excepthook
        sys.excepthook = self._excepthook

    def _client(self) -> Client:
        if not hasattr(self._local, "client"):  # httpx clients are not shared across threads
            self._local.client = Client(self.server, timeout=10.0)
        return self._local.client

    def send(self) -> Send:
        def send(points: list[Point]) -> None:
            self._client().log_metrics(self.id, points, encoding="msgpack")  # columns, ~2x JSON ingest

        return send

    def _excepthook(self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        self.state = "CANCELLED" if issubclass(kind, KeyboardInterrupt) else "FAILED"
        self._previous_hook(kind, exc, tb)

    def end(self) -> None:
        sys.excepthook = self._previous_hook
        try:
            self._client().end_run(self.id, self.state, "the script finished" if self.state == "SUCCEEDED"
                                   else "the script ended with an uncaught exception")
        except Exception as exc:  # noqa: BLE001 - the run stays RUNNING; training's result is unaffected
            log.warning("trainyard: could not end run %s (%s)", self.id, exc)


def start(env: RankEnv, script: str) -> ClientRun | None:
    """The run of a standalone rank 0 with a server to talk to; None otherwise (or if unreachable)."""
    if not env.standalone or env.server is None or env.rank != 0:
        return None
    try:
        with Client(env.server, timeout=10.0) as client:
            run = client.create_run(run_name(script),
                                    project=os.environ.get("TRAINYARD_PROJECT") or "default",
                                    experiment=os.environ.get("TRAINYARD_EXPERIMENT") or None,
                                    params=env.hparams, team=os.environ.get("TRAINYARD_TEAM") or None)
    except Exception as exc:  # noqa: BLE001 - tracking must never stop training
        log.warning("trainyard: no run created on %s (%s); keeping metrics in local files", env.server, exc)
        return None
    log.info("trainyard: tracking this script as run %s on %s", run["id"], env.server)
    return ClientRun(env.server, run)
