"""An independent check of SigV4 presigned GET URLs, written from the AWS specification (not botocore's code):
recompute the canonical request, string to sign and signature from the URL and the credentials, and check the
expiry window. moto serves presigned URLs without checking either, so this is how the tests see them."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlsplit

_UNRESERVED = "-_.~"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def verify_presigned_get(url: str, *, access_key: str, secret_key: str, region: str, now: datetime) -> bool:
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    signature = params.pop("X-Amz-Signature", "")
    try:
        if params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256" or params["X-Amz-SignedHeaders"] != "host":
            return False
        stamp = params["X-Amz-Date"]
        issued = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expires = int(params["X-Amz-Expires"])
        key_id, day, cred_region, service, terminator = params["X-Amz-Credential"].split("/")
    except (KeyError, ValueError):
        return False
    if (key_id, cred_region, service, terminator) != (access_key, region, "s3", "aws4_request"):
        return False
    if day != stamp[:8] or not (issued - timedelta(minutes=5) <= now <= issued + timedelta(seconds=expires)):
        return False

    query = "&".join(f"{quote(k, safe=_UNRESERVED)}={quote(v, safe=_UNRESERVED)}" for k, v in sorted(params.items()))
    canonical_request = "\n".join(
        ["GET", parts.path or "/", query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), region), "s3"), "aws4_request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)
