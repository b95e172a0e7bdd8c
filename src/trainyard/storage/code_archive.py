"""Code archives: a code directory snapshotted into a reproducible tar.gz, and where the blob store keeps one.

An archive is stored under its sha256 (`archive_key`), so the same code is stored once
however many jobs, sweeps and evaluations name it.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from trainyard.spec import SpecError
from trainyard.storage.blobs import BlobStore, content_key

SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
             "node_modules", "trainyard-runs"}
MAX_ARCHIVE_BYTES = 200 * 1024 * 1024
_PREFIX, _SUFFIX = "code", ".tar.gz"


@dataclass(frozen=True)
class CodeSnapshot:
    archive: bytes
    git_commit: str | None
    git_dirty: bool | None


def archive_key(digest: str) -> str:
    """The blob key of the archive with this digest ("sha256:HEX", as a job records it, or HEX)."""
    return content_key(_PREFIX, digest, _SUFFIX)


def store_archive(blobs: BlobStore, archive: bytes) -> str:
    """Store an archive under its content (once); returns its digest, "sha256:HEX"."""
    return blobs.put_content_addressed(_PREFIX, archive, _SUFFIX)


def require_archive(blobs: BlobStore, digest: str | None, field: str = "code_snapshot.digest") -> None:
    """Refuse (a 422 on `field`) a request naming an archive that was never uploaded; None names none."""
    if digest and not blobs.exists(archive_key(digest)):
        raise SpecError([{"field": field, "message": f"no code archive {digest}; "
                                                     "upload it first with POST /v1/code-archives"}])


def _git_state(root: Path) -> tuple[str | None, bool | None]:
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "."],
                                capture_output=True, text=True, timeout=10)
        return commit.stdout.strip(), bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def pack_directory(path: str | Path) -> CodeSnapshot:
    """Archive `path` deterministically (sorted names, zeroed times) so equal code has equal digests."""
    root = Path(path).resolve()
    if not root.is_dir():
        raise ValueError(f"code: {path} is not a directory")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in sorted(filenames):
                full = Path(dirpath) / name
                if not full.is_file() or name.endswith(".pyc"):
                    continue
                info = tar.gettarinfo(str(full), arcname=str(full.relative_to(root)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(full, "rb") as f:
                    tar.addfile(info, f)
                if buf.tell() > MAX_ARCHIVE_BYTES:
                    raise ValueError(f"code: {path} is over {MAX_ARCHIVE_BYTES >> 20} MiB; "
                                     "keep data out of the code directory (use a dataset)")
    commit, dirty = _git_state(root)
    return CodeSnapshot(buf.getvalue(), commit, dirty)


def unpack_archive(archive: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
