"""register_speaker's failure paths, which end before Triton (the success path runs in test_e2e.py)."""

import io

import numpy as np
import soundfile as sf

from voicereel.db.models import JobKind, JobStatus, SpeakerStatus
from voicereel.errors import ErrorCode
from voicereel.storage.keys import upload_key
from worker.jobs import _run
from worker.register import codes_from_bytes, codes_to_bytes


def _wav(seconds: float, rate: int = 16000) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    sf.write(buf, (rng.standard_normal(int(seconds * rate)) * 0.1).astype(np.float32), rate, format="WAV")
    return buf.getvalue()


def _register(ctx, rows, upload: bytes | None):
    speaker = rows.speaker(reference_text="Some words.")
    if upload is not None:
        ctx.storage.put_bytes(upload_key(rows.project_id, speaker.id), upload, "audio/wav")
    job = rows.job(JobKind.register_speaker, {"speaker_id": speaker.id})
    outcome = _run(ctx, job.id)
    return outcome, rows.get_job(job.id), rows.get_speaker(speaker.id)


def test_short_reference_is_insufficient(ctx, rows) -> None:
    outcome, job, speaker = _register(ctx, rows, _wav(2.0))
    assert outcome["outcome"] == "failed"
    assert job.status == JobStatus.failed and job.error_code == ErrorCode.INSUFFICIENT_REF
    assert "2.0 s long" in (job.error_message or "")
    assert speaker.status == SpeakerStatus.failed and "INSUFFICIENT_REF" in (speaker.error or "")
    assert speaker.quality and speaker.quality["duration_s"] == 2.0 and speaker.quality["source_sample_rate"] == 16000


def test_undecodable_and_missing_uploads(ctx, rows) -> None:
    _, job, speaker = _register(ctx, rows, b"not audio" * 100)
    assert job.error_code == ErrorCode.UNSUPPORTED_MEDIA_TYPE and speaker.status == SpeakerStatus.failed
    _, job, speaker = _register(ctx, rows, None)
    assert job.error_code == ErrorCode.INVALID_INPUT and "missing" in (job.error_message or "")


def test_unknown_speaker_fails_the_job(ctx, rows) -> None:
    job = rows.job(JobKind.register_speaker, {"speaker_id": "spk_nope"})
    _run(ctx, job.id)
    assert rows.get_job(job.id).error_code == ErrorCode.NOT_FOUND


def test_codes_round_trip() -> None:
    codes = np.arange(40, dtype=np.int32).reshape(10, 4)
    assert np.array_equal(codes_from_bytes(codes_to_bytes(codes)), codes)
