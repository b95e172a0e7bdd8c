"""Snapshot a code directory into a reproducible tar.gz, recording its git state; check and unpack one.

An archive from a client is read only as a stream (tar mode "r|"), under caps checked before each
member is inflated: total inflated bytes, member count, path length, extended header size. Members
must stay inside the code directory (tarfile's "data" filter: no absolute paths, no links out, no
devices). The same caps hold when the archive is uploaded and when a launch unpacks it.
An archive is stored under its sha256 (`archive_key`), so the same code is stored once
however many jobs, sweeps and evaluations name it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from trainyard.spec import SpecError
from trainyard.storage.blobs import BlobStore, content_key

SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
             "node_modules", "trainyard-runs"}
MAX_ARCHIVE_BYTES = 200 * 1024 * 1024
_PREFIX, _SUFFIX = "code", ".tar.gz"
MAX_INFLATED_BYTES = 1 << 30
MAX_MEMBERS = 20_000
MAX_MEMBER_PATH = 1024
MAX_HEADER_BYTES = 64 * 1024  # a pax or GNU long-name header: one path and a few attributes
_EXTENDED = frozenset({tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
                       tarfile.SOLARIS_XHDTYPE})
_KEEP_DATA_OUT = "keep data out of the code directory (make it a dataset)"


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


class ArchiveError(SpecError):
    """A code archive refused: not a tar.gz, over a cap, or with a member that would leave its directory."""

    def __init__(self, message: str, field: str = "(body)"):
        super().__init__([{"field": field, "message": message}])


@dataclass(frozen=True)
class ArchiveLimits:
    max_inflated_bytes: int = MAX_INFLATED_BYTES  # the whole tar stream, headers included
    max_members: int = MAX_MEMBERS
    max_path: int = MAX_MEMBER_PATH


DEFAULT_LIMITS = ArchiveLimits()


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


class _Inflated(io.RawIOBase):
    """The decompressed stream, refused as soon as it passes `cap` bytes (headers count too)."""

    def __init__(self, compressed: IO[bytes], cap: int):
        self._gz = gzip.GzipFile(fileobj=compressed, mode="rb")
        self._cap = cap
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self._gz.readinto(buffer)
        self.total += n
        if self.total > self._cap:
            raise ArchiveError(f"a code archive inflates to at most {_mib(self._cap)}; {_KEEP_DATA_OUT}")
        return n


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile reads an extended header whole into memory: refuse a big one before it is read."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED and self.size > MAX_HEADER_BYTES:
            raise ArchiveError(f"a member's extended header is {self.size} bytes; at most "
                               f"{MAX_HEADER_BYTES} (it only holds a path and a few attributes)")
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise ArchiveError(f"{self.name!r} is a sparse file; archive code files as they are")
        return super()._proc_member(tar)  # type: ignore[misc]

    def _proc_gnusparse_10(self, *_: object) -> None:  # its map is read without a bound
        raise ArchiveError(f"{self.name!r} is a sparse file; archive code files as they are")


_OUTSIDE = "every member must stay inside the code directory"


@dataclass
class _Tally:
    limits: ArchiveLimits
    members: int = 0
    inflated: int = 0
    links: set[str] = field(default_factory=set)  # symbolic links seen so far, as normalised paths

    def count(self, member: tarfile.TarInfo) -> None:
        """ArchiveError if this member passes a cap or is neither a file, a directory nor a link."""
        limits = self.limits
        self.members += 1
        if self.members > limits.max_members:
            raise ArchiveError(f"a code archive holds at most {limits.max_members} files; {_KEEP_DATA_OUT}")
        self.inflated += member.size
        if self.inflated > limits.max_inflated_bytes:
            raise ArchiveError(f"a code archive inflates to at most {_mib(limits.max_inflated_bytes)}; "
                               f"{_KEEP_DATA_OUT}")
        if max(len(member.name), len(member.linkname)) > limits.max_path:
            raise ArchiveError(f"{member.name[:80]!r}...: a path in a code archive is at most "
                               f"{limits.max_path} characters")
        if member.name.startswith("/"):
            raise ArchiveError(f"{member.name!r} is an absolute path; a code archive holds relative paths")
        if member.sparse is not None or not (member.isreg() or member.isdir() or member.issym()
                                             or member.islnk()):
            raise ArchiveError(f"{member.name!r} is not a file, a directory or a link; a code archive "
                               "holds only those")

    def check_path(self, member: tarfile.TarInfo) -> None:
        """What tarfile's data filter refuses, by path arithmetic alone: a check unpacks nothing, so
        there is nothing on disk to resolve (and 20,000 realpath calls would cost seconds)."""
        name = posixpath.normpath(member.name)
        parts = name.split("/")
        if parts[0] == "..":
            raise ArchiveError(f"{member.name!r} would be written outside the code directory; {_OUTSIDE}")
        through = next((p for i in range(1, len(parts)) if (p := "/".join(parts[:i])) in self.links), None)
        if through is not None:
            raise ArchiveError(f"{member.name!r} would be written through the link {through!r}; {_OUTSIDE}")
        if member.issym() or member.islnk():
            base = posixpath.dirname(name) if member.issym() else ""
            target = posixpath.normpath(posixpath.join(base, member.linkname))
            if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
                raise ArchiveError(f"{member.name!r} links to {member.linkname!r}, outside the code "
                                   f"directory; {_OUTSIDE}")
            if member.issym():
                self.links.add(name)

    def admit(self, member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        """tarfile's extraction filter: the member as it may be written under `dest`, or ArchiveError."""
        self.count(member)
        try:
            return tarfile.data_filter(member, dest)
        except tarfile.FilterError as exc:
            raise ArchiveError(f"{exc}; {_OUTSIDE}") from None


def _members(fileobj: IO[bytes], limits: ArchiveLimits) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """Each member of the tar.gz stream in order, with the open archive to read it from."""
    inflated = _Inflated(fileobj, limits.max_inflated_bytes)
    try:
        # Reads of 64 KiB, not 10 KiB: less Python (holding the GIL) per byte inflated, and a header read
        # copies at most this much of what is left in the buffer.
        with tarfile.open(fileobj=inflated, mode="r|", tarinfo=_BoundedTarInfo,  # type: ignore[call-overload]
                          bufsize=64 << 10) as tar:
            for member in tar:
                yield tar, member
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"not a tar.gz archive: {exc}") from None
    except RecursionError:  # a chain of extended headers, each naming the next
        raise ArchiveError("a member has too many extended headers; at most a few") from None


def check_archive(fileobj: IO[bytes], limits: ArchiveLimits = DEFAULT_LIMITS) -> int:
    """Read the whole archive as a stream, stopping at the first cap it passes; returns its member count.

    Slow work (inflating up to `max_inflated_bytes`): call it from a worker thread, never an event loop.
    """
    tally = _Tally(limits)
    for tar, member in _members(fileobj, limits):
        tally.count(member)
        tally.check_path(member)
        tar.members.clear()  # type: ignore[attr-defined]  # nothing is extracted: no member is looked up again
    return tally.members


def unpack_archive(archive: bytes | IO[bytes], dest: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> None:
    """Unpack into `dest` under the same caps as an upload; on ArchiveError a `dest` made here is removed."""
    made = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    source = io.BytesIO(archive) if isinstance(archive, bytes) else archive
    tally = _Tally(limits)
    try:
        for tar, member in _members(source, limits):
            tar.extract(member, dest, filter=tally.admit)
    except ArchiveError:
        if made:
            shutil.rmtree(dest, ignore_errors=True)
        raise


class ArchiveUpload:
    """A code archive as it arrives: written to an unnamed temporary file and hashed, never held whole."""

    def __init__(self, tmp_dir: Path):
        tmp_dir.mkdir(parents=True, exist_ok=True)
        self._file = tempfile.TemporaryFile(dir=tmp_dir)  # noqa: SIM115 - the route closes it
        self._hash = hashlib.sha256()
        self.bytes = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self.bytes += len(chunk)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def check(self, check: Callable[[IO[bytes]], object] = check_archive) -> None:
        """ArchiveError unless the archive passes every cap (slow: call from a worker thread)."""
        self._file.flush()
        self._file.seek(0)
        check(self._file)

    def store(self, blobs: BlobStore, check: Callable[[IO[bytes]], object] = check_archive) -> str:
        """Check the archive (with `check`: check_archive, or ArchiveChecks.check to do it in a worker
        process), then keep it under its digest (once); returns the digest."""
        self.check(check)
        key = archive_key(self.digest)
        if not blobs.exists(key):
            blobs.put_stream(key, self.chunks())
        return self.digest

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        self._file.seek(0)
        while chunk := self._file.read(size):
            yield chunk

    def close(self) -> None:
        self._file.close()
