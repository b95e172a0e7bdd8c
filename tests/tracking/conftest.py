"""One real `yard server` shared by a module's tracking tests (each test makes its own runs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, free_port
from trainyard.client import Client


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home: Path = tmp_path_factory.mktemp("tracking") / "home"
    home.mkdir()
    srv = Server(home=home, port=free_port(), extra_args=[])
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(tracking_server: Server) -> Iterator[Client]:
    with tracking_server.client() as c:
        yield c
