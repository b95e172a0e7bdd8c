"""Retrying calls to a server that may be restarting under a running job."""

from __future__ import annotations

import random

from trainyard.client import ServerUnavailable, StaleAttempt, TrainyardError


class Backoff:
    """Exponential delays with jitter, capped; `reset()` after a success."""

    def __init__(self, initial: float = 0.2, cap: float = 5.0) -> None:
        self.initial = initial
        self.cap = cap
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.cap, self._next * 2)
        return delay * random.uniform(0.75, 1.25)

    def reset(self) -> None:
        self._next = self.initial


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: no server answered, or it answered that it is busy or broken for now."""
    if isinstance(exc, StaleAttempt):
        return False
    if isinstance(exc, ServerUnavailable):
        return True
    return isinstance(exc, TrainyardError) and (exc.status >= 500 or exc.status == 429)
