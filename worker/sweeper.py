"""The sweeper: a finished job's artifacts are deleted `artifact_ttl_h` after it finished (its `expires_at`), and
the job becomes `expired`.

Exactness: each succeeded job gets a one-off `sweep_job` scheduled in RQ at its `expires_at`; the periodic
`sweep` (every `sweep_interval_s`) catches whatever RQ lost (Redis restarted) no later than one interval. The S3
lifecycle rule (day granularity) is the last backstop.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select

from voicereel.db.models import Job, JobStatus
from voicereel.db.session import session_scope
from voicereel.storage.keys import job_prefix
from worker.context import WorkerContext
from worker.jobstate import now_utc

log = logging.getLogger(__name__)

BATCH = 500


def expire_one(ctx: WorkerContext, job_id: str, *, now: datetime | None = None) -> bool:
    """Delete one job's artifacts and mark it expired, if its time has come. True if it was expired now."""
    now = now or now_utc()
    with session_scope(ctx.engine) as session:
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.succeeded or job.expires_at is None or job.expires_at > now:
            return False
        project_id = job.project_id
    deleted = ctx.storage.delete_prefix(job_prefix(project_id, job_id))
    with session_scope(ctx.engine) as session:
        changed = session.exec(
            update(Job)
            .where(col(Job.id) == job_id, col(Job.status) == JobStatus.succeeded, col(Job.expires_at) <= now)
            .values(status=JobStatus.expired)
        ).rowcount
    log.info("expired job %s (%d objects deleted)", job_id, deleted)
    return bool(changed)


def sweep_expired(ctx: WorkerContext, *, now: datetime | None = None) -> int:
    """Expire every succeeded job past its expiry; returns how many."""
    now = now or now_utc()
    expired = 0
    while True:
        with session_scope(ctx.engine) as session:
            ids = session.exec(
                select(Job.id)
                .where(col(Job.status) == JobStatus.succeeded, col(Job.expires_at) <= now)
                .order_by(col(Job.expires_at))
                .limit(BATCH)
            ).all()
        if not ids:
            return expired
        progressed = sum(expire_one(ctx, job_id, now=now) for job_id in ids)
        expired += progressed
        if progressed == 0:  # someone else is expiring the same rows; do not spin
            return expired


# --- RQ job functions --------------------------------------------------------------------------------------


def sweep() -> int:
    with WorkerContext.create() as ctx:
        return sweep_expired(ctx)


def sweep_job(job_id: str) -> bool:
    with WorkerContext.create() as ctx:
        return expire_one(ctx, job_id)
