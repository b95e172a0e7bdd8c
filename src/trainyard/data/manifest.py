"""A dataset manifest: every file under a directory with its size and sha256, sorted by path.

Pure (no store, no server): the CLI builds a manifest before uploading, the
server checks one it is sent, and the launcher verifies a local copy against one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

CHUNK = 1 << 20
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
MAX_FILES = 1_000_000


class ManifestError(ValueError):
    """A manifest that cannot be accepted; `field` names the entry at fault."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def files_under(root: Path) -> list[Path]:
    """Regular files under `root`, sorted by their relative POSIX path. Symlinks are refused:
    a snapshot must hold the bytes, not a pointer that can change under it."""
    if not root.is_dir():
        raise ManifestError("path", f"{root} is not a directory")
    found = []
    for path in root.rglob("*"):
        if path.is_symlink():
            raise ManifestError("path", f"{path} is a symlink; copy the file into the directory instead")
        if path.is_file():
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def hash_file(path: Path, progress: Callable[[int], None] | None = None) -> tuple[int, str]:
    """(bytes, sha256 hex) of a file, read once in chunks."""
    h, n = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
            if progress is not None:
                progress(len(chunk))
    return n, h.hexdigest()


def build(root: Path, progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """The manifest of `root`: [{path, bytes, sha256}] sorted by path."""
    entries = []
    for path in files_under(root):
        nbytes, sha = hash_file(path, progress)
        entries.append({"path": path.relative_to(root).as_posix(), "bytes": nbytes, "sha256": sha})
    return entries


def digest(files: list[dict[str, Any]]) -> str:
    """The snapshot's identity: sha256 of the manifest's canonical JSON."""
    canonical = json.dumps([[f["path"], f["bytes"], f["sha256"]] for f in files], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


MAX_PATH = 1024  # characters in a file's path; each part at most 255 bytes, as file systems allow
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    return (bool(path) and len(path) <= MAX_PATH and not path.startswith("/") and "\\" not in path
            and not _CONTROL.search(path) and all(p not in ("", ".", "..") for p in parts)
            and all(len(p.encode("utf-8", "surrogatepass")) <= 255 for p in parts)
            and path == PurePosixPath(path).as_posix())


def check(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A manifest sent by a client, checked and sorted; ManifestError names the bad entry."""
    if not files:
        raise ManifestError("files", "a snapshot needs at least one file")
    if len(files) > MAX_FILES:
        raise ManifestError("files", f"at most {MAX_FILES:,} files per snapshot")
    seen: set[str] = set()
    out = []
    for i, entry in enumerate(files):
        path, nbytes, sha = entry.get("path"), entry.get("bytes"), entry.get("sha256")
        if not isinstance(path, str) or not safe_path(path):
            raise ManifestError(f"files.{i}.path", f"{path!r} is not a relative path inside the "
                                                   "dataset (no leading '/', no '.' or '..' parts)")
        if path in seen:
            raise ManifestError(f"files.{i}.path", f"{path!r} is listed twice")
        if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
            raise ManifestError(f"files.{i}.bytes", "must be a whole number of bytes, 0 or more")
        if not isinstance(sha, str) or not SHA256_HEX.match(sha):
            raise ManifestError(f"files.{i}.sha256", "must be 64 lowercase hex digits")
        seen.add(path)
        out.append({"path": path, "bytes": nbytes, "sha256": sha})
    _refuse_file_as_directory(out, seen)
    return sorted(out, key=lambda f: f["path"])


def _refuse_file_as_directory(files: list[dict[str, Any]], paths: set[str]) -> None:
    """`a` and `a/b` cannot both be files: no copy of the snapshot could ever be unpacked."""
    for i, entry in enumerate(files):
        parts = entry["path"].split("/")
        for n in range(1, len(parts)):
            parent = "/".join(parts[:n])
            if parent in paths:
                raise ManifestError(f"files.{i}.path", f"{entry['path']!r} needs {parent!r} to be a "
                                                       f"directory, but {parent!r} is also listed as a "
                                                       "file; rename one of them")
