"""Blob storage behind fsspec, the code archives kept in it, and the roots checkpoints live under."""

from trainyard.storage.blobs import BlobStore
from trainyard.storage.checkpoints import CheckpointRoot, LocalCheckpointRoot
from trainyard.storage.code_archive import CodeSnapshot, pack_directory, unpack_archive

__all__ = ["BlobStore", "CheckpointRoot", "CodeSnapshot", "LocalCheckpointRoot", "pack_directory",
           "unpack_archive"]
