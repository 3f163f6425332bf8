from datetime import UTC, datetime, timedelta

from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from rq.registry import FailedJobRegistry

from voicereel.db.models import JobKind, JobStatus
from voicereel.errors import ErrorCode
from voicereel.jobqueue import enqueue, make_queue
from voicereel.quota import charge_of
from worker.liveness import Heartbeat
from worker.reconciler import LOCK_KEY, reconcile_once

OLD = datetime.now(UTC) - timedelta(minutes=10)


def _rq_status(ctx, job_id: str) -> RQStatus | None:
    try:
        return RQJob.fetch(job_id, connection=ctx.redis).get_status()
    except Exception:
        return None


def test_lost_jobs_are_re_enqueued_and_young_ones_left_to_the_gateway(ctx, rows) -> None:
    lost = rows.job(created_at=OLD)
    lost_running = rows.job(status=JobStatus.running, attempts=1, created_at=OLD)
    young = rows.job()  # the gateway may be enqueueing it right now
    report = reconcile_once(ctx)
    assert sorted(report.requeued) == sorted([lost.id, lost_running.id])
    assert _rq_status(ctx, lost.id) == RQStatus.QUEUED
    assert _rq_status(ctx, young.id) is None
    rq_job = RQJob.fetch(lost.id, connection=ctx.redis)
    assert rq_job.func_name == "worker.jobs.run_job" and rq_job.args == (lost.id,)
    assert rq_job.timeout and rq_job.result_ttl and rq_job.ttl  # always set
    assert reconcile_once(ctx).requeued == []  # now RQ has them: nothing to do


def test_failed_and_abandoned_rq_jobs_are_re_enqueued(ctx, rows) -> None:
    queue = make_queue(ctx.redis, ctx.settings)
    failed = rows.job(status=JobStatus.running, attempts=1, created_at=OLD)
    enqueue(queue, failed, ctx.settings)
    rq_failed = RQJob.fetch(failed.id, connection=ctx.redis)
    FailedJobRegistry(queue=queue).add(rq_failed, exc_string="Work-horse terminated unexpectedly")
    rq_failed.set_status(RQStatus.FAILED)

    abandoned = rows.job(status=JobStatus.running, attempts=1, created_at=OLD)
    alive = rows.job(status=JobStatus.running, attempts=1, created_at=OLD)
    for job in (abandoned, alive):
        enqueue(queue, job, ctx.settings)
        rq_job = RQJob.fetch(job.id, connection=ctx.redis)
        rq_job.started_at = OLD
        rq_job.set_status(RQStatus.STARTED)
        rq_job.save()

    with Heartbeat(ctx.redis, alive.id, interval_s=5):
        report = reconcile_once(ctx)
    assert sorted(report.requeued) == sorted([failed.id, abandoned.id])
    assert _rq_status(ctx, failed.id) == RQStatus.QUEUED
    assert failed.id not in FailedJobRegistry(queue=queue).get_job_ids()
    assert _rq_status(ctx, abandoned.id) == RQStatus.QUEUED
    assert _rq_status(ctx, alive.id) == RQStatus.STARTED


def test_jobs_out_of_attempts_fail_and_lose_their_artifacts(ctx, rows) -> None:
    job = rows.job(
        status=JobStatus.running,
        attempts=ctx.settings.job_max_attempts,
        created_at=OLD,
        characters=9,
        api_key_id=rows.key_id,
    )
    key = f"jobs/{rows.project_id}/{job.id}/audio.wav"
    ctx.storage.put_bytes(key, b"partial", "audio/wav")
    counter, _ = charge_of(job) or ("", 0)
    ctx.redis.set(counter, 10)
    report = reconcile_once(ctx)
    assert int(ctx.redis.get(counter) or -1) == 1  # its characters went back to the quota
    ctx.redis.delete(counter)
    assert report.failed == [job.id] and report.requeued == []
    failed = rows.get_job(job.id)
    assert failed.status == JobStatus.failed and failed.error_code == ErrorCode.INTERNAL_ERROR
    assert "giving up" in (failed.error_message or "")
    assert not ctx.storage.exists(key)


def test_finished_jobs_are_not_touched(ctx, rows) -> None:
    for status in (JobStatus.succeeded, JobStatus.failed, JobStatus.canceled, JobStatus.expired):
        rows.job(status=status, created_at=OLD, kind=JobKind.register_speaker)
    report = reconcile_once(ctx)
    assert report.checked == 0 and report.requeued == []


def test_one_reconciler_at_a_time(ctx, rows) -> None:
    rows.job(created_at=OLD)
    lock = ctx.redis.lock(LOCK_KEY, timeout=30)
    assert lock.acquire(blocking=False)
    try:
        assert reconcile_once(ctx).skipped_locked
    finally:
        lock.release()
    assert not reconcile_once(ctx).skipped_locked
