"""One real `yard server` shared by a module's dataset tests (each test makes its own datasets)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server, free_port, processes_under


@pytest.fixture(scope="module")
def data_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root: Path = tmp_path_factory.mktemp("datasets")
    home = root / "home"
    home.mkdir()
    srv = Server(home=home, port=free_port(), extra_args=["--cpus", "4"])
    srv.start()
    yield srv
    srv.stop()
    for p in processes_under(root):
        p.kill()
