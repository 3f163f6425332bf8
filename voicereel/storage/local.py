"""Local-filesystem storage: objects are files under `storage_dir`, written atomically (temp file + rename, so
a reader never sees half an object); download URLs are HMAC-signed gateway URLs (see `signing`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from voicereel.settings import Settings
from voicereel.storage.base import ObjectNotFound
from voicereel.storage.keys import check_key
from voicereel.storage.signing import local_url


class LocalStorage:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.storage_dir).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if self.root not in path.parents:
            raise ValueError(f"storage key escapes the root: {key!r}")
        return path

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise ObjectNotFound(key) from exc

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        check_key(prefix)
        if prefix.endswith("/"):
            folder = self.path(prefix.rstrip("/"))
            if not folder.is_dir():
                return 0
            count = sum(1 for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder, ignore_errors=True)
            return count
        parent = self.path(prefix).parent
        stem = Path(prefix).name
        count = 0
        for entry in parent.glob(f"{stem}*") if parent.is_dir() else []:
            if entry.is_dir():
                count += sum(1 for p in entry.rglob("*") if p.is_file())
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
                count += 1
        return count

    def download_url(self, key: str, filename: str | None = None) -> str:
        # `filename` is not part of local URLs: every query parameter is signed, and the interface signs only
        # the key and expiry. The gateway names the download after the key's last segment.
        return local_url(self.settings, key)
