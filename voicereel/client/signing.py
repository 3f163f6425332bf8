"""HMAC-SHA256 request signing (DESIGN §3), the client half.

String to sign: `METHOD\\nPATH\\nCANONICAL_QUERY\\nTIMESTAMP\\nSHA256_HEX(BODY)`; headers `X-VR-Timestamp` (unix
seconds) and `X-VR-Signature: v1=<hex>`. The gateway keeps every signature it accepted for the whole window and
rejects a repeat, so two identical requests (same method, path, query and body) signed in the same second would
collide; `Signer` gives the second one a later timestamp instead (still inside the accepted window).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, quote

import httpx

TIMESTAMP_HEADER = "X-VR-Timestamp"
SIGNATURE_HEADER = "X-VR-Signature"
SIGNATURE_VERSION = "v1"


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """Query parameters sorted by name then value, each RFC 3986-encoded, joined as `a=1&b=2`."""
    encoded = sorted((_encode(k), _encode(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_query_from_raw(raw_query: str) -> str:
    return canonical_query(parse_qsl(raw_query, keep_blank_values=True))


def string_to_sign(method: str, path: str, query: str, timestamp: int, body: bytes) -> str:
    return "\n".join([method.upper(), path, query, str(timestamp), hashlib.sha256(body).hexdigest()])


def signature(secret: str, method: str, path: str, query: str, timestamp: int, body: bytes) -> str:
    """The `X-VR-Signature` header value, `v1=<hex>`."""
    message = string_to_sign(method, path, query, timestamp, body).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


class Signer:
    """Signs outgoing requests with one secret, never producing the same signature twice in a process."""

    def __init__(self, secret: str, *, clock: Callable[[], float] = time.time, max_skew_s: int = 240) -> None:
        if not secret:
            raise ValueError("signing secret must not be empty")
        self._secret = secret
        self._clock = clock
        self._max_skew_s = max_skew_s
        self._last_ts: dict[str, int] = {}
        self._lock = threading.Lock()

    def _timestamp(self, fingerprint: str) -> int:
        now = int(self._clock())
        with self._lock:
            # Drop entries too old to collide with anything signed from now on.
            if len(self._last_ts) > 1024:
                self._last_ts = {k: t for k, t in self._last_ts.items() if t >= now}
            last = self._last_ts.get(fingerprint)
            ts = now if last is None or last < now else last + 1
            if ts - now > self._max_skew_s:
                raise RuntimeError("too many identical signed requests in the signature window")
            self._last_ts[fingerprint] = ts
            return ts

    def headers(self, method: str, path: str, raw_query: str, body: bytes) -> dict[str, str]:
        query = canonical_query_from_raw(raw_query)
        fingerprint = string_to_sign(method, path, query, 0, body)
        ts = self._timestamp(fingerprint)
        return {
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: signature(self._secret, method, path, query, ts, body),
        }

    def sign(self, request: httpx.Request, body: bytes) -> None:
        """Add the signature headers to `request`, whose body is exactly `body`."""
        request.headers.update(self.headers(request.method, request.url.path, request.url.query.decode(), body))
