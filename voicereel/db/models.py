"""Database tables (SQLModel). The database is the source of truth for projects, keys, speakers and jobs;
RQ only carries job ids. Schema changes go through Alembic migrations (`voicereel/db/migrations`)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class SpeakerStatus(StrEnum):
    pending = "pending"
    ready = "ready"
    failed = "failed"


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"
    expired = "expired"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled, JobStatus.expired)


class JobKind(StrEnum):
    register_speaker = "register_speaker"
    synthesize = "synthesize"


class Project(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=40)
    name: str = Field(default="", max_length=200)
    key_hash: str = Field(unique=True, max_length=128, description="SHA-256 hex of the secret key; never the key.")
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    rate_limit_per_min: int
    monthly_quota_chars: int
    signing_required: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class Speaker(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=40)
    name: str = Field(max_length=200)
    lang: str = Field(max_length=8)
    status: SpeakerStatus = Field(default=SpeakerStatus.pending)
    reference_key: str = Field(max_length=500, description="Storage key of the uploaded reference audio.")
    reference_text: str
    codes_key: str | None = Field(default=None, max_length=500, description="Storage key of the prompt codes.")
    prompt_text: str | None = Field(default=None, description="Transcript part that matches the prompt window.")
    duration_s: float | None = None
    quality: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Job(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=40)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=40)
    api_key_id: str | None = Field(default=None, foreign_key="apikey.id", max_length=40)
    kind: JobKind
    status: JobStatus = Field(default=JobStatus.queued, index=True)
    progress: float = 0.0
    request: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error_code: str | None = Field(default=None, max_length=40)
    error_message: str | None = None
    attempts: int = 0
    characters: int = Field(default=0, description="Characters of a synthesis script (quota and usage).")
    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = Field(default=None, index=True)


class UsageRecord(SQLModel, table=True):
    """Usage of one finished job, recorded once (the unique job_id makes retries harmless)."""

    __table_args__ = (UniqueConstraint("job_id", name="uq_usagerecord_job"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=40)
    api_key_id: str | None = Field(default=None, foreign_key="apikey.id", index=True, max_length=40)
    job_id: str = Field(max_length=40)
    month: str = Field(max_length=7, index=True, description="YYYY-MM in UTC")
    characters: int = 0
    audio_seconds: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)


class RequestCount(SQLModel, table=True):
    """API requests per key per month (GET /v1/usage). The gateway adds counts in batches, so a row is updated in
    place (`requests = requests + n`) instead of growing a row per request."""

    __table_args__ = (UniqueConstraint("api_key_id", "month", name="uq_requestcount_key_month"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: str = Field(foreign_key="project.id", index=True, max_length=40)
    api_key_id: str = Field(foreign_key="apikey.id", max_length=40)
    month: str = Field(max_length=7, description="YYYY-MM in UTC")
    requests: int = 0
