"""POST/GET/DELETE /v1/speakers through the API: a valid espeak-ng reference is stored and queued; every invalid
upload is a 4xx with the envelope and leaves nothing behind (no stored bytes, no rows, no RQ job)."""

from __future__ import annotations

import numpy as np
import pytest
from rq.job import Job as RQJob
from sqlmodel import Session, func, select

from voicereel.db.models import Job, JobKind, Speaker
from voicereel.jobqueue import RUN_JOB

pytestmark = pytest.mark.anyio


def rows(gateway, project_id: str) -> tuple[int, int]:
    with Session(gateway.services.engine) as session:
        speakers = session.exec(select(func.count()).select_from(Speaker).where(Speaker.project_id == project_id)).one()
        jobs = session.exec(select(func.count()).select_from(Job).where(Job.project_id == project_id)).one()
    return int(speakers), int(jobs)


def stored_files(gateway, project_id: str) -> list[str]:
    root = gateway.settings.storage_dir / "uploads" / project_id
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def test_registration_stores_then_queues(gateway, speech_reference) -> None:
    key = gateway.new_key()
    audio_bytes, transcript = speech_reference
    response = await gateway.request(
        "POST",
        "/v1/speakers",
        key,
        data={"name": "Narrator", "lang": "en", "reference_script": transcript},
        files={"reference_audio": ("narrator.wav", audio_bytes, "audio/wav")},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    speaker_id, job_id = body["speaker_id"], body["job_id"]
    assert response.headers["location"] == f"/v1/speakers/{speaker_id}"
    storage = gateway.services.storage
    upload_key = f"uploads/{key.project_id}/{speaker_id}/reference"
    assert storage.get_bytes(upload_key) == audio_bytes
    with Session(gateway.services.engine) as session:
        speaker = session.get(Speaker, speaker_id)
        job = session.get(Job, job_id)
    assert speaker.status == "pending" and speaker.reference_text == transcript and speaker.reference_key == upload_key
    assert speaker.duration_s >= 31
    assert job.kind is JobKind.register_speaker and job.request == {"speaker_id": speaker_id}
    rq_job = RQJob.fetch(job_id, connection=gateway.services.redis_sync)
    assert rq_job.func_name == RUN_JOB and rq_job.args == (job_id,)

    shown = (await gateway.request("GET", f"/v1/speakers/{speaker_id}", key)).json()
    assert shown["status"] == "pending" and shown["name"] == "Narrator" and shown["lang"] == "en"
    job_view = (await gateway.request("GET", f"/v1/jobs/{job_id}", key)).json()
    assert job_view["kind"] == "register_speaker" and job_view["speaker_id"] == speaker_id

    listing = (await gateway.request("GET", "/v1/speakers?status=pending", key)).json()
    assert listing["total"] == 1 and listing["data"][0]["id"] == speaker_id

    assert (await gateway.request("DELETE", f"/v1/speakers/{speaker_id}", key)).status_code == 204
    assert not storage.exists(upload_key)
    assert (await gateway.request("GET", f"/v1/speakers/{speaker_id}", key)).status_code == 404


def _bomb(audio) -> bytes:
    return audio.encode(np.full(700 * 16000, 0.25, dtype=np.float32), 16000, "FLAC")


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("non_audio_named_wav", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("truncated_wav", 422, "INSUFFICIENT_REF"),
        ("short", 422, "INSUFFICIENT_REF"),
        ("silent", 422, "INSUFFICIENT_REF"),
        ("bomb", 413, "PAYLOAD_TOO_LARGE"),
        ("corrupt_wav", 400, "INVALID_INPUT"),
        ("no_transcript", 400, "INVALID_INPUT"),
        ("blank_transcript", 400, "INVALID_INPUT"),
        ("unsupported_lang", 400, "INVALID_INPUT"),
        ("bad_lang", 400, "INVALID_INPUT"),
        ("no_name", 400, "INVALID_INPUT"),
        ("no_file", 400, "INVALID_INPUT"),
        ("empty_file", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("json_body", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ("truncated_multipart", 400, "INVALID_INPUT"),
        ("nul_in_name", 400, "INVALID_INPUT"),
    ],
)
async def test_invalid_uploads_leave_nothing_behind(gateway, error_code, audio, speech_reference, case, status, code):
    key = gateway.new_key()
    good, transcript = speech_reference
    fields = {"name": "Voice", "lang": "en", "reference_script": transcript}
    files = {"reference_audio": ("voice.wav", good, "audio/wav")}
    kwargs: dict = {}
    if case == "non_audio_named_wav":
        files = {"reference_audio": ("voice.wav", b"%PDF-1.7\n" + b"x" * 5000, "audio/wav")}
    elif case == "truncated_wav":  # header promises more than the file holds: what is there is too short
        files = {"reference_audio": ("voice.wav", good[: len(good) // 4], "audio/wav")}
    elif case == "short":
        files = {"reference_audio": ("voice.wav", audio.encode(audio.tone(10.0), 16000, "WAV"), "audio/wav")}
    elif case == "silent":
        files = {
            "reference_audio": ("voice.wav", audio.encode(np.zeros(16000 * 40, np.float32), 16000, "WAV"), "audio/wav")
        }
    elif case == "bomb":
        files = {"reference_audio": ("voice.flac", _bomb(audio), "audio/flac")}
    elif case == "corrupt_wav":
        files = {"reference_audio": ("voice.wav", b"RIFF\x10\x00\x00\x00WAVE" + b"\x00" * 64, "audio/wav")}
    elif case == "no_transcript":
        del fields["reference_script"]
    elif case == "blank_transcript":
        fields["reference_script"] = "   "
    elif case == "unsupported_lang":
        fields["lang"] = "xx"
    elif case == "bad_lang":
        fields["lang"] = "english"
    elif case == "no_name":
        del fields["name"]
    elif case == "no_file":
        files = {}
    elif case == "empty_file":
        files = {"reference_audio": ("voice.wav", b"", "audio/wav")}
    elif case == "nul_in_name":
        fields["name"] = "bad\x00name"
    if case == "json_body":
        kwargs = {"json": fields}
    elif case == "no_file":  # multipart with the text fields only
        parts = b"".join(
            f'--b0\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()
        )
        kwargs = {"content": parts + b"--b0--\r\n", "headers": {"Content-Type": "multipart/form-data; boundary=b0"}}
    elif case == "truncated_multipart":
        request = gateway.client.build_request("POST", "/v1/speakers", data=fields, files=files)
        body = request.read()
        kwargs = {"content": body[: len(body) // 2], "headers": {"Content-Type": request.headers["content-type"]}}
    else:
        kwargs = {"data": fields, "files": files} if files else {"data": fields}
    response = await gateway.request("POST", "/v1/speakers", key, **kwargs)
    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert rows(gateway, key.project_id) == (0, 0)
    assert stored_files(gateway, key.project_id) == []


async def test_upload_over_the_cap_is_413(gateway, error_code) -> None:
    """A 31 MB file against the default 30 MB cap: refused, nothing stored."""
    key = gateway.new_key()
    big = b"RIFF" + b"\x00" * (31 * 1024 * 1024)
    response = await gateway.request(
        "POST",
        "/v1/speakers",
        key,
        data={"name": "Big", "lang": "en", "reference_script": "text"},
        files={"reference_audio": ("big.wav", big, "audio/wav")},
    )
    assert response.status_code == 413
    assert error_code(response) == "PAYLOAD_TOO_LARGE"
    assert rows(gateway, key.project_id) == (0, 0)
    assert stored_files(gateway, key.project_id) == []


@pytest.mark.parametrize("isolated", [True, False], ids=["probe-in-child", "probe-in-process"])
async def test_minimum_reference_length_is_a_setting(gateway_factory, audio, isolated: bool) -> None:
    async with gateway_factory(min_reference_s=5, probe_isolated=isolated) as gateway:
        key = gateway.new_key()

        async def upload(seconds: float, name: str, script: str):
            clip = audio.encode(audio.tone(seconds), 16000, "FLAC")
            return await gateway.request(
                "POST",
                "/v1/speakers",
                key,
                data={"name": name, "lang": "ko", "reference_script": script},
                files={"reference_audio": ("s.flac", clip, "audio/flac")},
            )

        response = await upload(6.0, "Short", "안녕하세요")
        refused = await upload(4.0, "Shorter", "안녕")
    assert response.status_code == 202, response.text
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "INSUFFICIENT_REF"


async def test_list_pages_and_unknown_ids(gateway, error_code) -> None:
    key = gateway.new_key()
    made = [gateway.add_speaker(key, name=f"v{i}") for i in range(3)]
    page = (await gateway.request("GET", "/v1/speakers?limit=2", key)).json()
    assert page["total"] == 3 and len(page["data"]) == 2 and page["next_cursor"] == page["data"][-1]["id"]
    rest = (await gateway.request("GET", f"/v1/speakers?limit=2&cursor={page['next_cursor']}", key)).json()
    assert [s["id"] for s in page["data"] + rest["data"]] == list(reversed(made))
    assert rest["next_cursor"] is None
    for bad in ["spk_00000000000000000000000000", "not-an-id", "job_00000000000000000000000000"]:
        response = await gateway.request("GET", f"/v1/speakers/{bad}", key)
        assert response.status_code == 404
        assert error_code(response) == "NOT_FOUND"
