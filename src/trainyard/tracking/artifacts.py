"""Artifacts: files under a run. Bytes go to the blob store; the store keeps path, URI, size, sha256.

Each upload is written to a blob of its own (a key with a fresh upload id), moved into place
when complete, and only then recorded: the row points at exactly the bytes its size and
sha256 describe, and a download serves the row's own blob. Two uploads of one path at once
never share a file; the last one recorded wins whole. The blob a row stops pointing at is
deleted after that change commits, never before. An interrupted upload leaves nothing, unless
the server itself stopped mid-way (or failed to delete a replaced blob): `delete_orphan_uploads`
finds those blobs, which no row points at, once they are older than a grace period.

Listing and downloading take a role in the run's team; uploading takes member (tracking/runs.py).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterable, Iterator

from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session

from trainyard.principal import Principal
from trainyard.storage import BlobStore
from trainyard.storage.blobs import StoredBlob, validate_key
from trainyard.store import Store, repo
from trainyard.store.repo import NotFound
from trainyard.store.tables import utcnow
from trainyard.store.tracking_tables import RunArtifact
from trainyard.tracking.runs import RunError, readable, writable

log = logging.getLogger("trainyard.tracking")

MAX_PATH = 1000
READ_TRIES = 5


def check_path(path: str) -> str:
    """The artifact path; RunError (422 on `path`) for paths that could escape the run."""
    if len(path) > MAX_PATH:
        raise RunError("path", f"at most {MAX_PATH} characters")
    try:
        return validate_key(path)
    except ValueError:
        raise RunError("path", f"{path!r} is not a relative path inside the run: no leading '/', "
                               "no '..' or '.' parts, no empty parts, no backslashes") from None


def upload_key(run_id: str) -> str:
    """The blob key of one upload: unique to it, so no other upload (of this path or another) writes there."""
    return f"runs/{run_id}/uploads/{secrets.token_hex(8)}"


def _upload_run(key: str) -> str | None:
    """The run an upload's blob key (or its temporary name) belongs to; None for other keys."""
    parts = key.split("/")
    return parts[1] if len(parts) == 4 and parts[0] == "runs" and parts[2] == "uploads" else None


def record(s: Session, run_id: str, path: str, blob: StoredBlob) -> tuple[RunArtifact, str | None]:
    """Point the run's `path` at `blob`: (the row, the URI it pointed at before, if another)."""
    now = utcnow()
    inserted = repo.insert_absent(s, RunArtifact, dict(run_id=run_id, path=path, uri=blob.uri, bytes=blob.bytes,
                                                       sha256=blob.sha256, created_at=now))
    row = s.scalars(select(RunArtifact).where(RunArtifact.run_id == run_id, RunArtifact.path == path)
                    .with_for_update().execution_options(populate_existing=True)).one()
    replaced = None if inserted or row.uri == blob.uri else row.uri
    row.uri, row.bytes, row.sha256, row.created_at = blob.uri, blob.bytes, blob.sha256, now
    return row, replaced


def _delete_blob(blobs: BlobStore, uri: str) -> None:
    """Delete a blob no row points at any more; a URI outside the store is never touched."""
    try:
        key = blobs.key_of(uri)
    except ValueError:
        return
    blobs.delete(key)


async def upload(store: Store, blobs: BlobStore, who: Principal, run_id: str, path: str,
                 body: AsyncIterable[bytes]) -> RunArtifact:
    """Stream a file into the run's artifacts at `path`; recorded once all its bytes are in place.
    `who` must be a member of the run's team: checked before any byte is read."""
    check_path(path)
    key = upload_key(run_id)

    def check_run() -> None:
        with store.session() as s:
            writable(s, who, run_id, "upload artifacts to it")

    def save(blob: StoredBlob) -> tuple[RunArtifact, str | None]:
        with store.session(lock=True) as s:
            return record(s, run_id, path, blob)

    await to_thread.run_sync(check_run)
    blob = await blobs.put_async_stream(key, body)
    try:
        row, replaced = await to_thread.run_sync(save, blob)
    except BaseException:
        await to_thread.run_sync(blobs.delete, key)  # never recorded, so never served
        raise
    if replaced is not None:
        await to_thread.run_sync(_delete_blob, blobs, replaced)
    return row


def delete_orphan_uploads(store: Store, blobs: BlobStore, grace_s: float) -> int:
    """Delete the upload blobs no artifact row points at that nothing has written for `grace_s`:
    a replaced blob whose delete failed, or an upload the server stopped in before recording it.
    An upload in progress writes its blob until its row commits, so it is never this old.
    Returns how many were deleted; a blob that cannot be is left for the next call."""
    cutoff = time.time() - grace_s
    stale: dict[str, list[str]] = {}
    for key, modified in blobs.listing("runs"):
        run_id = _upload_run(key)
        if run_id is not None and modified < cutoff:
            stale.setdefault(run_id, []).append(key)
    deleted = 0
    for run_id, keys in stale.items():
        with store.session() as s:
            named = {_key_tail(u) for u in s.scalars(select(RunArtifact.uri).where(RunArtifact.run_id == run_id))}
            orphans = [k for k in keys if k not in named and not _named_anywhere(s, k)]
        for key in orphans:
            try:
                blobs.delete(key)
            except OSError as exc:
                log.warning("could not delete the orphan upload blob %s: %s; will retry", key, exc)
                continue
            deleted += 1
    return deleted


def _key_tail(uri: str) -> str:
    """The upload key a row's uri ends in: rows keep naming their blob if the store's root moved."""
    return "/".join(uri.split("/")[-4:])


def _named_anywhere(s: Session, key: str) -> bool:
    """Whether any row (of any run, under any root) names the blob with this upload key."""
    return s.scalar(select(RunArtifact.path).where(RunArtifact.uri.endswith(f"/{key}", autoescape=True))
                    .limit(1)) is not None


def list_artifacts(s: Session, who: Principal, run_id: str, prefix: str = "") -> list[RunArtifact]:
    """The artifacts of a run `who` may read (else reported missing), by path; only under `prefix` if given."""
    readable(s, who, run_id)
    stmt = select(RunArtifact).where(RunArtifact.run_id == run_id).order_by(RunArtifact.path)
    if prefix:
        stmt = stmt.where(RunArtifact.path.startswith(prefix, autoescape=True))
    return list(s.scalars(stmt))


def get_artifact(s: Session, run_id: str, path: str) -> RunArtifact:
    row = s.get(RunArtifact, (run_id, path))
    if row is None:
        raise NotFound(f"run {run_id} has no artifact {path!r}; "
                       f"list them with `yard runs artifacts {run_id}`")
    return row


def open_artifact(store: Store, blobs: BlobStore, who: Principal, run_id: str,
                  path: str) -> tuple[RunArtifact, Iterator[bytes]]:
    """The artifact's row and the bytes of the very blob it points at, opened before any is sent;
    of a run `who` may read (else the run is reported missing).

    An upload of the same path may replace the row and delete the blob it pointed at between
    the read of the row and the open: the row is then read again.
    """
    check_path(path)
    with store.session() as s:
        readable(s, who, run_id)
    for _ in range(READ_TRIES):
        with store.session() as s:
            row = get_artifact(s, run_id, path)
        try:
            key = blobs.key_of(row.uri)
        except ValueError:
            break
        try:
            return row, blobs.open_chunks(key)
        except FileNotFoundError:
            continue
    raise NotFound(f"the blob of artifact {path!r} of run {run_id} is missing from the blob store; "
                   "upload the file again")
