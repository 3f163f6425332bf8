"""Request and response shapes of the public API (DESIGN §3). The OpenAPI document is generated from these.

The synthesis request itself is `voicereel.schemas.SynthesisRequest`, shared with the worker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from voicereel.db.models import JobKind, JobStatus, SpeakerStatus
from voicereel.errors import ErrorCode

T = TypeVar("T")

ID_PATTERN = r"^[a-z]{3}_[0-9a-hjkmnp-tv-z]{26}$"


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors ---------------------------------------------------------------------------------------------------


class ErrorBody(_Out):
    code: ErrorCode
    message: str
    details: dict[str, Any]
    request_id: str


class ErrorEnvelope(_Out):
    error: ErrorBody


# --- pagination ---------------------------------------------------------------------------------------------


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(20, ge=1, le=100, description="Items per page.")
    cursor: str | None = Field(
        None, max_length=40, pattern=ID_PATTERN, description="`next_cursor` of the previous page."
    )


class Page(_Out, Generic[T]):
    data: list[T]
    total: int = Field(description="Items matching the filters, over all pages.")
    limit: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


# --- speakers ------------------------------------------------------------------------------------------------


class SpeakerForm(BaseModel):
    """The text fields of `POST /v1/speakers` (the file is `reference_audio`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200, description="Display name of the voice.")
    lang: str = Field(min_length=2, max_length=2, pattern=r"^[a-z]{2}$", description="ISO 639-1 language code.")
    reference_script: str = Field(
        min_length=1, max_length=10_000, description="Transcript of the reference audio, word for word."
    )


class SpeakerCreated(_Out):
    speaker_id: str
    job_id: str


class Speaker(_Out):
    id: str
    name: str
    lang: str
    status: SpeakerStatus
    duration_s: float | None = Field(description="Length of the reference audio, once measured.")
    quality: dict[str, Any] | None = Field(description="Quality report of the reference (worker's analysis).")
    error: str | None
    created_at: datetime
    updated_at: datetime


class SpeakerListQuery(PageQuery):
    status: SpeakerStatus | None = Field(None, description="Only speakers in this state.")


# --- jobs ------------------------------------------------------------------------------------------------------


class JobAccepted(_Out):
    job_id: str
    status: JobStatus


class JobError(_Out):
    code: str
    message: str


class Caption(_Out):
    model_config = ConfigDict(extra="allow")

    start: float = Field(description="Seconds from the start of the delivered file.")
    end: float
    speaker: str
    speaker_id: str | None = None
    text: str


class Job(_Out):
    id: str
    kind: JobKind
    status: JobStatus
    progress: float = Field(ge=0, le=1)
    speaker_id: str | None = Field(description="For register_speaker jobs: the speaker being registered.")
    characters: int
    audio_url: str | None = Field(description="Download URL of the mastered audio (expires, see DESIGN §3).")
    caption_url: str | None
    captions: list[Caption] | None
    duration_s: float | None
    sample_rate: int | None
    output_format: str | None
    caption_format: str | None
    error: JobError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None


class JobListQuery(PageQuery):
    status: JobStatus | None = Field(None, description="Only jobs in this state.")
    kind: JobKind | None = Field(None, description="Only jobs of this kind.")


# --- usage ------------------------------------------------------------------------------------------------------


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    month: str | None = Field(
        None, pattern=r"^20[0-9]{2}-(0[1-9]|1[0-2])$", description="One month, YYYY-MM (UTC); default: every month."
    )


class KeyUsage(_Out):
    api_key_id: str | None
    requests: int
    characters: int
    audio_seconds: float


class MonthUsage(_Out):
    month: str
    requests: int
    characters: int
    audio_seconds: float
    keys: list[KeyUsage]


class QuotaState(_Out):
    api_key_id: str
    month: str
    quota_chars: int
    used_chars: int


class Usage(_Out):
    project_id: str
    months: list[MonthUsage]
    quota: QuotaState = Field(description="The calling key's character quota this month.")


# --- health ------------------------------------------------------------------------------------------------------


class Health(_Out):
    status: Literal["ok"]


class Check(_Out):
    ok: bool
    detail: str | None = None
    latency_ms: float


class Readiness(_Out):
    status: Literal["ready", "not_ready"]
    checks: dict[str, Check]


class FileQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exp: int = Field(ge=0, le=2**40, description="Expiry, unix seconds.")
    sig: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_=-]+$", description="URL signature.")
