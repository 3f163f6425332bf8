"""Apply the bucket lifecycle rule that deletes job artifacts after `artifact_ttl_h` (rounded up to whole days:
S3 expires objects at day granularity, at midnight UTC after the age is reached, so this is the coarse backstop
and the app-side sweeper deletes at the exact time).

    python -m voicereel.storage.lifecycle [--create-bucket]
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from botocore.exceptions import ClientError

from voicereel.settings import Settings, StorageBackend, get_settings
from voicereel.storage.s3 import make_client

RULE_ID = "voicereel-job-artifacts-expiry"


def lifecycle_configuration(settings: Settings) -> dict[str, Any]:
    prefix = settings.s3_prefix.strip("/")
    jobs_prefix = f"{prefix}/jobs/" if prefix else "jobs/"
    return {
        "Rules": [
            {
                "ID": RULE_ID,
                "Filter": {"Prefix": jobs_prefix},
                "Status": "Enabled",
                "Expiration": {"Days": max(1, math.ceil(settings.artifact_ttl_h / 24))},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            }
        ]
    }


def apply_lifecycle(settings: Settings, client: Any | None = None, *, create_bucket: bool = False) -> dict[str, Any]:
    """Put our rule, keeping any other rules already on the bucket. Returns the configuration now in force."""
    client = client or make_client(settings)
    if create_bucket:
        ensure_bucket(settings, client)
    try:
        existing = client.get_bucket_lifecycle_configuration(Bucket=settings.s3_bucket).get("Rules", [])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
            raise
        existing = []
    rules = [r for r in existing if r.get("ID") != RULE_ID] + lifecycle_configuration(settings)["Rules"]
    client.put_bucket_lifecycle_configuration(Bucket=settings.s3_bucket, LifecycleConfiguration={"Rules": rules})
    return dict(client.get_bucket_lifecycle_configuration(Bucket=settings.s3_bucket))


def ensure_bucket(settings: Settings, client: Any) -> None:
    try:
        client.head_bucket(Bucket=settings.s3_bucket)
    except ClientError:
        kwargs: dict[str, Any] = {"Bucket": settings.s3_bucket}
        if settings.s3_region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.s3_region}
        client.create_bucket(**kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--create-bucket", action="store_true", help="create the bucket first if it is missing")
    args = parser.parse_args(argv)
    settings = get_settings()
    if settings.storage_backend is not StorageBackend.s3:
        print("VR_STORAGE_BACKEND is not s3: nothing to apply (the sweeper deletes local artifacts)")
        return 0
    config = apply_lifecycle(settings, create_bucket=args.create_bucket)
    print(json.dumps({"bucket": settings.s3_bucket, "rules": config.get("Rules", [])}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
