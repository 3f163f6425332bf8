"""S3 tests run against the session's moto server (real HTTP, real boto3). Static test credentials: moto accepts
any, and the SigV4 checks in test_s3 recompute signatures with the same ones."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from voicereel.settings import Settings
from voicereel.storage.lifecycle import ensure_bucket
from voicereel.storage.s3 import S3Storage, make_client

ACCESS_KEY = "AKIATESTVOICEREEL000"
SECRET_KEY = "test-secret-key-for-sigv4-checks"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def s3_settings(aws_env: None, s3_endpoint: str, settings_factory: Callable[..., Settings]) -> Settings:
    settings = settings_factory(
        storage_backend="s3",
        s3_bucket=f"vr-{uuid.uuid4().hex[:12]}",
        s3_prefix="tenant-a/",
        s3_endpoint_url=s3_endpoint,
        s3_region="eu-west-1",
    )
    ensure_bucket(settings, make_client(settings))
    return settings


@pytest.fixture
def s3_storage(s3_settings: Settings) -> S3Storage:
    return S3Storage(s3_settings)
