"""A write that cannot get SQLite's lock within the busy timeout is answered 503 "retry shortly",
with nothing written; reads go on meanwhile, and the same write succeeds once the lock is free."""

from __future__ import annotations

import hashlib
import sqlite3
import time

BUSY_TIMEOUT_S = 0.5


def test_a_write_blocked_past_the_busy_timeout_is_a_503_that_writes_nothing(make_server, monkeypatch):
    monkeypatch.setenv("TRAINYARD_DATABASE_BUSY_TIMEOUT_S", str(BUSY_TIMEOUT_S))
    server = make_server()
    content = b"busy bytes"
    sha = hashlib.sha256(content).hexdigest()
    put = server.http.put(f"/v1/dataset-blobs/{sha}", content=content,
                    headers={"content-type": "application/octet-stream"})
    assert put.status_code == 200, put.text
    body = {"name": "busyset", "files": [{"path": "a.bin", "bytes": len(content), "sha256": sha}]}

    holder = sqlite3.connect(server.home / "trainyard.db", timeout=10, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # SQLite's one write lock, held by another process's connection
    try:
        t0 = time.monotonic()
        blocked = server.http.post("/v1/datasets", json=body, timeout=60)
        elapsed = time.monotonic() - t0
        assert blocked.status_code == 503, blocked.text
        assert blocked.headers["retry-after"] == "1"
        assert "retry shortly" in blocked.json()["detail"]
        assert BUSY_TIMEOUT_S <= elapsed < 10, elapsed  # it waited out the timeout the server was given
        listed = server.http.get("/v1/datasets")  # readers are not held up by a writer
        assert listed.status_code == 200 and listed.json()["items"] == []
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    again = server.http.post("/v1/datasets", json=body, timeout=60)
    assert again.status_code == 201, again.text
    assert again.json()["ref"] == "busyset@v1" and again.json()["created"] is True
    assert [v["ref"] for v in server.client().dataset("busyset")["items"]] == ["busyset@v1"]
