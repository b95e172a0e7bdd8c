"""Code archives: content-addressed tar.gz snapshots of a job's code directory.

The body streams to a temporary file while it is hashed (its size is capped while it streams,
by api/limits.py); the archive is then read back as a stream under the inflation and member
caps by a worker process (storage/archive_checks.py), and stored under its digest only if it passes.

Uploading takes the member role in some team. An archive is stored once for every team, under
its digest: the sha256 of a reproducible archive, so of the code tree itself. Knowing a digest
lets a job name that code (a submit checks only that the archive is stored), and the upload's
answer is the same whether or not the archive was stored before; digests are shown only in
the objects of their own teams (jobs, sweeps, models, lineage), so another team learns one
only by having the same code, or by guessing a whole tree exactly.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from trainyard.api.deps import Uploader
from trainyard.api.limits import run_heavy, stream_body
from trainyard.api.platform import Platform, get_platform
from trainyard.storage.code_archive import ArchiveUpload

router = APIRouter(prefix="/v1/code-archives", tags=["code"])


@router.post("", status_code=201, openapi_extra={"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                            "description": "A tar.gz archive (any content type is read as one)."}}}}})
async def upload_code(request: Request, _: Uploader, platform: Platform = Depends(get_platform)) -> dict[str, str]:
    upload = ArchiveUpload(platform.config.home / "tmp")
    try:
        await stream_body(request, upload.write)
        return {"digest": await run_heavy(upload.store, platform.blobs, platform.archive_checks.check)}
    finally:  # freeing up to 200 MiB of disk blocks can take a while: not on the event loop
        await run_in_threadpool(upload.close)
