"""Every endpoint of the public API as a `Call`: method, path, query and the exact body bytes.

Both clients (sync and async) send these, so each endpoint is described once. Builders validate their input
before anything is sent: ids must have their prefix (which also keeps a path segment a path segment),
requests must pass the same pydantic models the gateway validates against, reference audio must be a readable
file in an accepted container.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from voicereel.client.audio_check import check_reference_audio
from voicereel.client.errors import InvalidRequestError
from voicereel.ids import has_prefix
from voicereel.schemas import SynthesisRequest

API_PREFIX = "/v1"
CURSOR_SHAPE = re.compile(r"^[a-z]{3}_[0-9a-hjkmnp-tv-z]{26}$")
MONTH_SHAPE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Body:
    """The exact bytes sent (and signed) and their content type."""

    content: bytes
    content_type: str | None


EMPTY_BODY = Body(b"", None)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: Mapping[str, str | int] = field(default_factory=dict)
    body: Body = EMPTY_BODY
    idempotency_key: str | None = None
    # Non-2xx statuses that are an answer, not an error (readiness says "not ready" with 503); never retried.
    answer_statuses: frozenset[int] = frozenset()

    @property
    def needs_idempotency_key(self) -> bool:
        return self.method == "POST"


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def _require_id(value: str, prefix: str, what: str) -> str:
    if not isinstance(value, str) or not has_prefix(value, prefix):
        raise InvalidRequestError(f"{what} must look like '{prefix}_' + 26 characters, got {value!r}")
    return value


MAX_PAGE_SIZE = 100


def _page(limit: int | None, cursor: str | None, status: str | None) -> dict[str, str | int]:
    params: dict[str, str | int] = {}
    if limit is not None:
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
        params["limit"] = limit
    if cursor is not None:
        if not CURSOR_SHAPE.match(cursor):
            raise InvalidRequestError(f"cursor must be a next_cursor value from a previous page, got {cursor!r}")
        params["cursor"] = cursor
    if status is not None:
        params["status"] = status
    return params


def json_body(payload: Any) -> Body:
    return Body(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(), "application/json")


def multipart_body(data: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]]) -> Body:
    """Encode a multipart form once, so the same bytes are signed, sent and re-sent on retries."""
    request = httpx.Request("POST", "http://encoder.invalid/", data=dict(data), files=dict(files))
    return Body(request.read(), request.headers["content-type"])


# --- speakers ------------------------------------------------------------------------------------------------


def create_speaker(
    *, name: str, lang: str, reference_audio: str | Path, reference_script: str, idempotency_key: str | None = None
) -> Call:
    if not name.strip():
        raise InvalidRequestError("speaker name must not be empty")
    if not (len(lang) == 2 and lang.isalpha() and lang.islower()):
        raise InvalidRequestError(f"lang must be an ISO 639-1 code such as 'en', got {lang!r}")
    if not reference_script.strip():
        raise InvalidRequestError("reference_script (the transcript of the reference audio) must not be empty")
    audio = check_reference_audio(Path(reference_audio))
    body = multipart_body(
        {"name": name, "lang": lang, "reference_script": reference_script},
        {"reference_audio": (audio.filename, audio.data, audio.content_type)},
    )
    return Call("POST", f"{API_PREFIX}/speakers", body=body, idempotency_key=idempotency_key)


def list_speakers(*, limit: int | None = None, cursor: str | None = None, status: str | None = None) -> Call:
    return Call("GET", f"{API_PREFIX}/speakers", params=_page(limit, cursor, status))


def get_speaker(speaker_id: str) -> Call:
    _require_id(speaker_id, "spk", "speaker_id")
    return Call("GET", f"{API_PREFIX}/speakers/{speaker_id}")


def delete_speaker(speaker_id: str) -> Call:
    _require_id(speaker_id, "spk", "speaker_id")
    return Call("DELETE", f"{API_PREFIX}/speakers/{speaker_id}")


# --- synthesis and jobs ----------------------------------------------------------------------------------------


def as_synthesis_request(request: SynthesisRequest | Mapping[str, Any]) -> SynthesisRequest:
    if isinstance(request, SynthesisRequest):
        return request
    try:
        return SynthesisRequest.model_validate(dict(request))
    except ValidationError as exc:
        raise InvalidRequestError(f"invalid synthesis request: {exc}") from exc


def synthesize(request: SynthesisRequest | Mapping[str, Any], *, idempotency_key: str | None = None) -> Call:
    model = as_synthesis_request(request)
    for line in model.script:
        _require_id(line.speaker_id, "spk", "script speaker_id")
    payload = model.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    return Call("POST", f"{API_PREFIX}/synthesize", body=json_body(payload), idempotency_key=idempotency_key)


def list_jobs(
    *, limit: int | None = None, cursor: str | None = None, status: str | None = None, kind: str | None = None
) -> Call:
    params = _page(limit, cursor, status)
    if kind is not None:
        params["kind"] = kind
    return Call("GET", f"{API_PREFIX}/jobs", params=params)


def get_job(job_id: str) -> Call:
    _require_id(job_id, "job", "job_id")
    return Call("GET", f"{API_PREFIX}/jobs/{job_id}")


def cancel_job(job_id: str) -> Call:
    _require_id(job_id, "job", "job_id")
    return Call("DELETE", f"{API_PREFIX}/jobs/{job_id}")


def get_usage(*, month: str | None = None) -> Call:
    params: dict[str, str | int] = {}
    if month is not None:
        if not MONTH_SHAPE.match(month):
            raise InvalidRequestError(f"month must be YYYY-MM, got {month!r}")
        params["month"] = month
    return Call("GET", f"{API_PREFIX}/usage", params=params)


# --- operations --------------------------------------------------------------------------------------------


def health() -> Call:
    return Call("GET", "/healthz")


def readiness() -> Call:
    return Call("GET", "/readyz", answer_statuses=frozenset({503}))


def metrics() -> Call:
    return Call("GET", "/metrics")
