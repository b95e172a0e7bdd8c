"""Heartbeats: each rank tells the server it is alive, and hears whether to stop."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from trainyard.client import StaleAttempt
from trainyard.runtime.retry import Backoff, is_transient
from trainyard.runtime.stop import StopSignal

log = logging.getLogger("trainyard.runtime")


class Heartbeat:
    """Beats every `interval_s` from a daemon thread; `step()` says the last step reached."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        rank: int,
        interval_s: float,
        stop: StopSignal,
        step: Callable[[], int | None],
    ) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self.rank = rank
        self.interval_s = interval_s
        self._stop = stop
        self._step = step
        self.host = socket.gethostname()
        self._closing = threading.Event()
        self._fenced = False
        self._thread: threading.Thread | None = None

    def first_beat(self, within_s: float = 10.0) -> bool:
        """Beat once before init returns, retrying briefly so the server learns our pid now."""
        backoff = Backoff(initial=0.1, cap=1.0)
        deadline = time.monotonic() + within_s
        while True:
            ok, transient = self._beat()
            if ok or not transient or time.monotonic() >= deadline:
                if not ok:
                    log.warning("trainyard: first heartbeat not delivered; training goes on")
                return ok
            time.sleep(min(backoff.next_delay(), max(0.0, deadline - time.monotonic())))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trainyard-heartbeat", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while not self._fenced and not self._closing.wait(self.interval_s):
            self._beat()

    def _beat(self) -> tuple[bool, bool]:
        """One heartbeat; returns (delivered, failure was transient)."""
        try:
            if self._client is None:
                self._client = self._client_factory()
            reply = self._client.heartbeat(self.rank, self.host, os.getpid(), self._step())
        except StaleAttempt as exc:
            self._fenced = True
            self._stop.set(f"this attempt is no longer current ({exc})")
            return False, False
        except Exception as exc:  # a missed beat is retried on the next one
            transient = is_transient(exc)
            log.log(
                logging.INFO if transient else logging.WARNING,
                "trainyard: heartbeat failed (%s)",
                exc,
            )
            return False, transient
        if isinstance(reply, dict) and reply.get("stop"):
            self._stop.set(str(reply.get("reason") or "the server asked this job to stop"))
        return True, False
