"""Where checkpoints live: one root per job, one directory per (attempt, step), named by the server.

A commit names a step; the server derives the location (DESIGN.md, "The server names every
location"). Nothing outside a job's own root is ever checked, read or deleted for it, not even
for rows stored before locations were derived. `CheckpointRoot` is the contract; the local
root (a directory the server and its ranks share) fills it. An object-store root would answer
the same questions with key prefixes.
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from trainyard.spec import CHECKPOINT_MANIFEST, checkpoint_dir_name, parse_checkpoint_dir_name


@dataclass(frozen=True)
class CheckpointDir:
    """A checkpoint location found under a job's root, committed or not."""

    uri: str
    attempt: int
    step: int
    modified: float  # when anything in it was last written (seconds since the epoch)


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
    def within(self, uri: str, location: str) -> bool:
        """Whether `uri` (as a row stored it) names `location` or something inside it."""

    @abstractmethod
    def job_ids(self) -> list[str]:
        """The jobs that have a root here."""

    @abstractmethod
    def checkpoint_dirs(self, job_id: str) -> list[CheckpointDir]:
        """The locations under the job's root that `location` could have named, whatever their state."""

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

    def within(self, uri: str, location: str) -> bool:
        path, place = _plain_path(uri), _plain_path(location)
        if path is None or place is None:
            return False
        # As spelled, or through links (a row may name the directory by another path to it).
        return any(p == d or p.startswith(d + os.sep)
                   for p, d in ((path, place), (os.path.realpath(path), os.path.realpath(place))))

    def job_ids(self) -> list[str]:
        try:
            entries = list(os.scandir(self.base))
        except FileNotFoundError:
            return []
        return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))

    def checkpoint_dirs(self, job_id: str) -> list[CheckpointDir]:
        root = self.base / job_id
        if os.path.islink(root) or not root.is_dir():
            return []
        found = []
        for entry in os.scandir(root):
            named = parse_checkpoint_dir_name(entry.name)
            if named is None:
                continue
            try:
                found.append(CheckpointDir(self.location(job_id, *named), *named, _newest_write(entry.path)))
            except FileNotFoundError:  # deleted while looked at
                continue
        return sorted(found, key=lambda d: (d.attempt, d.step))

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


def _newest_write(path: str) -> float:
    """The newest modification time of `path` and, for a directory, of everything under it
    (links are not followed: a link's own time counts)."""
    newest = os.lstat(path).st_mtime
    if os.path.isdir(path) and not os.path.islink(path):
        for top, dirs, files in os.walk(path, onerror=lambda _: None):
            for name in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(top, name)).st_mtime)
                except FileNotFoundError:  # deleted while looked at
                    continue
    return newest


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
