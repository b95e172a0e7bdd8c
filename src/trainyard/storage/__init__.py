"""Blob storage behind fsspec, the code archives kept in it, and the roots checkpoints live under."""

from trainyard.storage.archive_checks import ArchiveChecks
from trainyard.storage.blobs import BlobStore
from trainyard.storage.checkpoints import CheckpointDir, CheckpointRoot, LocalCheckpointRoot
from trainyard.storage.code_archive import (
    CodeSnapshot,
    archive_key,
    pack_directory,
    require_archive,
    store_archive,
    unpack_archive,
)

__all__ = ["ArchiveChecks", "BlobStore", "CheckpointDir", "CheckpointRoot", "CodeSnapshot", "LocalCheckpointRoot",
           "archive_key", "pack_directory", "require_archive", "store_archive", "unpack_archive"]
