"""What the sync and async clients share: configuration, building (and signing) one attempt of a call, and
turning an answer into a model or a typed exception. Sending and sleeping are the only parts that differ."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from voicereel.client.calls import Call
from voicereel.client.errors import VoiceReelClientError, error_from_response
from voicereel.client.retry import RetryPolicy, parse_retry_after
from voicereel.client.signing import Signer

ENV_API_KEY = "VOICEREEL_API_KEY"
ENV_BASE_URL = "VOICEREEL_BASE_URL"
ENV_SIGNING_SECRET = "VOICEREEL_SIGNING_SECRET"  # noqa: S105 (an environment variable's name)
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
USER_AGENT = "voicereel-python/0.1"
IDEMPOTENCY_HEADER = "Idempotency-Key"
M = TypeVar("M", bound=BaseModel)
UPLOAD_CHUNK = 64 * 1024

# (bytes done, bytes total or None when unknown)
ByteProgress = Callable[[int, int | None], None]
# (retry number starting at 1, seconds about to be waited, why)
RetryHook = Callable[[int, float, str], None]


class UnexpectedResponseError(VoiceReelClientError):
    """A 2xx answer whose body does not match the documented model (an SDK/gateway version mismatch)."""


@dataclass(frozen=True)
class ClientConfig:
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    signing_secret: str | None = None
    timeout_s: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = USER_AGENT

    @classmethod
    def resolve(
        cls,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        signing_secret: str | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> ClientConfig:
        """Explicit arguments first, then the `VOICEREEL_*` environment variables, then defaults."""
        return cls(
            base_url=(base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/"),
            api_key=api_key or os.environ.get(ENV_API_KEY) or None,
            signing_secret=signing_secret or os.environ.get(ENV_SIGNING_SECRET) or None,
            timeout_s=timeout_s,
            retry=retry or RetryPolicy(),
        )


def _upload_chunks(data: bytes, progress: ByteProgress) -> Iterator[bytes]:
    total = len(data)
    progress(0, total)
    for start in range(0, total, UPLOAD_CHUNK):
        chunk = data[start : start + UPLOAD_CHUNK]
        yield chunk
        progress(start + len(chunk), total)


async def _upload_chunks_async(data: bytes, progress: ByteProgress) -> AsyncIterator[bytes]:
    for chunk in _upload_chunks(data, progress):
        yield chunk


class RequestFactory:
    """Builds each attempt of a call: fresh signature (fresh timestamp), same idempotency key."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.signer = Signer(config.signing_secret) if config.signing_secret else None

    def build(
        self,
        http: httpx.Client | httpx.AsyncClient,
        call: Call,
        idempotency_key: str | None,
        upload_progress: ByteProgress | None = None,
    ) -> httpx.Request:
        headers = {"User-Agent": self.config.user_agent, "Accept": "application/json"}
        if self.config.api_key:
            headers["X-VR-APIKEY"] = self.config.api_key
        if idempotency_key:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        body = call.body
        if body.content_type:
            headers["Content-Type"] = body.content_type
        content: bytes | Iterator[bytes] | AsyncIterator[bytes] = body.content
        if upload_progress is not None and body.content:
            # An explicit Content-Length keeps httpx from switching to chunked encoding for the generator.
            headers["Content-Length"] = str(len(body.content))
            if isinstance(http, httpx.AsyncClient):
                content = _upload_chunks_async(body.content, upload_progress)
            else:
                content = _upload_chunks(body.content, upload_progress)
        request = http.build_request(
            call.method, call.path, params=dict(call.params) or None, content=content or None, headers=headers
        )
        if self.signer is not None:
            self.signer.sign(request, body.content)
        return request


def error_code_of(response: httpx.Response) -> str | None:
    """The envelope's error code of a read response, if it has one."""
    try:
        envelope = response.json()
    except ValueError:
        return None
    if isinstance(envelope, dict) and isinstance(envelope.get("error"), dict):
        code = envelope["error"].get("code")
        return str(code) if code else None
    return None


def raise_for_error(response: httpx.Response) -> None:
    """Raise the typed exception of a read, non-2xx response."""
    if response.is_success:
        return
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    raise error_from_response(response, response.content, retry_after)


def parse_model(model: type[M], call: Call, response: httpx.Response) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise UnexpectedResponseError(
            f"{call.method} {call.path} answered {response.status_code} with a body that is not a "
            f"{model.__name__}: {exc}"
        ) from exc


def retry_reason(response: httpx.Response, code: str | None) -> str:
    return f"{response.status_code} {code or response.reason_phrase}"
