"""On SQLite, checkpoint commits are fsynced before they return; other writes skip that fsync."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from trainyard.store import Store

NORMAL, FULL = 1, 2


def synchronous(store: Store, durable: bool) -> int:
    with store.session(durable=durable) as s:
        return int(s.execute(text("PRAGMA synchronous")).scalar_one())


def test_durable_sessions_sync_fully_and_hand_their_connection_back_as_it_was(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path / 'trainyard.db'}")
    try:
        assert synchronous(store, durable=False) == NORMAL
        assert synchronous(store, durable=True) == FULL
        assert synchronous(store, durable=False) == NORMAL  # the pool reset the connection it reused
    finally:
        store.close()
