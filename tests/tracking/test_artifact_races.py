"""Uploads of one artifact path at the same moment: the last one recorded wins whole, and every
download's bytes match its checksum header and the artifact's row."""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from trainyard.client import Client

MIB = 1024 * 1024
ROUNDS = 4


def download(url: str, auth: dict[str, str]) -> tuple[bytes, dict]:
    resp = httpx.get(url, headers=auth, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.content, dict(resp.headers)


def test_concurrent_puts_of_one_path_never_serve_bytes_that_differ_from_their_checksum(
        client: Client, tracking_server):
    run = client.create_run("artifact-race")["id"]
    url = f"{tracking_server.url}/v1/runs/{run}/artifacts/model/weights.bin"
    served: list[tuple[bytes, dict]] = []
    failures: list[BaseException] = []
    uploading = threading.Event()

    def keep_downloading() -> None:
        while uploading.is_set():
            try:
                served.append(download(url, tracking_server.auth))
            except (AssertionError, httpx.HTTPError) as exc:  # a torn body breaks the transfer itself
                failures.append(exc)

    client.upload_artifact(run, "model/weights.bin", b"first")
    for _ in range(ROUNDS):
        bodies = [os.urandom(3 * MIB), os.urandom(1 * MIB), os.urandom(2 * MIB + 7)]
        start = threading.Barrier(len(bodies))

        def put(body: bytes, start: threading.Barrier = start) -> httpx.Response:
            with httpx.Client(timeout=60, headers=tracking_server.auth) as http:
                start.wait()
                return http.put(url, content=body)

        uploading.set()
        reader = threading.Thread(target=keep_downloading)
        reader.start()
        try:
            with ThreadPoolExecutor(len(bodies)) as pool:
                results = list(pool.map(put, bodies))
        finally:
            uploading.clear()
            reader.join(60)
        assert [r.status_code for r in results] == [201] * len(bodies), [r.text for r in results]
        for body, resp in zip(bodies, results, strict=True):
            assert resp.json()["sha256"] == hashlib.sha256(body).hexdigest()

        data, headers = download(url, tracking_server.auth)
        row = next(a for a in client.artifacts(run) if a["path"] == "model/weights.bin")
        assert hashlib.sha256(data).hexdigest() == headers["x-checksum-sha256"] == row["sha256"]
        assert len(data) == int(headers["content-length"]) == row["bytes"]
        assert data in bodies  # one upload whole, not a mix
        served.append((data, headers))

    assert not failures, failures
    for data, headers in served:
        assert hashlib.sha256(data).hexdigest() == headers["x-checksum-sha256"]
        assert len(data) == int(headers["content-length"])
    blobs = [p for p in (tracking_server.home / "blobs" / "runs" / run).rglob("*") if p.is_file()]
    assert len(blobs) == 1, blobs  # every replaced upload's blob was deleted, the current one kept
