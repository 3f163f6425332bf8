from datetime import UTC, datetime, timedelta

from rq.registry import ScheduledJobRegistry

from voicereel.db.models import JobStatus
from worker.maintenance import maintenance_queue, schedule_sweep, sweep_job_id
from worker.sweeper import expire_one, sweep_expired

NOW = datetime.now(UTC)


def _job_with_artifacts(ctx, rows, expires_at):
    job = rows.job(status=JobStatus.succeeded, finished_at=NOW - timedelta(hours=48), expires_at=expires_at)
    for name in ("audio.mp3", "captions.vtt"):
        ctx.storage.put_bytes(f"jobs/{rows.project_id}/{job.id}/{name}", b"x", "application/octet-stream")
    return job


def test_sweep_deletes_exactly_at_expiry(ctx, rows) -> None:
    due = _job_with_artifacts(ctx, rows, NOW)
    not_yet = _job_with_artifacts(ctx, rows, NOW + timedelta(seconds=1))
    assert sweep_expired(ctx, now=NOW) == 1
    assert rows.get_job(due.id).status == JobStatus.expired
    assert not ctx.storage.exists(f"jobs/{rows.project_id}/{due.id}/audio.mp3")
    assert rows.get_job(not_yet.id).status == JobStatus.succeeded
    assert ctx.storage.exists(f"jobs/{rows.project_id}/{not_yet.id}/captions.vtt")
    assert sweep_expired(ctx, now=NOW + timedelta(seconds=1)) == 1
    assert rows.get_job(not_yet.id).status == JobStatus.expired


def test_only_succeeded_jobs_expire(ctx, rows) -> None:
    canceled = rows.job(status=JobStatus.canceled, expires_at=NOW - timedelta(hours=1))
    running = rows.job(status=JobStatus.running, expires_at=NOW - timedelta(hours=1))
    assert sweep_expired(ctx, now=NOW) == 0
    assert not expire_one(ctx, canceled.id, now=NOW) and not expire_one(ctx, running.id, now=NOW)
    assert rows.get_job(canceled.id).status == JobStatus.canceled


def test_exact_expiry_is_scheduled_in_rq(ctx, rows) -> None:
    at = NOW + timedelta(hours=48)
    schedule_sweep(ctx.redis, ctx.settings, "job_abc", at)
    schedule_sweep(ctx.redis, ctx.settings, "job_abc", at)  # idempotent: same RQ id
    registry = ScheduledJobRegistry(queue=maintenance_queue(ctx.redis, ctx.settings))
    assert registry.get_job_ids() == [sweep_job_id("job_abc")]
    assert abs(registry.get_scheduled_time(sweep_job_id("job_abc")).timestamp() - at.timestamp()) < 1
    job = maintenance_queue(ctx.redis, ctx.settings).fetch_job(sweep_job_id("job_abc"))
    assert job.func_name == "worker.sweeper.sweep_job" and job.args == ("job_abc",)
    assert job.timeout and job.result_ttl and job.ttl and job.ttl > 48 * 3600  # outlives the wait


def test_scheduled_sweep_never_runs_before_the_expiry(ctx, rows) -> None:
    # RQ keeps whole seconds; a sweep due at x.6 s must not be filed under x s (it would find nothing to expire)
    at = NOW.replace(microsecond=600_000) + timedelta(hours=48)
    schedule_sweep(ctx.redis, ctx.settings, "job_frac", at)
    registry = ScheduledJobRegistry(queue=maintenance_queue(ctx.redis, ctx.settings))
    scheduled = registry.get_scheduled_time(sweep_job_id("job_frac")).timestamp()
    assert at.timestamp() <= scheduled < at.timestamp() + 1
