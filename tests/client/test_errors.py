"""Error envelopes (and bare error answers) become the typed exception of their code family."""

from __future__ import annotations

import json

import httpx
import pytest

from voicereel.client import errors
from voicereel.errors import ErrorCode


def response(status: int, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_gateway_code_has_a_class(code: ErrorCode) -> None:
    from voicereel.errors import HTTP_STATUS

    body = json.dumps({"error": {"code": code.value, "message": "m", "details": {"x": 1}, "request_id": "req_1"}})
    exc = errors.error_from_response(response(HTTP_STATUS[code], body.encode()), body.encode())
    assert type(exc) is errors.ERROR_CLASSES[code.value]
    assert exc.code == code.value and exc.request_id == "req_1" and exc.details == {"x": 1}
    assert exc.status == HTTP_STATUS[code]


def test_families() -> None:
    assert issubclass(errors.PermissionDeniedError, errors.AuthError)
    assert issubclass(errors.EngineUnavailableError, errors.ServerError)
    assert issubclass(errors.ApiError, errors.VoiceReelClientError)
    assert issubclass(errors.InvalidRequestError, ValueError)


def test_bare_answers_get_a_code_from_their_status() -> None:
    exc = errors.error_from_response(
        response(502, b"<html>bad gateway</html>", {"x-request-id": "req_h"}), b"<html>bad gateway</html>"
    )
    assert isinstance(exc, errors.ServerError) and exc.request_id == "req_h"
    assert "HTTP 502 without an error envelope" in exc.message and "bad gateway" in exc.message
    exc = errors.error_from_response(response(404, b""), b"")
    assert isinstance(exc, errors.NotFoundError)


def test_rate_limited_carries_retry_after() -> None:
    body = b'{"error": {"code": "RATE_LIMITED", "message": "slow down", "details": {}, "request_id": "req_2"}}'
    exc = errors.error_from_response(response(429, body), body, retry_after=12.0)
    assert isinstance(exc, errors.RateLimitedError) and exc.retry_after == 12.0
    assert str(exc) == "RATE_LIMITED: slow down (request req_2)"
