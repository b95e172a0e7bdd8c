"""A checkpoint on disk: its files, made durable, and MANIFEST.json written last.

A directory without a manifest was never committed and is ignored. Restore
verifies each file the manifest names (present, same size, same sha256).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from trainyard.spec import CHECKPOINT_MANIFEST

MANIFEST = CHECKPOINT_MANIFEST
STATE_FILE = "state.pt"
FORMAT = 1


class _HashingWriter:
    """A write-only file that hashes what passes through, so a file is read once, not twice."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        self.sha256 = hashlib.sha256()
        self.nbytes = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.sha256.update(view)
        self.nbytes += view.nbytes
        return int(self._fh.write(view))

    def flush(self) -> None:
        self._fh.flush()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_state_file(path: Path, state: Any) -> dict[str, Any]:
    """torch.save `state` to `path`, fsync it; returns its manifest entry {path, bytes, sha256}."""
    with path.open("wb") as fh:
        writer = _HashingWriter(fh)
        torch.save(state, writer)  # type: ignore[arg-type]
        fh.flush()
        os.fsync(fh.fileno())
    return {"path": path.name, "bytes": writer.nbytes, "sha256": writer.sha256.hexdigest()}


def write_checkpoint(
    directory: Path, state: Any, step: int, attempt: int, metrics: dict[str, float]
) -> tuple[dict[str, Any], int]:
    """Write the files, make them durable, then the manifest. Returns (manifest, total bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = [write_state_file(directory / STATE_FILE, state)]
    fsync_dir(directory)
    manifest = {
        "format": FORMAT,
        "step": step,
        "attempt": attempt,
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "files": files,
        "metrics": metrics,
    }
    body = json.dumps(manifest, indent=1).encode()
    tmp = directory / (MANIFEST + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / MANIFEST)  # atomic: a manifest is whole or absent
    fsync_dir(directory)
    fsync_dir(directory.parent)
    return manifest, sum(f["bytes"] for f in files) + len(body)


def read_manifest(directory: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify(directory: Path, manifest: dict[str, Any] | None = None) -> str | None:
    """Why the checkpoint in `directory` cannot be trusted, or None if every file checks out."""
    manifest = manifest or read_manifest(directory)
    if manifest is None:
        return f"{MANIFEST} missing or unreadable"
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        return f"{MANIFEST} lists no files"
    for entry in files:
        name = str(entry.get("path", ""))
        path = directory / name
        if not name or Path(name).is_absolute() or ".." in Path(name).parts:
            return f"{MANIFEST} names an unsafe path {name!r}"
        try:
            size = path.stat().st_size
        except OSError:
            return f"{name}: missing"
        if size != entry.get("bytes"):
            return f"{name}: size {size} != {entry.get('bytes')}"
        if _sha256_file(path) != entry.get("sha256"):
            return f"{name}: sha256 mismatch"
    return None
