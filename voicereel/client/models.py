"""Typed responses of the public API (DESIGN §3, as the gateway serves them).

Requests reuse `voicereel.schemas` (the very models the gateway validates against). Responses ignore unknown
fields, so a newer gateway that adds a field does not break an older SDK.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from voicereel.schemas import CaptionFormat, OutputFormat, ScriptLine, SynthesisRequest

__all__ = [
    "Caption",
    "CaptionFormat",
    "Check",
    "Health",
    "Job",
    "JobAccepted",
    "JobError",
    "JobList",
    "KeyUsage",
    "MonthUsage",
    "OutputFormat",
    "Page",
    "QuotaState",
    "Readiness",
    "ScriptLine",
    "Speaker",
    "SpeakerAccepted",
    "SpeakerList",
    "SynthesisRequest",
    "Usage",
]

FINISHED_JOB_STATES = frozenset({"succeeded", "failed", "canceled", "expired"})


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SpeakerAccepted(_Response):
    """202 answer of `POST /v1/speakers`: the speaker (pending) and its registration job."""

    speaker_id: str
    job_id: str


class Speaker(_Response):
    id: str
    name: str
    lang: str
    status: str = Field(description="pending, ready or failed")
    duration_s: float | None = None
    quality: dict[str, Any] | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def ready(self) -> bool:
        return self.status == "ready"


T = TypeVar("T")


class Page(_Response, Generic[T]):
    """One page of a list; pass `next_cursor` as `cursor` for the next one (None on the last page)."""

    data: list[T]
    total: int
    limit: int
    next_cursor: str | None = None


class SpeakerList(Page[Speaker]):
    pass


class JobAccepted(_Response):
    """202 answer of `POST /v1/synthesize`."""

    job_id: str
    status: str


class Caption(_Response):
    start: float
    end: float
    speaker: str
    speaker_id: str | None = None
    text: str


class JobError(_Response):
    code: str
    message: str


class Job(_Response):
    id: str
    kind: str = Field(description="synthesize or register_speaker")
    status: str = Field(description="queued, running, succeeded, failed, canceled or expired")
    progress: float = 0.0
    speaker_id: str | None = Field(None, description="For register_speaker jobs: the speaker being registered.")
    characters: int = 0
    audio_url: str | None = None
    caption_url: str | None = None
    captions: list[Caption] | None = None
    duration_s: float | None = None
    sample_rate: int | None = None
    output_format: str | None = None
    caption_format: str | None = None
    error: JobError | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_JOB_STATES


class JobList(Page[Job]):
    pass


class KeyUsage(_Response):
    api_key_id: str | None
    requests: int
    characters: int
    audio_seconds: float


class MonthUsage(_Response):
    month: str
    requests: int
    characters: int
    audio_seconds: float
    keys: list[KeyUsage] = Field(default_factory=list)


class QuotaState(_Response):
    api_key_id: str
    month: str
    quota_chars: int
    used_chars: int


class Usage(_Response):
    project_id: str
    months: list[MonthUsage]
    quota: QuotaState = Field(description="The calling key's character quota this month.")


class Health(_Response):
    status: str


class Check(_Response):
    ok: bool
    detail: str | None = None
    latency_ms: float


class Readiness(_Response):
    """`GET /readyz`: `ready` when the database, Redis and Triton all answer (the gateway answers 503 otherwise)."""

    status: str = Field(description="ready or not_ready")
    checks: dict[str, Check]

    @property
    def ready(self) -> bool:
        return self.status == "ready"
