"""POST /v1/synthesize: the whole script is validated before anything is queued; the job row is written first,
then the RQ job (same id); quota; Prefer: wait."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue
from rq.job import Job as RQJob
from sqlmodel import Session, func, select

from voicereel.db.models import Job, JobStatus, SpeakerStatus
from voicereel.db.session import session_scope
from voicereel.jobqueue import RUN_JOB

pytestmark = pytest.mark.anyio


def job_count(gateway, project_id: str) -> int:
    with Session(gateway.services.engine) as session:
        return int(session.exec(select(func.count()).select_from(Job).where(Job.project_id == project_id)).one())


async def test_accepted_job_is_in_the_database_and_in_rq(gateway) -> None:
    key = gateway.new_key()
    alice, bob = gateway.add_speaker(key, name="Alice"), gateway.add_speaker(key, name="Bob")
    body = {
        "script": [
            {"speaker_id": alice, "text": "Good morning.", "pause_after_ms": 500},
            {"speaker_id": bob, "text": "Morning! Coffee?", "temperature": 0.7},
        ],
        "output_format": "flac",
        "sample_rate": 24000,
        "caption_format": "vtt",
    }
    response = await gateway.request("POST", "/v1/synthesize", key, json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert response.json() == {"job_id": job_id, "status": "queued"}
    assert response.headers["location"] == f"/v1/jobs/{job_id}"
    with Session(gateway.services.engine) as session:
        row = session.get(Job, job_id)
    assert row is not None and row.status is JobStatus.queued and row.kind == "synthesize"
    assert row.api_key_id == key.key_id and row.project_id == key.project_id
    assert row.characters == len("Good morning.") + len("Morning! Coffee?")
    assert row.request["script"][1]["temperature"] == 0.7 and row.request["output_format"] == "flac"
    rq_job = RQJob.fetch(job_id, connection=gateway.services.redis_sync)
    assert rq_job.func_name == RUN_JOB and rq_job.args == (job_id,)
    assert job_id in gateway.services.queue.get_job_ids()


async def test_job_row_is_kept_when_the_enqueue_fails(gateway, monkeypatch) -> None:
    """The database is written first; if Redis refuses the enqueue, the job stays queued for the reconciler."""
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    dead = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr(gateway.services, "queue", Queue("voicereel", connection=dead))
    response = await gateway.request(
        "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": speaker_id, "text": "x"}]}
    )
    assert response.status_code == 202
    with Session(gateway.services.engine) as session:
        assert session.get(Job, response.json()["job_id"]).status is JobStatus.queued


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"script": []}, 400),
        ({"script": [{"speaker_id": "SPEAKER", "text": "hi"}]}, 404),
        ({"script": [{"speaker_id": "spk_00000000000000000000000000", "text": "hi"}]}, 404),
        ({"script": [{"speaker_id": "@ready", "text": ""}]}, 400),
        ({"script": [{"speaker_id": "@ready", "text": "   \n"}]}, 400),
        ({"script": [{"speaker_id": "@ready", "text": "hi", "volume": 11}]}, 400),
        ({"script": [{"speaker_id": "@ready", "text": "hi"}], "output_format": "aiff"}, 400),
        ({"script": [{"speaker_id": "@ready", "text": "hi"}], "sample_rate": 12345}, 400),
        ({"script": [{"speaker_id": "@ready", "text": "hi"}], "output_format": "ogg", "sample_rate": 44100}, 400),
        ({"script": [{"speaker_id": "@ready", "text": "hi"}], "caption_format": "ass"}, 400),
        ({"script": [{"speaker_id": "@ready", "text": "hi", "temperature": 0}]}, 400),
        ({"script": [{"speaker_id": "@ready", "text": "x" * 2001}]}, 400),
        ({"script": [{"speaker_id": "@ready", "text": "hi"}] * 501}, 400),
        ({"script": [{"speaker_id": "@ready", "text": "hi"}, {"speaker_id": "@pending", "text": "yo"}]}, 409),
        ({"script": [{"speaker_id": "@failed", "text": "hi"}]}, 409),
        ({"script": [{"speaker_id": "@ready", "text": "nul \u0000 byte"}]}, 400),
        ({"script": "not a list"}, 400),
        ([1, 2, 3], 400),
    ],
)
async def test_invalid_scripts_queue_nothing(gateway, error_code, body, status: int) -> None:
    key = gateway.new_key()
    ids = {f"@{s.value}": gateway.add_speaker(key, status=s) for s in SpeakerStatus}

    def resolve(value):
        if isinstance(value, dict):
            return {k: ids.get(v, v) if k == "speaker_id" else resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v) for v in value]
        return value

    depth = gateway.services.queue.count
    response = await gateway.request("POST", "/v1/synthesize", key, json=resolve(body))
    assert response.status_code == status, response.text
    assert error_code(response) == {400: "INVALID_INPUT", 404: "NOT_FOUND", 409: "CONFLICT"}[status]
    assert job_count(gateway, key.project_id) == 0
    assert gateway.services.queue.count == depth


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b'{"script": [{"speaker_id": "spk_x", "text": "\\ud800"}]}', "application/json", 400),
        (b'{"script": []}', "text/plain", 415),
        (b"", "application/json", 400),
    ],
)
async def test_malformed_bodies_are_4xx(gateway, error_code, content: bytes, content_type: str, status: int) -> None:
    key = gateway.new_key()
    response = await gateway.request(
        "POST", "/v1/synthesize", key, content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == status
    error_code(response)


async def test_oversized_json_body_is_413(gateway_factory, error_code) -> None:
    async with gateway_factory(max_json_body_kb=1) as gateway:
        key = gateway.new_key()
        response = await gateway.request(
            "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": "spk_x", "text": "y" * 2000}]}
        )
    assert response.status_code == 413
    assert error_code(response) == "PAYLOAD_TOO_LARGE"


async def test_monthly_quota(gateway, error_code) -> None:
    key = gateway.new_key(monthly_quota_chars=10)
    speaker_id = gateway.add_speaker(key)
    first = await gateway.request(
        "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": speaker_id, "text": "123456"}]}
    )
    assert first.status_code == 202
    over = await gateway.request(
        "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": speaker_id, "text": "12345"}]}
    )
    assert over.status_code == 429
    assert error_code(over) == "QUOTA_EXCEEDED"
    assert over.json()["error"]["details"]["used_chars"] == 6
    fits = await gateway.request(
        "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": speaker_id, "text": "1234"}]}
    )
    assert fits.status_code == 202


async def test_quota_survives_losing_its_redis_counter(gateway) -> None:
    """The counter is seeded from the jobs table when Redis does not have it (restart, eviction)."""
    key = gateway.new_key(monthly_quota_chars=10)
    speaker_id = gateway.add_speaker(key)
    assert (
        await gateway.request(
            "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": speaker_id, "text": "12345678"}]}
        )
    ).status_code == 202
    for name in gateway.services.redis_sync.scan_iter(f"vr:quota:{key.key_id}:*"):
        gateway.services.redis_sync.delete(name)
    again = await gateway.request(
        "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": speaker_id, "text": "123"}]}
    )
    assert again.status_code == 429


async def test_prefer_wait_returns_the_finished_job(gateway) -> None:
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)

    async def finish_when_queued() -> None:
        # Plays the worker's part: the job succeeds shortly after it is queued.
        while True:
            await anyio.sleep(0.1)
            with session_scope(gateway.services.engine) as session:
                job = session.exec(select(Job).where(Job.project_id == key.project_id)).first()
                if job is None:
                    continue
                job.status = JobStatus.succeeded
                job.progress = 1.0
                job.finished_at = datetime.now(UTC)
                job.result = {
                    "audio_key": f"jobs/{key.project_id}/{job.id}/audio.wav",
                    "caption_key": f"jobs/{key.project_id}/{job.id}/captions.json",
                    "duration_s": 1.5,
                    "sample_rate": 44100,
                    "output_format": "wav",
                    "caption_format": "json",
                    "captions": [
                        {"start": 0.0, "end": 1.5, "speaker": "voice", "speaker_id": speaker_id, "text": "Hi."}
                    ],
                    "characters": 3,
                }
                session.add(job)
                return

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(finish_when_queued)
        response = await gateway.request(
            "POST",
            "/v1/synthesize",
            key,
            json={"script": [{"speaker_id": speaker_id, "text": "Hi."}]},
            headers={"Prefer": "respond-async, wait=5"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "succeeded" and body["duration_s"] == 1.5
    assert body["audio_url"] and body["captions"][0]["text"] == "Hi."
    assert response.headers["preference-applied"] == "wait=5"


async def test_prefer_wait_times_out_with_202(gateway) -> None:
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    started = anyio.current_time()
    response = await gateway.request(
        "POST",
        "/v1/synthesize",
        key,
        json={"script": [{"speaker_id": speaker_id, "text": "Hi."}]},
        headers={"Prefer": "wait=1"},
    )
    assert response.status_code == 202
    assert 0.9 <= anyio.current_time() - started < 3
