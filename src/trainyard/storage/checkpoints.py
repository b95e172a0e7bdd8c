"""Where checkpoints live: one root per job, one directory per (attempt, step), named by the server.

A commit names a step; the server derives the location (DESIGN.md, "The server names every
location"). Nothing outside a job's own root is ever checked, read or deleted for it, not even
for rows stored before locations were derived. `CheckpointRoot` is the contract; the local
root (a directory the server and its ranks share) fills it. An object-store root would answer
the same four questions with key prefixes.
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path

from trainyard.spec import CHECKPOINT_MANIFEST, checkpoint_dir_name


class CheckpointRoot(ABC):
    @abstractmethod
    def job_root(self, job_id: str) -> str:
        """The root every checkpoint of `job_id` lives under (ranks get it as TRAINYARD_CHECKPOINT_DIR)."""

    def make_job_root(self, job_id: str) -> str:
        """The job's root, made ready for its ranks to write under (a root of key prefixes needs nothing)."""
        return self.job_root(job_id)

    def location(self, job_id: str, attempt: int, step: int) -> str:
        """Where the checkpoint of (job, attempt, step) lives: the only place a commit can name."""
        return f"{self.job_root(job_id)}/{checkpoint_dir_name(attempt, step)}"

    @abstractmethod
    def owns(self, job_id: str, uri: str) -> bool:
        """Whether `uri` lies strictly inside the job's root (a stored uri is checked before any use)."""

    @abstractmethod
    def has_manifest(self, uri: str) -> bool:
        """Whether the checkpoint at `uri` has its manifest, the last file a rank writes."""

    @abstractmethod
    def remove_manifest(self, uri: str) -> None:
        """Delete the manifest first: a directory without one is never taken for a checkpoint."""

    @abstractmethod
    def remove(self, uri: str) -> None:
        """Delete everything at `uri`; idempotent, so an interrupted delete is simply run again."""


class LocalCheckpointRoot(CheckpointRoot):
    """Checkpoints in a directory on a disk the server and the ranks share."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)

    def job_root(self, job_id: str) -> str:
        return str(self.base / job_id)

    def make_job_root(self, job_id: str) -> str:
        root = self.base / job_id
        root.mkdir(parents=True, exist_ok=True)
        return str(root)

    def location(self, job_id: str, attempt: int, step: int) -> str:
        return str(self.base / job_id / checkpoint_dir_name(attempt, step))

    def owns(self, job_id: str, uri: str) -> bool:
        path = _plain_path(uri)
        if path is None or "/" in job_id or job_id in ("", ".", ".."):
            return False
        root = os.path.realpath(self.base / job_id)
        if root != os.path.join(os.path.realpath(self.base), job_id):  # the job's root is itself a link
            return False
        # The parent is resolved (no link leads out of the root); the last part is not, and
        # `remove` deletes a link itself rather than what it points to.
        parent = os.path.realpath(os.path.dirname(path))
        return parent == root or parent.startswith(root + os.sep)

    def has_manifest(self, uri: str) -> bool:
        path = _plain_path(uri)
        return (path is not None and not os.path.islink(path)
                and os.path.isfile(os.path.join(path, CHECKPOINT_MANIFEST)))

    def remove_manifest(self, uri: str) -> None:
        path = _plain_path(uri)
        if path is not None and os.path.isdir(path) and not os.path.islink(path):
            _unlink(os.path.join(path, CHECKPOINT_MANIFEST))

    def remove(self, uri: str) -> None:
        path = _plain_path(uri)
        if path is None:
            return
        if os.path.islink(path) or os.path.isfile(path):
            _unlink(path)
        elif os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)  # never follows links; a racing sweeper is fine
        if os.path.lexists(path):  # what ignore_errors let pass, said once
            raise OSError(f"could not remove everything under {path}")


def _plain_path(uri: str) -> str | None:
    """The local path a uri names, normalised (no '..' left), or None if it names none."""
    raw = uri.removeprefix("file://")
    if "://" in raw or "\x00" in raw or not os.path.isabs(raw):
        return None
    path = os.path.normpath(raw)
    return None if path == os.sep else path


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
