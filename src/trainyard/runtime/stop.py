"""Why a rank should stop: SIGTERM, the server's word, or a fenced attempt."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class StopSignal:
    """A flag set once, keeping the first reason given.

    Lock-free on purpose: the SIGTERM handler sets it between bytecodes of the
    main thread, which may itself be inside this object; a lock could deadlock.
    """

    def __init__(self) -> None:
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    def is_set(self) -> bool:
        return self.reason is not None


def install_sigterm_handler(stop: StopSignal) -> bool:
    """Turn SIGTERM into a stop request, chaining to a handler the script installed first.

    Only the main thread may install handlers; elsewhere this returns False.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> Any:
        stop.set("received SIGTERM")
        if callable(previous):
            return previous(signum, frame)
        return None

    signal.signal(signal.SIGTERM, on_sigterm)
    return True
