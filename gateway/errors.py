"""The one place that turns errors into HTTP responses: the envelope of DESIGN §3 for every error, always.

`{"error": {"code": "INVALID_INPUT", "message": "…", "details": {…}, "request_id": "req_…"}}`

Handlers and helpers raise `VoiceReelError` (or a pydantic `ValidationError`, or Starlette's `HTTPException` from
routing); `error_response` renders any of them, and `unhandled_error_response` renders the 500 for everything else
without leaking what went wrong.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from voicereel.errors import HTTP_STATUS, ErrorCode, VoiceReelError

log = logging.getLogger("voicereel.gateway")

_HTTP_CODES = {
    400: ErrorCode.INVALID_INPUT,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.UNPROCESSABLE,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.ENGINE_UNAVAILABLE,
}

# A backing service that does not answer: 503, retry later (the database through SQLAlchemy or psycopg, Redis).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OperationalError,
    PoolTimeoutError,
    psycopg.OperationalError,
)


def envelope(code: ErrorCode, message: str, request_id: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": str(code), "message": message, "details": details or {}, "request_id": request_id}}


def render(
    code: ErrorCode,
    message: str,
    request_id: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    status: int | None = None,
) -> Response:
    body = json.dumps(envelope(code, message, request_id, details), default=str).encode()
    return Response(body, status_code=status or HTTP_STATUS[code], headers=headers, media_type="application/json")


def validation_details(exc: ValidationError) -> dict[str, Any]:
    """Where and why, without echoing the input (it may be large or sensitive)."""
    return {
        "errors": [
            {"loc": [str(part) for part in err["loc"]], "msg": err["msg"], "type": err["type"]} for err in exc.errors()
        ]
    }


def to_voicereel_error(exc: BaseException) -> VoiceReelError | None:
    """The public error for an exception we know how to explain; None for a bug (rendered as a 500)."""
    if isinstance(exc, VoiceReelError):
        return exc
    if isinstance(exc, ValidationError):
        return VoiceReelError(ErrorCode.INVALID_INPUT, "request failed validation", validation_details(exc))
    if isinstance(exc, HTTPException):
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.INVALID_INPUT)
        messages = {404: "no such route", 405: "method not allowed on this route"}
        message = messages.get(exc.status_code, str(exc.detail))
        err = VoiceReelError(code, message, headers=dict(exc.headers or {}))
        if exc.status_code == 405:
            err.details = {"allow": (exc.headers or {}).get("Allow", "")}
        return err
    if isinstance(exc, ClientDisconnect):
        return VoiceReelError(ErrorCode.INVALID_INPUT, "client disconnected before the request body was complete")
    if isinstance(exc, _UNAVAILABLE):
        log.warning("backing service unavailable: %s", type(exc).__name__)
        return VoiceReelError(ErrorCode.ENGINE_UNAVAILABLE, "a backing service is unavailable; retry later")
    return None


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_response(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for VoiceReelError, ValidationError, HTTPException and service outages."""
    err = to_voicereel_error(exc)
    if err is None:
        raise exc  # not ours to explain: the request-context middleware renders the 500
    status = 405 if isinstance(exc, HTTPException) and exc.status_code == 405 else None
    return render(err.code, err.message, request_id_of(request), err.details, err.headers, status)


def unhandled_error_response(request_id: str) -> Response:
    return render(ErrorCode.INTERNAL_ERROR, "internal error; quote the request id when reporting it", request_id)


EXCEPTION_HANDLERS = {
    VoiceReelError: error_response,
    ValidationError: error_response,
    HTTPException: error_response,
    ClientDisconnect: error_response,
    **{cls: error_response for cls in _UNAVAILABLE},
}
