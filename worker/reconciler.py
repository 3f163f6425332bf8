"""The reconciler: the database is the source of truth, RQ only the transport (DESIGN §6). Jobs the database has
as queued or running are re-enqueued when RQ has lost or abandoned them:

- no RQ job at all (Redis restarted, or the gateway's enqueue failed) — for queued jobs only once they are older
  than `reconcile_grace_s`, so the gateway's own enqueue is never raced;
- an RQ job that ended (failed — RQ's failed registry also receives abandoned jobs —, stopped, canceled, or
  finished) while the database still says queued/running: the attempt died without writing its outcome;
- an RQ job marked started whose liveness key (worker.liveness) has expired: the worker was killed.

Jobs that RQ holds as queued, scheduled (RQ's own retry backoff), deferred or rate-limited are RQ's business.
Re-enqueueing goes through `voicereel.jobqueue.enqueue` (same id, timeouts and TTLs as the gateway's), after the
stale RQ job is deleted. A job that has used up `job_max_attempts` is failed instead, and its partial artifacts
deleted. Runs are serialised by a Redis lock, so several schedulers never reconcile at once.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from redis.exceptions import LockError
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from sqlalchemy import update
from sqlmodel import col, select

from voicereel.db.models import Job, JobStatus
from voicereel.db.session import session_scope
from voicereel.errors import ErrorCode
from voicereel.jobqueue import enqueue, make_queue
from voicereel.quota import give_back
from voicereel.storage.keys import job_prefix
from worker.context import WorkerContext
from worker.jobstate import now_utc
from worker.liveness import BEATS_TO_EXPIRE, is_alive

log = logging.getLogger(__name__)

LOCK_KEY = "voicereel:reconciler:lock"
WAITING = {RQStatus.QUEUED, RQStatus.SCHEDULED, RQStatus.DEFERRED, RQStatus.RATE_LIMITED, RQStatus.CREATED}
BATCH = 1000


@dataclass
class Report:
    checked: int = 0
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped_locked: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "checked": self.checked,
            "requeued": self.requeued,
            "failed": self.failed,
            "skipped_locked": self.skipped_locked,
        }


def _rq_job(ctx: WorkerContext, job_id: str) -> RQJob | None:
    try:
        return RQJob.fetch(job_id, connection=ctx.redis)
    except NoSuchJobError:
        return None


def diagnose(ctx: WorkerContext, job: Job, now: datetime) -> str | None:
    """Why this job needs re-enqueueing, or None if RQ still has it in hand."""
    rq_job = _rq_job(ctx, job.id)
    if rq_job is None:
        young = now - job.created_at < timedelta(seconds=ctx.settings.reconcile_grace_s)
        if job.status == JobStatus.queued and young:
            return None
        return "missing from RQ"
    status = rq_job.get_status(refresh=False)
    if status in WAITING:
        return None
    if status == RQStatus.STARTED:
        if is_alive(ctx.redis, job.id):
            return None
        started = rq_job.started_at
        allowance = timedelta(seconds=ctx.settings.worker_heartbeat_s * BEATS_TO_EXPIRE)
        if started is not None and now - (started if started.tzinfo else started.replace(tzinfo=UTC)) < allowance:
            return None  # the attempt has only just begun; its first heartbeat may still be on its way
        return "abandoned by its worker (no heartbeat)"
    return f"RQ says {status}"


def _give_up(ctx: WorkerContext, job: Job, reason: str) -> bool:
    message = f"the job was interrupted {job.attempts} times ({reason}); giving up"
    with session_scope(ctx.engine) as session:
        changed = session.exec(
            update(Job)
            .where(col(Job.id) == job.id, col(Job.status).in_([JobStatus.queued, JobStatus.running]))
            .values(
                status=JobStatus.failed,
                error_code=ErrorCode.INTERNAL_ERROR,
                error_message=message,
                finished_at=now_utc(),
            )
        ).rowcount
    if changed:
        give_back(ctx.redis, job)
        ctx.storage.delete_prefix(job_prefix(job.project_id, job.id))
    return bool(changed)


def _requeue(ctx: WorkerContext, job: Job) -> None:
    stale = _rq_job(ctx, job.id)
    if stale is not None:
        stale.delete()
    enqueue(make_queue(ctx.redis, ctx.settings), job, ctx.settings)


def reconcile_once(ctx: WorkerContext, *, now: datetime | None = None) -> Report:
    report = Report()
    lock = ctx.redis.lock(LOCK_KEY, timeout=max(60, ctx.settings.reconcile_interval_s * 2), blocking=False)
    if not lock.acquire():
        report.skipped_locked = True
        return report
    try:
        now = now or now_utc()
        with session_scope(ctx.engine) as session:
            jobs = session.exec(
                select(Job)
                .where(col(Job.status).in_([JobStatus.queued, JobStatus.running]))
                .order_by(col(Job.created_at))
                .limit(BATCH)
            ).all()
        for job in jobs:
            report.checked += 1
            reason = diagnose(ctx, job, now)
            if reason is None:
                continue
            if job.attempts >= ctx.settings.job_max_attempts:
                if _give_up(ctx, job, reason):
                    report.failed.append(job.id)
                continue
            log.warning("re-enqueueing job %s (%s, attempt %d so far)", job.id, reason, job.attempts)
            _requeue(ctx, job)
            report.requeued.append(job.id)
    finally:
        with contextlib.suppress(LockError):  # expired meanwhile: nothing to release
            lock.release()
    return report


def reconcile() -> dict[str, object]:
    """RQ job function (scheduled every `reconcile_interval_s`)."""
    with WorkerContext.create() as ctx:
        return reconcile_once(ctx).as_dict()
