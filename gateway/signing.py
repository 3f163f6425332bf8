"""HMAC-SHA256 request signing (DESIGN §3).

The client sends `X-VR-Timestamp: <unix seconds>` and `X-VR-Signature: v1=<hex>` where

    hex = HMAC-SHA256(signing_secret, METHOD "\\n" PATH "\\n" CANONICAL_QUERY "\\n" TIMESTAMP "\\n" SHA256_HEX(BODY))

- METHOD is upper case; PATH is the percent-decoded URL path (`/v1/jobs/job_…`), without the query.
- CANONICAL_QUERY: the query's `name=value` pairs, percent-decoded, then each name and value percent-encoded with
  RFC 3986 unreserved characters left as they are (`quote(s, safe="-_.~")`), sorted by name then value, joined
  with `&`; empty when there is no query. A parameter without `=` counts as an empty value.
- TIMESTAMP is the header's text, exactly; SHA256_HEX(BODY) is the lower-case hex digest of the raw body bytes
  (of the empty string for no body).
- signing_secret is the `vrs_…` string shown at key creation, used as UTF-8 bytes.

The server rejects timestamps more than `signature_window_s` (300 s) away from its clock, rejects a signature it
has already accepted within that window (replay cache in Redis, keyed by key id and signature), and compares in
constant time. Several `v1=` values may be sent, comma separated (secret rotation); one valid is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, unquote_to_bytes

import redis.asyncio

from voicereel.errors import ErrorCode, VoiceReelError

TIMESTAMP_HEADER = "x-vr-timestamp"
SIGNATURE_HEADER = "x-vr-signature"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()


def canonical_query(query_string: str) -> str:
    pairs = []
    for part in query_string.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        name_text = unquote_to_bytes(name.replace("+", " ")).decode("utf-8", errors="surrogateescape")
        value_text = unquote_to_bytes(value.replace("+", " ")).decode("utf-8", errors="surrogateescape")
        pairs.append((_encode(name_text), _encode(value_text)))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _encode(text: str) -> str:
    return quote(text.encode("utf-8", errors="surrogateescape"), safe="-_.~")


def string_to_sign(method: str, path: str, query_string: str, timestamp: str, body_sha256: str) -> str:
    return "\n".join((method.upper(), path, canonical_query(query_string), timestamp, body_sha256))


def sign(secret: str, method: str, path: str, query_string: str, timestamp: str, body: bytes = b"") -> str:
    """The `X-VR-Signature` value for a request (what the SDK sends; used by tests)."""
    message = string_to_sign(method, path, query_string, timestamp, hashlib.sha256(body).hexdigest())
    return "v1=" + hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _fail(message: str, reason: str = "rejected") -> VoiceReelError:
    """UNAUTHORIZED with `details.signature`: "replayed" when this exact signature was accepted before (the
    request itself was not run: a client may sign it afresh and send it again), else "rejected"."""
    return VoiceReelError(ErrorCode.UNAUTHORIZED, message, {"signature": reason})


async def verify(
    *,
    redis_client: redis.asyncio.Redis,
    secret: str,
    key_id: str,
    method: str,
    path: str,
    query_string: str,
    timestamp: str | None,
    signature: str | None,
    body_sha256: str,
    window_s: int,
    now: float | None = None,
) -> None:
    """Raise UNAUTHORIZED unless the signature is valid, fresh and not seen before."""
    if not timestamp or not signature:
        raise _fail("this request must be signed: send X-VR-Timestamp and X-VR-Signature")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise _fail("X-VR-Timestamp must be unix seconds")
    skew = abs((time.time() if now is None else now) - int(timestamp))
    if skew > window_s:
        raise _fail(f"X-VR-Timestamp is more than {window_s} s away from the server's clock")
    message = string_to_sign(method, path, query_string, timestamp, body_sha256).encode()
    expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    matched = None
    for candidate in signature.split(","):
        version, _, value = candidate.strip().partition("=")
        # compare_digest on ASCII strings: constant time in the length of the expected value
        if version == "v1" and value.isascii() and hmac.compare_digest(value.lower(), expected):
            matched = expected
    if matched is None:
        raise _fail("signature does not match the request")
    # A signature is only ever valid inside the window, so remembering it for the window (twice, for skew on both
    # sides) is enough. SET NX is atomic: of two concurrent replays exactly one gets through.
    first = await redis_client.set(f"vr:sig:{key_id}:{matched}", b"1", nx=True, ex=2 * window_s + 1)
    if not first:
        raise _fail("signature was already used (replay)", "replayed")
