"""Code archives: content-addressed tar.gz snapshots of a job's code directory."""

from __future__ import annotations

import gzip
import io
import tarfile

from fastapi import APIRouter, Depends, HTTPException, Request

from trainyard.api.platform import Platform, get_platform
from trainyard.storage.code_archive import MAX_ARCHIVE_BYTES, store_archive

router = APIRouter(prefix="/v1/code-archives", tags=["code"])


@router.post("", status_code=201)
async def upload_code(request: Request, platform: Platform = Depends(get_platform)) -> dict[str, str]:
    data = await request.body()
    if len(data) > MAX_ARCHIVE_BYTES:
        raise HTTPException(413, f"code archive is over {MAX_ARCHIVE_BYTES >> 20} MiB")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.getmembers()
    except (tarfile.TarError, gzip.BadGzipFile, EOFError) as exc:
        raise HTTPException(422, f"body is not a tar.gz archive: {exc}") from None
    digest = store_archive(platform.blobs, data)
    return {"digest": digest}
