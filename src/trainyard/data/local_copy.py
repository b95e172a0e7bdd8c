"""A snapshot's files as a read-only local directory, verified against its manifest.

The launcher calls `materialise` before it starts a gang: the first time, each
file is streamed out of the blob store and hashed on the way; a copy already
on disk is verified again, file by file, before any rank may read it. Any
difference from the manifest (a changed, missing or extra file, in the store
or in the copy) is a `TamperedSnapshot`: the job must not train on it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any

from trainyard.data.manifest import hash_file
from trainyard.data.snapshots import blob_key
from trainyard.storage import BlobStore

READ_ONLY_FILE = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
READ_ONLY_DIR = READ_ONLY_FILE | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


class TamperedSnapshot(Exception):
    """The snapshot's bytes differ from its manifest; the message says which file and how."""


def verify(directory: Path, files: list[dict[str, Any]]) -> str | None:
    """Why `directory` is not exactly the manifest's files, or None when every file checks out."""
    expected = {f["path"]: f for f in files}
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if not p.is_dir()}
    extra = sorted(present - set(expected))
    if extra:
        return f"{extra[0]} is not in the manifest"
    for path, f in expected.items():
        target = directory / path
        if path not in present or not target.is_file():
            return f"{path} is missing"
        nbytes, sha = hash_file(target)
        if nbytes != f["bytes"]:
            return f"{path} has {nbytes} bytes, the manifest says {f['bytes']}"
        if sha != f["sha256"]:
            return f"{path} has sha256 {sha[:12]}…, the manifest says {f['sha256'][:12]}…"
    return None


def _make_read_only(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            os.chmod(Path(dirpath) / name, READ_ONLY_FILE)
        for name in dirnames:
            os.chmod(Path(dirpath) / name, READ_ONLY_DIR)
    os.chmod(root, READ_ONLY_DIR)


def remove(root: Path) -> None:
    """Delete a (read-only) copy."""
    for dirpath, dirnames, _ in os.walk(root):
        os.chmod(dirpath, stat.S_IRWXU)
        for name in dirnames:
            os.chmod(Path(dirpath) / name, stat.S_IRWXU)
    shutil.rmtree(root, ignore_errors=True)


def _copy_out(blobs: BlobStore, f: dict[str, Any], dest: Path, ref: str) -> None:
    key = blob_key(f["sha256"])
    if not blobs.exists(key):
        raise TamperedSnapshot(f"dataset {ref}: the stored content of {f['path']} is missing "
                               f"from the blob store (sha256 {f['sha256'][:12]}…)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    h, n = hashlib.sha256(), 0
    with dest.open("wb") as out:
        for chunk in blobs.iter_chunks(key):
            h.update(chunk)
            n += len(chunk)
            out.write(chunk)
    if n != f["bytes"] or h.hexdigest() != f["sha256"]:
        raise TamperedSnapshot(
            f"dataset {ref}: the stored content of {f['path']} does not match its manifest "
            f"({n} bytes, sha256 {h.hexdigest()[:12]}…; the manifest says {f['bytes']} bytes, "
            f"sha256 {f['sha256'][:12]}…); the blob store was changed after the snapshot was made")


def materialise(blobs: BlobStore, root: Path, ref: str, snapshot_digest: str,
                files: list[dict[str, Any]]) -> Path:
    """The verified read-only copy of snapshot `ref` under `root`, made if absent."""
    dest = root / snapshot_digest.removeprefix("sha256:")
    if dest.exists():
        why = verify(dest, files)
        if why is None:
            return dest
        # Set aside, not deleted: evidence for whoever investigates; the next launch copies afresh.
        aside = dest.with_name(f"{dest.name}.tampered-{secrets.token_hex(3)}")
        dest.rename(aside)
        raise TamperedSnapshot(f"dataset {ref}: the local copy does not match its manifest: {why}; "
                               f"the copy was moved aside to {aside}")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{dest.name}.tmp-{secrets.token_hex(4)}"
    try:
        for f in files:
            _copy_out(blobs, f, tmp / f["path"], ref)
        _make_read_only(tmp)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            remove(tmp)
    return dest
