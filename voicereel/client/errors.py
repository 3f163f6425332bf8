"""Typed exceptions of the SDK: one class per family of API error codes, plus client-side failures.

Every API error carries the gateway's `code`, `message`, `details`, the HTTP `status` and the `request_id`
(from the error envelope, else the `X-Request-ID` header) so a user can quote it to support.
"""

from __future__ import annotations

import json
from typing import Any

import httpx


class VoiceReelClientError(Exception):
    """Base of everything this SDK raises."""


class InvalidRequestError(VoiceReelClientError, ValueError):
    """Bad input caught on the client side; no request was sent."""


class ApiError(VoiceReelClientError):
    """The gateway answered with an error envelope (or a non-2xx status without one)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int,
        request_id: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        suffix = f" (request {request_id})" if request_id else ""
        super().__init__(f"{code}: {message}{suffix}")
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.details = details or {}
        self.headers = headers or {}


class InvalidInputError(ApiError):
    """INVALID_INPUT / UNPROCESSABLE: the request was rejected as malformed."""


class AuthError(ApiError):
    """UNAUTHORIZED: missing, unknown or revoked key, or a bad/expired/replayed signature."""


class PermissionDeniedError(AuthError):
    """FORBIDDEN: the key is valid but lacks the scope for this call."""


class NotFoundError(ApiError):
    """NOT_FOUND: no such resource in the caller's project."""


class ConflictError(ApiError):
    """CONFLICT: the resource's state forbids the call (e.g. an idempotency key reused with another body)."""


class PayloadTooLargeError(ApiError):
    """PAYLOAD_TOO_LARGE: the upload exceeds the gateway's limit."""


class UnsupportedMediaError(ApiError):
    """UNSUPPORTED_MEDIA_TYPE: the upload's container or codec is not accepted."""


class InsufficientReferenceError(ApiError):
    """INSUFFICIENT_REF: the reference audio is too short or too poor to clone from."""


class RateLimitedError(ApiError):
    """RATE_LIMITED: too many requests; `retry_after` seconds is the gateway's advice (None if it gave none)."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class QuotaExceededError(ApiError):
    """QUOTA_EXCEEDED: the key's monthly character quota is spent (not retried)."""


class ServerError(ApiError):
    """INTERNAL_ERROR or an unexpected 5xx."""


class EngineUnavailableError(ServerError):
    """ENGINE_UNAVAILABLE: the synthesis engine is down or overloaded; retried with backoff."""


class TransportError(VoiceReelClientError):
    """The gateway could not be reached (connection refused, DNS, timeout) after all retries."""


class JobFailedError(VoiceReelClientError):
    """A job finished in `failed` (or `canceled`/`expired`) while waiting for it."""

    def __init__(self, job_id: str, status: str, code: str | None, message: str | None) -> None:
        super().__init__(f"job {job_id} {status}: {code or 'no code'}: {message or 'no message'}")
        self.job_id = job_id
        self.status = status
        self.code = code
        self.message = message


class JobTimeoutError(VoiceReelClientError, TimeoutError):
    """`wait_for_job` gave up before the job finished; the job keeps running on the server."""

    def __init__(self, job_id: str, timeout_s: float, last_status: str, progress: float) -> None:
        super().__init__(f"job {job_id} still {last_status} ({progress:.0%}) after {timeout_s:g}s")
        self.job_id = job_id
        self.timeout_s = timeout_s
        self.last_status = last_status
        self.progress = progress


ERROR_CLASSES: dict[str, type[ApiError]] = {
    "INVALID_INPUT": InvalidInputError,
    "UNPROCESSABLE": InvalidInputError,
    "UNAUTHORIZED": AuthError,
    "FORBIDDEN": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "CONFLICT": ConflictError,
    "PAYLOAD_TOO_LARGE": PayloadTooLargeError,
    "UNSUPPORTED_MEDIA_TYPE": UnsupportedMediaError,
    "INSUFFICIENT_REF": InsufficientReferenceError,
    "RATE_LIMITED": RateLimitedError,
    "QUOTA_EXCEEDED": QuotaExceededError,
    "INTERNAL_ERROR": ServerError,
    "ENGINE_UNAVAILABLE": EngineUnavailableError,
}

# For answers without an envelope (a proxy's 502, a bare 404 from a router): the code their status implies.
_CODE_BY_STATUS = {
    400: "INVALID_INPUT",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "INVALID_INPUT",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE",
    429: "RATE_LIMITED",
    503: "ENGINE_UNAVAILABLE",
}


def error_from_response(response: httpx.Response, body: bytes, retry_after: float | None = None) -> ApiError:
    """Turn a non-2xx response (whose body has been read into `body`) into the matching typed exception."""
    code: str | None = None
    message = ""
    details: dict[str, Any] = {}
    request_id = response.headers.get("x-request-id")
    try:
        envelope = json.loads(body) if body else None
    except ValueError:
        envelope = None
    if isinstance(envelope, dict) and isinstance(envelope.get("error"), dict):
        error = envelope["error"]
        code = str(error.get("code") or "") or None
        message = str(error.get("message") or "")
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
        request_id = error.get("request_id") or request_id
    if code is None:
        code = _CODE_BY_STATUS.get(response.status_code, "INTERNAL_ERROR")
        snippet = body[:200].decode("utf-8", errors="replace").strip()
        message = f"HTTP {response.status_code} without an error envelope" + (f": {snippet}" if snippet else "")
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else ApiError
    headers = dict(response.headers)
    if cls is RateLimitedError:
        return RateLimitedError(
            code,
            message,
            status=response.status_code,
            request_id=request_id,
            details=details,
            headers=headers,
            retry_after=retry_after,
        )
    return cls(code, message, status=response.status_code, request_id=request_id, details=details, headers=headers)
