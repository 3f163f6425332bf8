"""GET /v1/jobs (pagination with totals, filters), GET /v1/jobs/{id}, DELETE /v1/jobs/{id} (cancel + artifacts)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rq.job import Job as RQJob
from rq.job import JobStatus as RQStatus
from sqlmodel import Session

from voicereel.db.models import Job, JobStatus
from voicereel.db.session import session_scope

pytestmark = pytest.mark.anyio


async def submit(gateway, key, speaker_id: str, text: str = "Hello.") -> str:
    response = await gateway.request(
        "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": speaker_id, "text": text}]}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


async def test_pages_with_totals_newest_first(gateway) -> None:
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    ids = [await submit(gateway, key, speaker_id, f"Line {i}.") for i in range(5)]
    seen, cursor, totals = [], None, set()
    while True:
        path = "/v1/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await gateway.request("GET", path, key)).json()
        totals.add(page["total"])
        assert page["limit"] == 2 and len(page["data"]) <= 2
        seen += [job["id"] for job in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert totals == {5}
    assert seen == list(reversed(ids))


async def test_filters_and_bad_query_parameters(gateway, error_code) -> None:
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    await submit(gateway, key, speaker_id)
    queued = (await gateway.request("GET", "/v1/jobs?status=queued&kind=synthesize", key)).json()
    assert queued["total"] == 1
    assert (await gateway.request("GET", "/v1/jobs?status=succeeded", key)).json()["total"] == 0
    for query in ["limit=0", "limit=101", "limit=abc", "status=done", "cursor=job_x", "bogus=1", "limit=1&limit=2"]:
        response = await gateway.request("GET", f"/v1/jobs?{query}", key)
        assert response.status_code == 400, query
        assert error_code(response) == "INVALID_INPUT"


async def test_show_a_job(gateway) -> None:
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    job_id = await submit(gateway, key, speaker_id, "Twelve chars")
    job = (await gateway.request("GET", f"/v1/jobs/{job_id}", key)).json()
    assert job["id"] == job_id and job["kind"] == "synthesize" and job["status"] == "queued"
    assert job["characters"] == 12 and job["progress"] == 0.0
    assert job["audio_url"] is None and job["captions"] is None and job["error"] is None
    assert job["output_format"] == "wav" and job["sample_rate"] == 44100 and job["caption_format"] == "json"
    assert job["created_at"].endswith(("Z", "+00:00"))


async def test_unknown_ids_are_404(gateway, error_code) -> None:
    key = gateway.new_key()
    for job_id in [
        "job_00000000000000000000000000",
        "nope",
        "job_'; DROP TABLE job; --",
        "spk_00000000000000000000000000",
    ]:
        for method in ("GET", "DELETE"):
            response = await gateway.request(method, f"/v1/jobs/{job_id}", key)
            assert response.status_code == 404, (method, job_id)
            assert error_code(response) == "NOT_FOUND"


async def test_delete_cancels_a_queued_job(gateway) -> None:
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    job_id = await submit(gateway, key, speaker_id)
    response = await gateway.request("DELETE", f"/v1/jobs/{job_id}", key)
    assert response.status_code == 204 and response.content == b""
    shown = (await gateway.request("GET", f"/v1/jobs/{job_id}", key)).json()
    assert shown["status"] == "canceled" and shown["finished_at"] is not None
    assert RQJob.fetch(job_id, connection=gateway.services.redis_sync).get_status() == RQStatus.CANCELED
    assert job_id not in gateway.services.queue.get_job_ids()
    # Deleting again is harmless.
    assert (await gateway.request("DELETE", f"/v1/jobs/{job_id}", key)).status_code == 204


async def test_canceling_gives_the_characters_back(gateway, error_code) -> None:
    key = gateway.new_key(monthly_quota_chars=10)
    speaker_id = gateway.add_speaker(key)
    job_id = await submit(gateway, key, speaker_id, text="12345678")
    refused = await gateway.request(
        "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": speaker_id, "text": "12345678"}]}
    )
    assert error_code(refused) == "QUOTA_EXCEEDED"
    assert (await gateway.request("DELETE", f"/v1/jobs/{job_id}", key)).status_code == 204
    assert (await gateway.request("DELETE", f"/v1/jobs/{job_id}", key)).status_code == 204  # no second refund
    usage = (await gateway.request("GET", "/v1/usage", key)).json()
    assert usage["quota"]["used_chars"] == 0
    await submit(gateway, key, speaker_id, text="12345678")


async def test_failed_and_canceled_jobs_are_left_out_when_the_counter_is_rebuilt(gateway) -> None:
    """The database is the truth: with the Redis counter gone, only jobs that may still deliver count."""
    key = gateway.new_key(monthly_quota_chars=100)
    speaker_id = gateway.add_speaker(key)
    kept = await submit(gateway, key, speaker_id, text="a" * 10)
    failed = await submit(gateway, key, speaker_id, text="b" * 20)
    canceled = await submit(gateway, key, speaker_id, text="c" * 40)
    with session_scope(gateway.services.engine) as session:
        for job_id, status in ((failed, JobStatus.failed), (canceled, JobStatus.canceled)):
            row = session.get(Job, job_id)
            assert row is not None
            row.status = status
            session.add(row)
    for name in gateway.services.redis_sync.scan_iter(f"vr:quota:{key.key_id}:*"):
        gateway.services.redis_sync.delete(name)
    usage = (await gateway.request("GET", "/v1/usage", key)).json()
    assert usage["quota"]["used_chars"] == 10, kept
    await submit(gateway, key, speaker_id, text="d" * 90)


async def test_delete_of_a_finished_job_removes_its_artifacts(gateway) -> None:
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    job_id = await submit(gateway, key, speaker_id)
    storage = gateway.services.storage
    audio_key = f"jobs/{key.project_id}/{job_id}/audio.wav"
    caption_key = f"jobs/{key.project_id}/{job_id}/captions.json"
    storage.put_bytes(audio_key, b"RIFF....WAVE", "audio/wav")
    storage.put_bytes(caption_key, b"[]", "application/json")
    with session_scope(gateway.services.engine) as session:
        job = session.get(Job, job_id)
        job.status, job.progress, job.finished_at = JobStatus.succeeded, 1.0, datetime.now(UTC)
        job.result = {"audio_key": audio_key, "caption_key": caption_key, "duration_s": 1.0, "captions": []}
        session.add(job)
    shown = (await gateway.request("GET", f"/v1/jobs/{job_id}", key)).json()
    assert shown["audio_url"] and shown["caption_url"]
    assert (await gateway.request("DELETE", f"/v1/jobs/{job_id}", key)).status_code == 204
    assert not storage.exists(audio_key) and not storage.exists(caption_key)
    shown = (await gateway.request("GET", f"/v1/jobs/{job_id}", key)).json()
    assert shown["status"] == "expired" and shown["audio_url"] is None
    with Session(gateway.services.engine) as session:
        assert session.get(Job, job_id).expires_at is not None
