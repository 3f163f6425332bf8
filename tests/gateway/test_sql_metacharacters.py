"""SQL metacharacters in every string field the API takes: stored verbatim where the field is free text, a 4xx
where it is not, never a 500, and every table still there afterwards."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import inspect
from sqlmodel import Session, func, select

from voicereel.db.models import Job, Speaker

pytestmark = pytest.mark.anyio

NASTY = [
    "'; DROP TABLE speaker; --",
    '" OR "1"="1',
    "' OR 1=1 --",
    "1; DELETE FROM job WHERE 1=1",
    "Robert'); DROP TABLE apikey;--",
    "%' AND name LIKE '%",
    "\\'; SELECT pg_sleep(5); --",
    "' UNION SELECT key_hash FROM apikey --",
    "$$; DROP TABLE job; $$",
]


def tables(gateway) -> set[str]:
    return set(inspect(gateway.services.engine).get_table_names())


async def test_free_text_is_stored_verbatim(gateway, audio) -> None:
    before = tables(gateway)
    key = gateway.new_key()
    clip = audio.encode(audio.tone(31.0, 8000), 8000, "FLAC")
    for nasty in NASTY:
        await register_and_synthesize(gateway, key, clip, nasty)
    assert tables(gateway) == before


async def register_and_synthesize(gateway, key, clip: bytes, nasty: str) -> None:
    created = await gateway.request(
        "POST",
        "/v1/speakers",
        key,
        data={"name": nasty, "lang": "en", "reference_script": nasty},
        files={"reference_audio": ("x.flac", clip, "audio/flac")},
        headers={"Idempotency-Key": nasty.replace(" ", "_")},
    )
    assert created.status_code == 202, created.text
    speaker_id = created.json()["speaker_id"]
    shown = (await gateway.request("GET", f"/v1/speakers/{speaker_id}", key)).json()
    assert shown["name"] == nasty.strip()

    ready = gateway.add_speaker(key)
    accepted = await gateway.request(
        "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": ready, "text": nasty}]}
    )
    assert accepted.status_code == 202
    with Session(gateway.services.engine) as session:
        job = session.get(Job, accepted.json()["job_id"])
        assert job.request["script"][0]["text"] == nasty
        assert session.get(Speaker, speaker_id).reference_text == nasty.strip()


async def test_identifiers_and_parameters_are_4xx(gateway) -> None:
    before = tables(gateway)
    key = gateway.new_key()
    gateway.add_speaker(key)
    for nasty in NASTY:
        await each_parameter(gateway, key, nasty)
    with Session(gateway.services.engine) as session:
        assert (
            session.exec(select(func.count()).select_from(Speaker).where(Speaker.project_id == key.project_id)).one()
            == 1
        )
    assert tables(gateway) == before


async def each_parameter(gateway, key, nasty: str) -> None:
    q = quote(nasty, safe="")
    requests = [
        ("GET", f"/v1/speakers/{q}", {}),
        ("DELETE", f"/v1/speakers/{q}", {}),
        ("GET", f"/v1/jobs/{q}", {}),
        ("DELETE", f"/v1/jobs/{q}", {}),
        ("GET", f"/v1/jobs?cursor={q}", {}),
        ("GET", f"/v1/jobs?status={q}", {}),
        ("GET", f"/v1/jobs?kind={q}", {}),
        ("GET", f"/v1/jobs?limit={q}", {}),
        ("GET", f"/v1/speakers?cursor={q}", {}),
        ("GET", f"/v1/speakers?status={q}", {}),
        ("GET", f"/v1/usage?month={q}", {}),
        ("GET", f"/v1/files/{q}?exp=1&sig={q}", {}),
        ("POST", "/v1/synthesize", {"json": {"script": [{"speaker_id": nasty, "text": "hi"}]}}),
        (
            "POST",
            "/v1/synthesize",
            {"json": {"script": [{"speaker_id": "spk_x", "text": "hi"}], "output_format": nasty}},
        ),
        (
            "POST",
            "/v1/speakers",
            {
                "data": {"name": "n", "lang": nasty, "reference_script": "t"},
                "files": {"reference_audio": ("a.wav", b"RIFF", "audio/wav")},
            },
        ),
    ]
    for method, path, kwargs in requests:
        response = await gateway.request(method, path, key, **kwargs)
        assert 400 <= response.status_code < 500, (method, path, response.status_code, response.text)
        assert set(response.json()) == {"error"}
