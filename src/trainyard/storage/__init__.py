"""Blob storage behind fsspec, and the code archives kept in it."""

from trainyard.storage.blobs import BlobStore
from trainyard.storage.code_archive import CodeSnapshot, pack_directory, unpack_archive

__all__ = ["BlobStore", "CodeSnapshot", "pack_directory", "unpack_archive"]
