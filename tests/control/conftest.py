"""A store and a checkpoint root in a test's own directory, for the control tests that drive
services directly rather than through a server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trainyard.storage import LocalCheckpointRoot
from trainyard.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'trainyard.db'}")
    yield s
    s.close()


@pytest.fixture
def root(tmp_path: Path) -> LocalCheckpointRoot:
    return LocalCheckpointRoot(tmp_path / "checkpoints")
