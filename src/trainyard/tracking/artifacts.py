"""Artifacts: files under a run. Bytes go to the blob store; the store keeps path, URI, size, sha256.

The row is written only after the blob is complete and moved into place, so a listed
artifact always has all its bytes; an interrupted upload leaves neither.
"""

from __future__ import annotations

from collections.abc import AsyncIterable

from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session

from trainyard.storage import BlobStore
from trainyard.storage.blobs import StoredBlob, validate_key
from trainyard.store import Store
from trainyard.store.repo import NotFound
from trainyard.store.tables import utcnow
from trainyard.store.tracking_tables import RunArtifact
from trainyard.tracking.runs import RunError, get_run

MAX_PATH = 1000


def blob_key(run_id: str, path: str) -> str:
    """The blob key of an artifact; RunError (422 on `path`) for paths that could escape the run."""
    if len(path) > MAX_PATH:
        raise RunError("path", f"at most {MAX_PATH} characters")
    try:
        validate_key(path)
    except ValueError:
        raise RunError("path", f"{path!r} is not a relative path inside the run: no leading '/', "
                               "no '..' or '.' parts, no empty parts, no backslashes") from None
    return f"runs/{run_id}/artifacts/{path}"


def record(s: Session, run_id: str, path: str, uri: str, nbytes: int, sha256: str) -> RunArtifact:
    row = s.get(RunArtifact, (run_id, path))
    if row is None:
        row = RunArtifact(run_id=run_id, path=path)
        s.add(row)
    row.uri, row.bytes, row.sha256, row.created_at = uri, nbytes, sha256, utcnow()
    return row


async def upload(store: Store, blobs: BlobStore, run_id: str, path: str, body: AsyncIterable[bytes]) -> RunArtifact:
    """Stream a file into the run's artifacts at `path`; recorded once all its bytes are in place."""
    key = blob_key(run_id, path)

    def check_run() -> None:
        with store.session() as s:
            get_run(s, run_id)

    def save(blob: StoredBlob) -> RunArtifact:
        with store.session() as s:
            return record(s, run_id, path, blob.uri, blob.bytes, blob.sha256)

    await to_thread.run_sync(check_run)
    return await to_thread.run_sync(save, await blobs.put_async_stream(key, body))


def list_artifacts(s: Session, run_id: str, prefix: str = "") -> list[RunArtifact]:
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
