from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.runtime.recording_server import RecordingServer


@pytest.fixture
def recorder() -> Iterator[RecordingServer]:
    srv = RecordingServer()
    srv.start()
    yield srv
    srv.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
