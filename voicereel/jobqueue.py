"""RQ is transport only: it carries job ids; the database holds the job. One function enqueues, for every caller
(gateway, reconciler), so every RQ job gets the same timeouts and ids."""

from __future__ import annotations

from redis import Redis
from rq import Queue, Retry
from rq.job import Job as RQJob

from voicereel.db.models import Job, JobKind
from voicereel.settings import Settings

RUN_JOB = "worker.jobs.run_job"


def make_queue(redis: Redis, settings: Settings) -> Queue:
    return Queue(settings.queue_name, connection=redis, default_timeout=job_timeout_s(settings, JobKind.synthesize))


def job_timeout_s(settings: Settings, kind: JobKind) -> int:
    """Longest one attempt may run before RQ abandons it (the reconciler then re-enqueues it)."""
    return settings.register_job_timeout_s if kind is JobKind.register_speaker else settings.synth_job_timeout_s


def enqueue(queue: Queue, job: Job, settings: Settings) -> RQJob:
    """Enqueue `run_job(job.id)` with the RQ job id equal to ours, so re-enqueueing the same job is idempotent."""
    n = settings.rq_retries
    retry = Retry(max=n, interval=[5, 30, 120][:n]) if n else None
    return queue.enqueue(
        RUN_JOB,
        job.id,
        job_id=job.id,
        job_timeout=job_timeout_s(settings, job.kind),
        result_ttl=settings.rq_result_ttl_s,
        ttl=settings.rq_queued_ttl_s,
        failure_ttl=settings.rq_result_ttl_s,
        retry=retry,
        description=f"{job.kind} {job.id}",
    )
