"""The storage interface shared by the worker (writes) and the gateway (reads, download URLs)."""

from __future__ import annotations

from typing import Protocol


class ObjectNotFound(KeyError):
    """No object under this key."""


class StorageError(RuntimeError):
    """The backend failed (network, permissions); the message names the key and the cause."""


class Storage(Protocol):
    def put_bytes(self, key: str, data: bytes, content_type: str) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Delete one object; a missing object is not an error."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix`; returns how many were deleted."""

    def download_url(self, key: str, filename: str | None = None) -> str:
        """A URL that fetches the object without other credentials, valid for `presign_expiry_s`."""
