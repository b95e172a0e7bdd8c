"""A blob store over fsspec: a local directory by default, s3:// (or any fsspec URL) by URL.

Keys are relative paths checked before use (`validate_key`): never absolute, never `..`,
so no key can escape the store's root. Writes go to a temporary name and are moved into
place when complete, so a reader never sees half a blob; streams are hashed as they pass.
"""

from __future__ import annotations

import hashlib
import posixpath
import secrets
from collections.abc import AsyncIterable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
from anyio import to_thread

CHUNK = 1 << 20


def validate_key(key: str) -> str:
    """Refuse keys that could escape the store's root."""
    parts = key.split("/")
    if (not key or key.startswith("/") or "\\" in key or "\x00" in key
            or any(p in ("", ".", "..") for p in parts)):
        raise ValueError(f"invalid blob key {key!r}: use a relative path without '..', '.' or empty parts")
    return key


def content_key(prefix: str, digest: str, suffix: str = "") -> str:
    """Where content with this digest ("sha256:HEX" or HEX) is kept under `prefix`."""
    return f"{prefix}/{digest.removeprefix('sha256:')}{suffix}"


@dataclass(frozen=True)
class StoredBlob:
    """A blob in place: where it is, its size and its sha256 (hex)."""

    uri: str
    bytes: int
    sha256: str


class BlobWriter:
    """One blob being written: `write()` chunks, then `commit()` moves it into place (or `abort()`)."""

    def __init__(self, store: BlobStore, key: str):
        self.store = store
        self.key = key
        self.final = store.path(key)
        self.tmp = f"{self.final}.tmp-{secrets.token_hex(4)}"
        self.bytes = 0
        self._hash = hashlib.sha256()
        store.fs.makedirs(posixpath.dirname(self.final), exist_ok=True)
        self._file = store.fs.open(self.tmp, "wb")

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self.bytes += len(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def commit(self) -> str:
        """Close and move into place; returns the blob's URI."""
        self._file.close()
        self.store.fs.mv(self.tmp, self.final)
        return self.store.uri(self.key)

    def abort(self) -> None:
        try:
            self._file.close()
        finally:
            if self.store.fs.exists(self.tmp):
                self.store.fs.rm(self.tmp)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


class BlobStore:
    def __init__(self, root: str, **storage_options: Any):
        """`root` is a directory or an fsspec URL (s3://bucket/prefix); options go to the filesystem
        (for S3: endpoint_url, key, secret, ...; credentials otherwise come from the environment)."""
        self.fs, self.root = fsspec.core.url_to_fs(str(root), **storage_options)
        self.fs.makedirs(self.root, exist_ok=True)

    def path(self, key: str) -> str:
        return posixpath.join(self.root, validate_key(key))

    def uri(self, key: str) -> str:
        """Where the blob lives, as a URL another process can open with fsspec."""
        return str(self.fs.unstrip_protocol(self.path(key)))

    def key_of(self, uri: str) -> str:
        """The key of a blob of this store by its URI (what `uri` returned); ValueError for a URI
        outside the store's root, which nothing here may read or delete."""
        root = str(self.fs.unstrip_protocol(self.root)).rstrip("/") + "/"
        if not uri.startswith(root):
            raise ValueError(f"{uri!r} is not a blob of the store at {root}")
        return validate_key(uri[len(root):])

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def size(self, key: str) -> int:
        return int(self.fs.size(self.path(key)))

    def put(self, key: str, data: bytes) -> None:
        """Write atomically: a reader never sees half a blob."""
        with self.writer(key) as w:
            w.write(data)

    def writer(self, key: str) -> BlobWriter:
        return BlobWriter(self, key)

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> tuple[int, str]:
        """Write a stream without holding it in memory; returns (bytes, sha256 hex)."""
        with self.writer(key) as w:
            for chunk in chunks:
                w.write(chunk)
        return w.bytes, w.sha256

    async def put_async_stream(self, key: str, chunks: AsyncIterable[bytes],
                               check: Callable[[BlobWriter], None] | None = None) -> StoredBlob:
        """Write an async stream (a request's body) without holding it in memory or blocking the
        event loop: the file work runs on worker threads. `check` sees the whole blob before it is
        moved into place and may refuse it by raising; on any error nothing is stored."""
        writer = await to_thread.run_sync(self.writer, key)
        try:
            async for chunk in chunks:
                if chunk:
                    await to_thread.run_sync(writer.write, chunk)
            if check is not None:
                check(writer)
            uri = await to_thread.run_sync(writer.commit)
        except BaseException:
            await to_thread.run_sync(writer.abort)
            raise
        return StoredBlob(uri, writer.bytes, writer.sha256)

    def put_content_addressed(self, prefix: str, data: bytes, suffix: str = "") -> str:
        """Store `data` once under its sha256; returns the digest, "sha256:HEX"."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        key = content_key(prefix, digest, suffix)
        if not self.exists(key):
            self.put(key, data)
        return digest

    def get(self, key: str) -> bytes:
        with self.fs.open(self.path(key), "rb") as f:
            return f.read()

    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        with self.fs.open(self.path(key), "rb") as f:
            while chunk := f.read(chunk_size):
                yield chunk

    def open_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The blob's chunks from a file opened now, so a missing blob raises FileNotFoundError here
        rather than mid-stream (and a local blob deleted while it is read is still read whole)."""
        f = self.fs.open(self.path(key), "rb")

        def chunks() -> Iterator[bytes]:
            with f:
                while chunk := f.read(chunk_size):
                    yield chunk

        return chunks()

    def listing(self, prefix: str) -> Iterator[tuple[str, float]]:
        """Every blob under `prefix` (a key's leading parts), as (key, when it was last written,
        in seconds since the epoch); half-written ones too, under their temporary names."""
        top = self.path(prefix)
        if not self.fs.isdir(top):
            return
        for path, info in self.fs.find(top, detail=True).items():
            key = posixpath.relpath(path, self.root)
            mtime = info.get("mtime")  # local disks say mtime; object stores LastModified
            stamp = mtime if isinstance(mtime, int | float) else (info.get("LastModified") or self.fs.modified(path))
            yield key, float(stamp) if isinstance(stamp, int | float) else stamp.timestamp()

    def delete(self, key: str) -> None:
        path = self.path(key)
        if self.fs.exists(path):
            self.fs.rm(path)
