"""Object storage for uploads, speaker codes and job artifacts: S3 (boto3) or the local filesystem.

`make_storage(settings)` picks the backend; `verify_local_url` checks the signed URLs of the local backend for
the gateway's `/v1/files/{key}` route.
"""

from __future__ import annotations

from voicereel.settings import Settings, StorageBackend
from voicereel.storage.base import ObjectNotFound, Storage, StorageError
from voicereel.storage.local import LocalStorage
from voicereel.storage.s3 import S3Storage
from voicereel.storage.signing import verify_local_url

__all__ = [
    "LocalStorage",
    "ObjectNotFound",
    "S3Storage",
    "Storage",
    "StorageError",
    "make_storage",
    "verify_local_url",
]


def make_storage(settings: Settings) -> Storage:
    if settings.storage_backend is StorageBackend.s3:
        return S3Storage(settings)
    return LocalStorage(settings)
