"""Idempotency-Key on POSTs: same key and body -> the same response (one job), same key with another body -> 422,
while the first is still in flight -> 409; errors are not remembered."""

from __future__ import annotations

import anyio
import pytest
from sqlmodel import Session, func, select

from voicereel.db.models import Job

pytestmark = pytest.mark.anyio


def jobs_of(gateway, project_id: str) -> int:
    with Session(gateway.services.engine) as session:
        return int(session.exec(select(func.count()).select_from(Job).where(Job.project_id == project_id)).one())


async def test_same_key_same_body_replays_the_first_response(gateway) -> None:
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    body = {"script": [{"speaker_id": speaker_id, "text": "Once."}]}
    headers = {"Idempotency-Key": "order-42"}
    first = await gateway.request("POST", "/v1/synthesize", key, json=body, headers=headers)
    second = await gateway.request("POST", "/v1/synthesize", key, json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.content == second.content
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["location"] == first.headers["location"]
    assert jobs_of(gateway, key.project_id) == 1
    # Another project may use the same key string independently.
    other = gateway.new_key()
    other_speaker = gateway.add_speaker(other)
    third = await gateway.request(
        "POST",
        "/v1/synthesize",
        other,
        json={"script": [{"speaker_id": other_speaker, "text": "Once."}]},
        headers=headers,
    )
    assert third.status_code == 202 and third.json()["job_id"] != first.json()["job_id"]


async def test_same_key_different_body_is_422(gateway, error_code) -> None:
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    headers = {"Idempotency-Key": "order-43"}
    first = await gateway.request(
        "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": speaker_id, "text": "A."}]}, headers=headers
    )
    assert first.status_code == 202
    second = await gateway.request(
        "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": speaker_id, "text": "B."}]}, headers=headers
    )
    assert second.status_code == 422
    assert error_code(second) == "UNPROCESSABLE"
    assert jobs_of(gateway, key.project_id) == 1


async def test_in_flight_duplicate_is_409(gateway, error_code) -> None:
    """The first request holds the key while it waits (Prefer: wait) for a job that does not finish."""
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    body = {"script": [{"speaker_id": speaker_id, "text": "Slow."}]}
    results = {}

    async def first() -> None:
        results["first"] = await gateway.request(
            "POST", "/v1/synthesize", key, json=body, headers={"Idempotency-Key": "order-44", "Prefer": "wait=2"}
        )

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(first)
        await anyio.sleep(0.5)
        duplicate = await gateway.request(
            "POST", "/v1/synthesize", key, json=body, headers={"Idempotency-Key": "order-44"}
        )
    assert duplicate.status_code == 409
    assert error_code(duplicate) == "CONFLICT"
    assert results["first"].status_code == 202
    # Once the first has answered, the duplicate gets its response.
    replay = await gateway.request("POST", "/v1/synthesize", key, json=body, headers={"Idempotency-Key": "order-44"})
    assert replay.status_code == 202 and replay.content == results["first"].content


async def test_errors_are_not_remembered(gateway) -> None:
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    headers = {"Idempotency-Key": "order-45"}
    bad = await gateway.request("POST", "/v1/synthesize", key, json={"script": []}, headers=headers)
    assert bad.status_code == 400
    good = await gateway.request(
        "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": speaker_id, "text": "Fixed."}]}, headers=headers
    )
    assert good.status_code == 202


@pytest.mark.parametrize("value", ["", "has space", "x" * 256, "tab\tin"])
async def test_malformed_keys_are_400(gateway, error_code, value: str) -> None:
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    response = await gateway.request(
        "POST",
        "/v1/synthesize",
        key,
        json={"script": [{"speaker_id": speaker_id, "text": "x"}]},
        headers={"Idempotency-Key": value},
    )
    assert response.status_code == 400
    assert error_code(response) == "INVALID_INPUT"


async def test_a_retry_encoded_differently_is_the_same_request(gateway, audio) -> None:
    """Key order and whitespace in JSON, the multipart boundary: encoding details, not a different request."""
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    compact = b'{"script":[{"speaker_id":"%s","text":"Hi."}]}' % speaker_id.encode()
    spaced = (
        b'{ "script" : [ { "text" : "Hi.", "speaker_id" : "%s" } ] , "output_format": "wav" }' % speaker_id.encode()
    )
    headers = {"Idempotency-Key": "same-json", "Content-Type": "application/json"}
    first = await gateway.request("POST", "/v1/synthesize", key, content=compact, headers=headers)
    second = await gateway.request("POST", "/v1/synthesize", key, content=spaced, headers=headers)
    assert first.status_code == second.status_code == 202 and first.content == second.content

    clip = audio.encode(audio.tone(31.0, 8000), 8000, "FLAC")
    form = {
        "data": {"name": "V", "lang": "en", "reference_script": "t"},
        "files": {"reference_audio": ("v.flac", clip)},
    }
    one = await gateway.request("POST", "/v1/speakers", key, headers={"Idempotency-Key": "same-form"}, **form)
    two = await gateway.request("POST", "/v1/speakers", key, headers={"Idempotency-Key": "same-form"}, **form)
    assert one.status_code == two.status_code == 202 and one.content == two.content
    assert two.headers["idempotent-replayed"] == "true"
