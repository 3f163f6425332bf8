"""S3 storage through boto3 (AWS, MinIO, moto): bucket, key prefix, region and endpoint from settings; download
URLs are SigV4 presigned GETs valid for `presign_expiry_s`. Credentials come from boto3's usual chain
(environment, shared config, instance role), never from our settings. Every call has connect/read timeouts
and boto3's standard retry mode (capped exponential backoff with jitter for throttling and 5xx)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from voicereel.settings import Settings
from voicereel.storage.base import ObjectNotFound, StorageError
from voicereel.storage.keys import check_key

_CONNECT_TIMEOUT_S = 5
_READ_TIMEOUT_S = 60
_MAX_ATTEMPTS = 5
_DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes


def make_client(settings: Settings) -> Any:
    config = Config(
        region_name=settings.s3_region,
        signature_version="s3v4",
        connect_timeout=_CONNECT_TIMEOUT_S,
        read_timeout=_READ_TIMEOUT_S,
        retries={"max_attempts": _MAX_ATTEMPTS, "mode": "standard"},
        s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
    )
    return boto3.session.Session().client("s3", endpoint_url=settings.s3_endpoint_url, config=config)


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


class S3Storage:
    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        prefix = settings.s3_prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.client = client or make_client(settings)

    def full_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.full_key(key), Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"put {key}: {exc}") from exc

    def get_bytes(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))
            return bytes(response["Body"].read())
        except ClientError as exc:
            if _not_found(exc):
                raise ObjectNotFound(key) from exc
            raise StorageError(f"get {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"get {key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
            return True
        except ClientError as exc:
            if _not_found(exc):
                return False
            raise StorageError(f"head {key}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"head {key}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.full_key(key))
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"delete {key}: {exc}") from exc

    def _keys_under(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.full_key(prefix)):
            for item in page.get("Contents", []):
                yield str(item["Key"])

    def delete_prefix(self, prefix: str) -> int:
        deleted = 0
        try:
            batch: list[str] = []
            for key in self._keys_under(prefix):
                batch.append(key)
                if len(batch) == _DELETE_BATCH:
                    deleted += self._delete_batch(batch)
                    batch = []
            if batch:
                deleted += self._delete_batch(batch)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"delete prefix {prefix}: {exc}") from exc
        return deleted

    def _delete_batch(self, keys: list[str]) -> int:
        response = self.client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
        )
        errors = response.get("Errors", [])
        if errors:
            raise StorageError(f"delete_objects failed for {len(errors)} keys, first: {errors[0]}")
        return len(keys)

    def download_url(self, key: str, filename: str | None = None) -> str:
        params: dict[str, str] = {"Bucket": self.bucket, "Key": self.full_key(key)}
        if filename:
            safe = "".join(c for c in filename if c.isalnum() or c in "._-") or "download"
            params["ResponseContentDisposition"] = f'attachment; filename="{safe}"'
        return str(
            self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=self.settings.presign_expiry_s)
        )
