"""Blob storage behind fsspec, and the code archives kept in it."""

from trainyard.storage.blobs import BlobStore
from trainyard.storage.code_archive import (
    CodeSnapshot,
    archive_key,
    pack_directory,
    require_archive,
    store_archive,
    unpack_archive,
)

__all__ = ["BlobStore", "CodeSnapshot", "archive_key", "pack_directory", "require_archive", "store_archive",
           "unpack_archive"]
