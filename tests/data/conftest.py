"""One real `yard server` shared by a module's dataset tests (each test makes its own datasets)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Server, shared_server


@pytest.fixture(scope="module")
def data_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with shared_server(tmp_path_factory, "datasets") as (srv, _):
        yield srv
