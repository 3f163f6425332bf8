import pytest
from sqlmodel import select

from voicereel.db.models import JobStatus, UsageRecord
from voicereel.db.session import session_scope
from voicereel.errors import ErrorCode
from worker import jobstate


def test_claim_counts_attempts_and_gives_up(rows, engine, wsettings) -> None:
    settings = wsettings(job_max_attempts=2)
    job = rows.job()
    first = jobstate.claim(engine, job.id, settings)
    assert first is not None and first.status == JobStatus.running and first.attempts == 1
    assert first.started_at is not None
    again = jobstate.claim(engine, job.id, settings)  # a rerun after a lost attempt
    assert again is not None and again.attempts == 2 and again.started_at == first.started_at
    given_up: list[str] = []
    assert jobstate.claim(engine, job.id, settings, on_fail=lambda j: given_up.append(j.id)) is None
    assert given_up == [job.id]  # attempts used up: failed, not run, and the caller told so
    failed = rows.get_job(job.id)
    assert failed.status == JobStatus.failed and failed.error_code == ErrorCode.INTERNAL_ERROR
    assert "interrupted 2 times" in (failed.error_message or "")


@pytest.mark.parametrize("status", [JobStatus.succeeded, JobStatus.canceled, JobStatus.failed, JobStatus.expired])
def test_finished_or_canceled_jobs_are_not_run(rows, engine, wsettings, status) -> None:
    job = rows.job(status=status)
    assert jobstate.claim(engine, job.id, wsettings()) is None
    assert rows.get_job(job.id).status == status
    assert jobstate.claim(engine, "job_does_not_exist", wsettings()) is None


def test_progress_is_the_cancellation_check(rows, engine, wsettings) -> None:
    job = rows.job()
    jobstate.claim(engine, job.id, wsettings())
    seen = []
    progress = jobstate.Progress(engine, job.id, min_interval_s=0.0, on_write=seen.append)
    progress.update(0.5)
    assert rows.get_job(job.id).progress == 0.5 and seen == [0.5]
    with session_scope(engine) as s:  # the gateway cancels
        row = s.get(type(job), job.id)
        row.status = JobStatus.canceled
        s.add(row)
    with pytest.raises(jobstate.JobStopped) as info:
        progress.update(0.6)
    assert info.value.status == JobStatus.canceled
    assert rows.get_job(job.id).progress == 0.5


def test_progress_writes_are_throttled(rows, engine, wsettings) -> None:
    job = rows.job()
    jobstate.claim(engine, job.id, wsettings())
    progress = jobstate.Progress(engine, job.id, min_interval_s=60)
    progress.update(0.1)
    progress.update(0.2)  # within the interval: skipped
    assert rows.get_job(job.id).progress == 0.1
    progress.update(0.3, force=True)
    assert rows.get_job(job.id).progress == 0.3


def test_succeed_once_with_usage_once(rows, engine, wsettings) -> None:
    settings = wsettings(artifact_ttl_h=48)
    job = jobstate.claim(engine, rows.job().id, settings)
    assert job is not None
    expires = jobstate.succeed(engine, job, {"audio_key": "k"}, settings, usage=(120, 7.5))
    assert expires is not None
    done = rows.get_job(job.id)
    assert done.status == JobStatus.succeeded and done.progress == 1.0 and done.result == {"audio_key": "k"}
    assert done.expires_at == expires and (expires - done.finished_at).total_seconds() == 48 * 3600
    # a second attempt finishing later changes nothing and counts nothing
    assert jobstate.succeed(engine, job, {"audio_key": "other"}, settings, usage=(120, 7.5)) is None
    with session_scope(engine) as s:
        usage = s.exec(select(UsageRecord).where(UsageRecord.job_id == job.id)).all()
        assert [(u.characters, u.audio_seconds) for u in usage] == [(120, 7.5)]
        # the unique constraint is the last guard: a racing insert is absorbed
        assert not jobstate.record_usage(s, job, characters=1, audio_seconds=1, when=done.finished_at)
    assert rows.get_job(job.id).result == {"audio_key": "k"}


def test_fail_only_running_jobs(rows, engine, wsettings) -> None:
    job = rows.job()
    assert not jobstate.fail(engine, job.id, ErrorCode.INVALID_INPUT, "nope")  # queued: not ours yet
    jobstate.claim(engine, job.id, wsettings())
    assert jobstate.fail(engine, job.id, ErrorCode.INVALID_INPUT, "bad line 3")
    failed = rows.get_job(job.id)
    assert (failed.status, failed.error_code, failed.error_message) == (JobStatus.failed, "INVALID_INPUT", "bad line 3")
