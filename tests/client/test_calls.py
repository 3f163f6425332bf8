"""Client-side validation: bad input is refused before any request is built, with a message that says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicereel.client import calls
from voicereel.client.errors import InvalidRequestError

SPK = "spk_01jd0000000000000000000000"
JOB = "job_01jd0000000000000000000000"


@pytest.mark.parametrize(
    "bad", ["", "spk_1", "job_01jd0000000000000000000000", "spk_../../v1/usage", "SPK_01JD0000000000000000000000"]
)
def test_speaker_ids_are_checked(bad: str) -> None:
    with pytest.raises(InvalidRequestError, match="speaker_id must look like 'spk_'"):
        calls.get_speaker(bad)
    with pytest.raises(InvalidRequestError):
        calls.delete_speaker(bad)


def test_job_ids_are_checked() -> None:
    assert calls.get_job(JOB).path == f"/v1/jobs/{JOB}"
    with pytest.raises(InvalidRequestError, match="job_id"):
        calls.cancel_job(SPK)


def test_paging_and_month_are_checked() -> None:
    assert dict(calls.list_jobs(limit=5, cursor=JOB, status="queued", kind="synthesize").params) == {
        "limit": 5,
        "cursor": JOB,
        "status": "queued",
        "kind": "synthesize",
    }
    with pytest.raises(InvalidRequestError, match="limit"):
        calls.list_speakers(limit=0)
    with pytest.raises(InvalidRequestError, match="limit"):
        calls.list_speakers(limit=101)
    with pytest.raises(InvalidRequestError, match="cursor"):
        calls.list_jobs(cursor="page2")
    with pytest.raises(InvalidRequestError, match="YYYY-MM"):
        calls.get_usage(month="2025-13")


def test_synthesis_requests_are_validated_with_the_shared_model() -> None:
    call = calls.synthesize({"script": [{"speaker_id": SPK, "text": "Hi"}], "output_format": "mp3"})
    assert call.method == "POST" and call.needs_idempotency_key
    assert call.body.content_type == "application/json"
    with pytest.raises(InvalidRequestError, match="invalid synthesis request"):
        calls.synthesize({"script": []})
    with pytest.raises(InvalidRequestError, match="invalid synthesis request"):
        calls.synthesize({"script": [{"speaker_id": SPK, "text": "   "}]})
    with pytest.raises(InvalidRequestError, match="script speaker_id"):
        calls.synthesize({"script": [{"speaker_id": "alice", "text": "Hi"}]})


def test_speaker_form_is_checked_before_reading_audio(tmp_path: Path) -> None:
    wav = tmp_path / "ref.wav"
    wav.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    with pytest.raises(InvalidRequestError, match="ISO 639-1"):
        calls.create_speaker(name="A", lang="english", reference_audio=wav, reference_script="hi")
    with pytest.raises(InvalidRequestError, match="name"):
        calls.create_speaker(name=" ", lang="en", reference_audio=wav, reference_script="hi")
    with pytest.raises(InvalidRequestError, match="transcript"):
        calls.create_speaker(name="A", lang="en", reference_audio=wav, reference_script="")
    call = calls.create_speaker(name="A", lang="en", reference_audio=wav, reference_script="hi")
    assert call.body.content_type is not None and call.body.content_type.startswith("multipart/form-data; boundary=")
    assert b'name="reference_audio"; filename="ref.wav"' in call.body.content
    assert b"Content-Type: audio/wav" in call.body.content
