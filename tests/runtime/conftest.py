from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.runtime.recording_server import RecordingServer
from trainyard.spec import CheckpointPolicy


@pytest.fixture
def recorder() -> Iterator[RecordingServer]:
    srv = RecordingServer()
    srv.start()
    yield srv
    srv.stop()


def due_steps(policy: CheckpointPolicy, steps: range) -> list[int]:
    """The steps the policy (the contract) makes due, one save after another."""
    out: list[int] = []
    for step in steps:
        if policy.due(step, out[-1] if out else None, 0.0):
            out.append(step)
    return out
