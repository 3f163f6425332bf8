"""RQ entry of every job: `run_job(job_id)` (what `voicereel.jobqueue.enqueue` enqueues) dispatches on Job.kind.

Outcomes:
- success: the job function wrote the result (conditionally on the job still running);
- a VoiceReelError (invalid input, insufficient reference, the engine unavailable past the retry deadline):
  the job fails with that code and message at once — retrying would not help; a failed job's characters go
  back to the key's monthly quota (voicereel.quota);
- canceled (or finished by a parallel attempt): nothing more is written;
- anything else is unexpected: the error is noted on the job and re-raised, so RQ's retry (and later the
  reconciler) runs the job again, until `job_max_attempts` runs have been used; the last one fails the job
  with INTERNAL_ERROR. Unexpected errors reach Sentry when a DSN is set.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from rq import get_current_job

from voicereel.db.models import JobKind
from voicereel.errors import ErrorCode, VoiceReelError
from voicereel.quota import give_back
from worker import jobstate
from worker.context import WorkerContext
from worker.liveness import Heartbeat
from worker.observability import capture_exception
from worker.register import register_speaker
from worker.synthesize import synthesize

log = logging.getLogger(__name__)


def _publish_meta(fraction: float) -> None:
    """Mirror progress into the RQ job's meta (for rq-dashboard); best effort, the database is the truth."""
    rq_job = get_current_job()
    if rq_job is None:
        return
    try:
        rq_job.meta["progress"] = round(fraction, 4)
        rq_job.save_meta()
    except Exception as exc:
        log.debug("could not save job meta: %s", exc)


def run_job(job_id: str) -> dict[str, Any]:
    with WorkerContext.create() as ctx:
        return _run(ctx, job_id)


def _run(ctx: WorkerContext, job_id: str) -> dict[str, Any]:
    job = jobstate.claim(ctx.engine, job_id, ctx.settings, on_fail=lambda given_up: give_back(ctx.redis, given_up))
    if job is None:
        return {"job_id": job_id, "outcome": "skipped"}
    owner = f"{socket.gethostname()}:{os.getpid()}"
    progress = jobstate.Progress(ctx.engine, job_id, on_write=_publish_meta)
    log.info("job %s (%s) attempt %d", job_id, job.kind, job.attempts)
    try:
        with Heartbeat(ctx.redis, job_id, ctx.settings.worker_heartbeat_s, owner):
            if job.kind == JobKind.register_speaker:
                register_speaker(ctx, job, progress)
            else:
                synthesize(ctx, job, progress)
    except jobstate.JobStopped as stopped:
        log.info("job %s stopped: %s", job_id, stopped)
        return {"job_id": job_id, "outcome": f"stopped ({stopped.status})"}
    except VoiceReelError as exc:
        log.warning("job %s failed: %s", job_id, exc)
        if jobstate.fail(ctx.engine, job_id, exc.code, exc.message):
            give_back(ctx.redis, job)
        return {"job_id": job_id, "outcome": "failed", "error_code": str(exc.code)}
    except Exception as exc:
        capture_exception(exc)
        summary = f"{exc.__class__.__name__}: {exc}"
        if job.attempts >= ctx.settings.job_max_attempts:
            log.exception("job %s failed on its last attempt", job_id)
            if jobstate.fail(ctx.engine, job_id, ErrorCode.INTERNAL_ERROR, f"internal error: {summary}"):
                give_back(ctx.redis, job)
            return {"job_id": job_id, "outcome": "failed", "error_code": ErrorCode.INTERNAL_ERROR.value}
        log.exception("job %s attempt %d failed; it will be retried", job_id, job.attempts)
        jobstate.note_error(ctx.engine, job_id, summary)
        raise
    _publish_meta(1.0)
    return {"job_id": job_id, "outcome": "succeeded"}
