"""`Idempotency-Key` on POSTs: a retried request gets the first one's response instead of doing the work twice.

- Same key and same request (method, path and the digest of what the body says: the validated JSON, or the form
  fields and file bytes, so a retry that encodes the same request differently still matches): the stored
  response, byte for byte, with `Idempotent-Replayed: true`.
- Same key, different body: 422 `UNPROCESSABLE`.
- Same key while the first request is still being handled: 409 `CONFLICT`.

Keys are scoped to the project and remembered for `idempotency_ttl_h`. Only successful (2xx) responses are kept:
after an error the client may fix the request and retry with the same key. The claim is taken after the request
has been parsed and validated and before anything is written, so it guards exactly the side effects.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Awaitable, Callable

import redis.asyncio
from starlette.responses import Response

from voicereel.errors import ErrorCode, VoiceReelError

HEADER = "idempotency-key"
_KEY_SHAPE = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces
_KEPT_HEADERS = ("content-type", "location", "preference-applied")


def validate_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _KEY_SHAPE.match(value):
        raise VoiceReelError(
            ErrorCode.INVALID_INPUT, "Idempotency-Key must be 1-255 printable ASCII characters without spaces"
        )
    return value


def request_fingerprint(method: str, path: str, body_sha256: str) -> str:
    return hashlib.sha256(f"{method}\n{path}\n{body_sha256}".encode()).hexdigest()


async def run_once(
    redis_client: redis.asyncio.Redis,
    *,
    project_id: str,
    key: str | None,
    fingerprint: str,
    ttl_s: int,
    in_flight_ttl_s: int,
    produce: Callable[[], Awaitable[Response]],
) -> Response:
    if key is None:
        return await produce()
    name = f"vr:idem:{project_id}:{hashlib.sha256(key.encode()).hexdigest()}"
    claim = json.dumps({"state": "in_flight", "fingerprint": fingerprint})
    if not await redis_client.set(name, claim, nx=True, ex=in_flight_ttl_s):
        return await _existing(redis_client, name, fingerprint)
    try:
        response = await produce()
    except BaseException:
        await redis_client.delete(name)
        raise
    if not 200 <= response.status_code < 300:
        await redis_client.delete(name)
        return response
    stored = {
        "state": "done",
        "fingerprint": fingerprint,
        "status": response.status_code,
        "headers": {k: v for k, v in response.headers.items() if k in _KEPT_HEADERS},
        "body": base64.b64encode(bytes(response.body)).decode(),
    }
    await redis_client.set(name, json.dumps(stored), ex=ttl_s)
    return response


async def _existing(redis_client: redis.asyncio.Redis, name: str, fingerprint: str) -> Response:
    raw = await redis_client.get(name)
    if raw is None:  # expired between our SET NX and GET: treat as in flight, the client retries
        raise VoiceReelError(ErrorCode.CONFLICT, "a request with this Idempotency-Key is still in progress")
    record = json.loads(raw)
    if record["fingerprint"] != fingerprint:
        raise VoiceReelError(ErrorCode.UNPROCESSABLE, "Idempotency-Key was already used with a different request body")
    if record["state"] != "done":
        raise VoiceReelError(ErrorCode.CONFLICT, "a request with this Idempotency-Key is still in progress")
    headers = {**record["headers"], "Idempotent-Replayed": "true"}
    return Response(base64.b64decode(record["body"]), status_code=record["status"], headers=headers)
