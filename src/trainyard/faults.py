"""Crash points for crash tests: the server dies (SIGKILL) where a test asked it to.

A test starts `yard server` with `TRAINYARD_FAULTS=launch.after_intent` (a comma-separated
list of point names); the first time the process reaches `crash_point("launch.after_intent")`
it kills itself, exactly as a power cut would. With the variable unset — every real server —
a crash point is one frozenset lookup. Points are named `<operation>.<step>`; each is
documented where it is placed.
"""

from __future__ import annotations

import os
import signal

ARMED: frozenset[str] = frozenset(p for p in os.environ.get("TRAINYARD_FAULTS", "").split(",") if p)


def crash_point(name: str) -> None:
    """Die here, without cleanup, if the test armed `name`."""
    if name in ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
