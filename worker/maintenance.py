"""Queues and scheduling of the worker's maintenance jobs (sweeper, reconciler).

Maintenance jobs go to their own queue, which every worker listens to before the synthesis queue, so a backlog
of scripts never delays the reconciler or an expiry. Every enqueue sets job_timeout, result_ttl and ttl.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis import Redis
from rq import Queue

from voicereel.settings import Settings

SWEEP_JOB = "worker.sweeper.sweep_job"
MAINTENANCE_TIMEOUT_S = 300
MAINTENANCE_RESULT_TTL_S = 3600
MAINTENANCE_FAILURE_TTL_S = 86400
# A scheduled job's key lives `ttl` seconds in RQ: it must outlive the wait until its time comes.
_SCHEDULED_SLACK_S = 86400


def maintenance_queue_name(settings: Settings) -> str:
    return f"{settings.queue_name}-maintenance"


def maintenance_queue(redis: Redis, settings: Settings) -> Queue:
    return Queue(maintenance_queue_name(settings), connection=redis, default_timeout=MAINTENANCE_TIMEOUT_S)


def sweep_job_id(job_id: str) -> str:
    return f"sweep-{job_id}"


def schedule_sweep(redis: Redis, settings: Settings, job_id: str, at: datetime) -> None:
    """Enqueue `sweep_job(job_id)` at `at` through RQ's scheduler (workers run it: `with_scheduler`). The RQ id is
    derived from ours, so scheduling again replaces instead of adding."""
    wait_s = max(0.0, (at - datetime.now(UTC)).total_seconds())
    # RQ's scheduled registry keeps whole seconds (the time is truncated), so a job due at 12.6 s runs at 12 s:
    # before the expiry, when the sweep finds nothing to do. Rounding up to the next second keeps it on time.
    due = at.replace(microsecond=0) + timedelta(seconds=1) if at.microsecond else at
    maintenance_queue(redis, settings).enqueue_at(
        due,
        SWEEP_JOB,
        job_id,
        job_id=sweep_job_id(job_id),
        job_timeout=MAINTENANCE_TIMEOUT_S,
        result_ttl=MAINTENANCE_RESULT_TTL_S,
        failure_ttl=MAINTENANCE_FAILURE_TTL_S,
        ttl=int(wait_s) + _SCHEDULED_SLACK_S,
        description=f"sweep artifacts of {job_id}",
    )
