"""Job state in the database (the source of truth), written by the worker with conditional updates.

Every write after the claim is `UPDATE … WHERE status = 'running'`: a job the gateway canceled meanwhile (or that a
parallel attempt already finished) is left as it is, and the worker learns so from the row count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from voicereel.db.models import Job, JobStatus, UsageRecord
from voicereel.db.session import session_scope
from voicereel.errors import ErrorCode
from voicereel.settings import Settings

log = logging.getLogger(__name__)


class JobStopped(Exception):
    """The job is no longer ours to run: canceled by the caller, or finished by another attempt."""

    def __init__(self, job_id: str, status: JobStatus | None) -> None:
        super().__init__(f"job {job_id} is {status}")
        self.status = status


def now_utc() -> datetime:
    return datetime.now(UTC)


def claim(
    engine: Engine, job_id: str, settings: Settings, *, on_fail: Callable[[Job], None] | None = None
) -> Job | None:
    """Mark the job running for a new attempt and return it; None when there is nothing to run (unknown,
    finished, canceled) or when it has used up its attempts (then it is failed here, and `on_fail(job)` runs
    after that is committed)."""
    given_up: Job | None = None
    with session_scope(engine) as session:
        job = session.exec(select(Job).where(col(Job.id) == job_id).with_for_update()).first()
        if job is None:
            log.warning("job %s is not in the database; nothing to run", job_id)
            return None
        if JobStatus(job.status).finished:
            log.info("job %s is %s already; nothing to run", job_id, job.status)
            return None
        if job.attempts >= settings.job_max_attempts:
            job.status = JobStatus.failed
            job.error_code = ErrorCode.INTERNAL_ERROR
            job.error_message = f"the job was interrupted {job.attempts} times (worker lost or crashed); giving up" + (
                f"; last error: {job.error_message}" if job.error_message else ""
            )
            job.finished_at = now_utc()
            session.add(job)
            given_up = job
        else:
            job.status = JobStatus.running
            job.attempts += 1
            job.started_at = job.started_at or now_utc()
            session.add(job)
            session.flush()
            session.refresh(job)
            return job
    if given_up is not None and on_fail is not None:
        on_fail(given_up)
    return None


def status_of(engine: Engine, job_id: str) -> JobStatus | None:
    with session_scope(engine) as session:
        job = session.get(Job, job_id)
        return JobStatus(job.status) if job else None


def _update_running(engine: Engine, job_id: str, **values: Any) -> bool:
    with session_scope(engine) as session:
        result = session.exec(
            update(Job).where(col(Job.id) == job_id, col(Job.status) == JobStatus.running).values(**values)
        )
        return bool(result.rowcount)


class Progress:
    """Writes progress (at most every `min_interval_s`) and doubles as the cancellation check between lines: a
    write that finds the job no longer running raises JobStopped."""

    def __init__(self, engine: Engine, job_id: str, *, min_interval_s: float = 0.25, on_write: Any = None) -> None:
        self.engine = engine
        self.job_id = job_id
        self.min_interval_s = min_interval_s
        self.on_write = on_write
        self._last = 0.0

    def update(self, fraction: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        fraction = min(max(fraction, 0.0), 1.0)
        if not _update_running(self.engine, self.job_id, progress=fraction):
            raise JobStopped(self.job_id, status_of(self.engine, self.job_id))
        if self.on_write is not None:
            self.on_write(fraction)


def succeed(
    engine: Engine,
    job: Job,
    result: dict[str, Any],
    settings: Settings,
    *,
    usage: tuple[int, float] | None = None,
    expires: bool = True,
) -> datetime | None:
    """Finish the job with its result and record its usage once. Returns when its artifacts expire (or, for a
    job without artifacts, when it finished); None if the job was not running any more (canceled meanwhile, or
    finished by a parallel attempt)."""
    finished = now_utc()
    expires_at = finished + timedelta(hours=settings.artifact_ttl_h) if expires else None
    with session_scope(engine) as session:
        changed = session.exec(
            update(Job)
            .where(col(Job.id) == job.id, col(Job.status) == JobStatus.running)
            .values(
                status=JobStatus.succeeded,
                progress=1.0,
                result=result,
                finished_at=finished,
                expires_at=expires_at,
                error_code=None,
                error_message=None,
            )
        ).rowcount
        if not changed:
            return None
        if usage is not None:
            record_usage(session, job, characters=usage[0], audio_seconds=usage[1], when=finished)
    return expires_at or finished


def record_usage(session: Any, job: Job, *, characters: int, audio_seconds: float, when: datetime) -> bool:
    """Insert the job's UsageRecord unless one exists (the unique job_id makes a second insert fail harmlessly)."""
    if session.exec(select(UsageRecord).where(col(UsageRecord.job_id) == job.id)).first() is not None:
        return False
    try:
        with session.begin_nested():
            session.add(
                UsageRecord(
                    project_id=job.project_id,
                    api_key_id=job.api_key_id,
                    job_id=job.id,
                    month=when.strftime("%Y-%m"),
                    characters=characters,
                    audio_seconds=round(audio_seconds, 3),
                )
            )
    except IntegrityError:  # a parallel attempt recorded it first
        return False
    return True


def fail(engine: Engine, job_id: str, code: ErrorCode | str, message: str) -> bool:
    """Fail a running job with a public code and message. False if it was not running any more."""
    return _update_running(
        engine,
        job_id,
        status=JobStatus.failed,
        error_code=str(code),
        error_message=message[:2000],
        finished_at=now_utc(),
    )


def note_error(engine: Engine, job_id: str, message: str) -> None:
    """Remember an attempt's unexpected error on a job that will be retried (shown if it finally fails)."""
    _update_running(engine, job_id, error_message=message[:2000])
