"""Artifacts and the blob store: streamed uploads, checksums, refused paths, local and s3://."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from trainyard.backends.local import free_port
from trainyard.client import Client, TrainyardError
from trainyard.storage import BlobStore
from trainyard.storage.blobs import BlobWriter


def test_artifact_streams_up_and_down_with_its_checksum(client: Client, tmp_path: Path):
    run = client.create_run("artifacts")["id"]
    source = tmp_path / "weights.bin"
    data = os.urandom(3 * 1024 * 1024 + 17)  # several chunks each way
    source.write_bytes(data)
    meta = client.upload_artifact(run, "model/weights.bin", source)
    assert meta["bytes"] == len(data) and meta["sha256"] == hashlib.sha256(data).hexdigest()
    client.upload_artifact(run, "notes.txt", b"lr looked high")
    assert [a["path"] for a in client.artifacts(run)] == ["model/weights.bin", "notes.txt"]
    assert [a["path"] for a in client.artifacts(run, prefix="model/")] == ["model/weights.bin"]
    out = tmp_path / "back.bin"
    assert client.download_artifact(run, "model/weights.bin", out) == len(data)
    assert out.read_bytes() == data


@pytest.mark.parametrize("path", ["%2e%2e/escape.txt", "a/%2E%2E/%2e%2e/b", "a//b", "a/%2e/b", "a\\..\\b"])
def test_artifact_paths_that_could_leave_the_run_are_refused(client: Client, tracking_server, path):
    run = client.create_run("paths")["id"]
    resp = tracking_server.http.put(f"/v1/runs/{run}/artifacts/{path}", content=b"x")
    assert resp.status_code == 422, resp.text
    assert resp.json()["errors"][0]["field"] == "path"
    assert client.artifacts(run) == []


def test_an_artifact_for_a_missing_run_or_path_is_404(client: Client):
    with pytest.raises(TrainyardError) as err:
        client.upload_artifact("no-such-run", "a.txt", b"x")
    assert err.value.status == 404
    run = client.create_run("empty")["id"]
    with pytest.raises(TrainyardError) as err:
        client.download_artifact(run, "missing.txt", os.devnull)
    assert err.value.status == 404


def test_blob_keys_cannot_escape_the_root(tmp_path: Path):
    store = BlobStore(str(tmp_path / "root"))
    for key in ["../x", "/etc/passwd", "a/../../b", "a//b", "", "a/./b", "a\\b"]:
        with pytest.raises(ValueError):
            store.put(key, b"x")
    assert not (tmp_path / "x").exists()


def test_an_interrupted_stream_leaves_no_blob(tmp_path: Path):
    store = BlobStore(str(tmp_path / "root"))

    def chunks() -> Iterator[bytes]:
        yield b"half"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        store.put_stream("runs/r/artifacts/a.bin", chunks())
    assert not store.exists("runs/r/artifacts/a.bin")
    assert list((tmp_path / "root" / "runs" / "r" / "artifacts").iterdir()) == []


def test_a_streamed_request_body_is_stored_whole_or_not_at_all(tmp_path: Path):
    store = BlobStore(str(tmp_path / "root"))

    async def body(fail: bool = False) -> AsyncIterator[bytes]:
        yield b"half"
        if fail:
            raise ConnectionError("client went away")
        yield b" and the rest"

    def refuse(writer: BlobWriter) -> None:
        raise ValueError(f"not the bytes asked for: {writer.sha256}")

    blob = anyio.run(store.put_async_stream, "runs/r/artifacts/a.bin", body())
    assert (blob.bytes, blob.sha256) == (17, hashlib.sha256(b"half and the rest").hexdigest())
    assert blob.uri == store.uri("runs/r/artifacts/a.bin")
    assert store.get("runs/r/artifacts/a.bin") == b"half and the rest"
    with pytest.raises(ConnectionError):
        anyio.run(store.put_async_stream, "runs/r/artifacts/b.bin", body(fail=True))
    with pytest.raises(ValueError, match="not the bytes asked for"):
        anyio.run(store.put_async_stream, "runs/r/artifacts/c.bin", body(), refuse)
    assert [p.name for p in (tmp_path / "root" / "runs" / "r" / "artifacts").iterdir()] == ["a.bin"]


# -- s3:// against a real S3-compatible server (moto in server mode) --------------


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("s3fs")
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if server is None:
        pytest.skip("moto[server] is not installed (pip install 'moto[server]')")
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("moto_server did not start")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_s3_blob_store_streams_and_validates_like_the_local_one(s3_endpoint: str, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import s3fs

    s3fs.S3FileSystem(endpoint_url=s3_endpoint).mkdir("trainyard-test")
    store = BlobStore("s3://trainyard-test/blobs", endpoint_url=s3_endpoint, skip_instance_cache=True)
    data = os.urandom(6 * 1024 * 1024 + 5)  # past s3fs's 5 MiB block: a multipart upload
    size, digest = store.put_stream("runs/r1/artifacts/model.bin",
                                    (data[i:i + 1_000_000] for i in range(0, len(data), 1_000_000)))
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert store.uri("runs/r1/artifacts/model.bin") == "s3://trainyard-test/blobs/runs/r1/artifacts/model.bin"
    assert b"".join(store.iter_chunks("runs/r1/artifacts/model.bin")) == data
    assert store.size("runs/r1/artifacts/model.bin") == len(data)
    assert store.put_content_addressed("code", b"print(1)", ".py").startswith("sha256:")
    with pytest.raises(ValueError):
        store.put("../outside", b"x")
    assert sorted(p.rsplit("/", 1)[-1] for p in store.fs.find("trainyard-test/blobs/runs")) == ["model.bin"]
