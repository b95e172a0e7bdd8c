"""A content-addressed blob store over fsspec: a local directory by default, s3:// by URL."""

from __future__ import annotations

import hashlib
import posixpath

import fsspec


def validate_key(key: str) -> str:
    """Refuse keys that could escape the store's root."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid blob key {key!r}: use a relative path without '..'")
    return key


class BlobStore:
    def __init__(self, root: str):
        self.fs, self.root = fsspec.core.url_to_fs(str(root))
        self.fs.makedirs(self.root, exist_ok=True)

    def path(self, key: str) -> str:
        return posixpath.join(self.root, validate_key(key))

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self.path(key)))

    def put(self, key: str, data: bytes) -> None:
        """Write atomically: a reader never sees half a blob."""
        final = self.path(key)
        self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
        tmp = f"{final}.tmp-{hashlib.sha1(data).hexdigest()[:8]}"
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
        self.fs.mv(tmp, final)

    def put_content_addressed(self, prefix: str, data: bytes, suffix: str = "") -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        key = f"{prefix}/{digest.removeprefix('sha256:')}{suffix}"
        if not self.exists(key):
            self.put(key, data)
        return digest

    def get(self, key: str) -> bytes:
        with self.fs.open(self.path(key), "rb") as f:
            return f.read()
