"""CORS for configured origins only, with refusals in the error envelope.

Credentials are allowed only with an explicit origin list: a wildcard origin together with credentials would let
any site act with a user's cookies. A refused preflight is 403 FORBIDDEN in the usual envelope (Starlette's own
middleware answers in plain text).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.errors import render
from voicereel.errors import ErrorCode
from voicereel.settings import Settings


class _Refusal(Response):
    """Rendered when sent, so that the envelope carries the request id from the scope."""

    def __init__(self, reason: str, headers: dict[str, str]) -> None:
        super().__init__(status_code=403)
        self.reason = reason
        self.extra_headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(scope.get("state", {}).get("request_id", ""))
        response = render(ErrorCode.FORBIDDEN, self.reason, request_id, headers=self.extra_headers)
        await response(scope, receive, send)


class EnvelopeCORSMiddleware(CORSMiddleware):
    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        headers = {k: v for k, v in response.headers.items() if k.startswith("access-control-") or k == "vary"}
        return _Refusal(bytes(response.body).decode(), headers)


def cors_middleware(settings: Settings) -> list[Middleware]:
    if not settings.cors_origins:
        return []
    wildcard = "*" in settings.cors_origins
    return [
        Middleware(
            EnvelopeCORSMiddleware,
            allow_origins=["*"] if wildcard else settings.cors_origins,
            allow_credentials=not wildcard,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "Prefer",
                "X-Request-ID",
                "X-VR-APIKEY",
                "X-VR-Signature",
                "X-VR-Timestamp",
            ],
            expose_headers=[
                "X-Request-ID",
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "Retry-After",
                "Location",
                "Idempotent-Replayed",
            ],
            max_age=600,
        )
    ]
