"""synthesize's checks before Triton, request building and the CPU rendering (the whole job runs in test_e2e.py)."""

import io

import numpy as np
import soundfile as sf

from voicereel.db.models import JobStatus, SpeakerStatus
from voicereel.errors import ErrorCode
from voicereel.quota import charge_of
from voicereel.schemas import SynthesisRequest
from worker.jobs import _run
from worker.synthesize import Voice, build_requests, line_seed, render_outputs


def test_speakers_must_be_ready_and_ours(ctx, rows) -> None:
    pending = rows.speaker(status=SpeakerStatus.pending)
    job = rows.job(request={"script": [{"speaker_id": pending.id, "text": "Hi."}]})
    _run(ctx, job.id)
    failed = rows.get_job(job.id)
    assert failed.status == JobStatus.failed and failed.error_code == ErrorCode.INVALID_INPUT
    assert "not ready" in (failed.error_message or "")
    job = rows.job(request={"script": [{"speaker_id": "spk_other_project", "text": "Hi."}]})
    _run(ctx, job.id)
    assert "does not exist" in (rows.get_job(job.id).error_message or "")


def test_a_failed_job_gives_its_characters_back(ctx, rows) -> None:
    job = rows.job(request={"script": []}, characters=40, api_key_id=rows.key_id)
    name, amount = charge_of(job) or ("", 0)
    ctx.redis.set(name, 100)
    try:
        _run(ctx, job.id)
        assert rows.get_job(job.id).status == JobStatus.failed
        assert amount == 40 and int(ctx.redis.get(name) or -1) == 60
        _run(ctx, job.id)  # a second delivery of the same job changes nothing
        assert int(ctx.redis.get(name) or -1) == 60
    finally:
        ctx.redis.delete(name)


def test_invalid_request_fails_at_once(ctx, rows) -> None:
    job = rows.job(request={"script": [], "output_format": "ogg", "sample_rate": 44100})
    _run(ctx, job.id)
    failed = rows.get_job(job.id)
    assert failed.error_code == ErrorCode.INVALID_INPUT and "invalid synthesis request" in (failed.error_message or "")


def test_requests_carry_voice_seed_and_options(rows) -> None:
    request = SynthesisRequest.model_validate(
        {
            "script": [
                {"speaker_id": "spk_a", "text": "First line.", "temperature": 0.5, "seed": 99},
                {"speaker_id": "spk_b", "text": " ".join(["Long sentence here."] * 20)},
            ],
            "seed": 1000,
        }
    )
    codes = np.zeros((10, 5), dtype=np.int32)
    voices = {s: Voice(s, s.upper(), codes, f"prompt {s}") for s in ("spk_a", "spk_b")}
    job = rows.job(request=request.model_dump(mode="json"))
    built, owners = build_requests(job, request, voices, max_chars=100)
    assert owners[0] == 0 and set(owners[1:]) == {1} and len(built) > 2
    assert built[0].seed == 99 and built[0].temperature == 0.5 and built[0].reference_text == "prompt spk_a"
    assert built[1].seed == 1001 and built[2].seed == 1002  # the job seed plus the line index, then per part
    assert all(len(r.text) <= 100 for r in built)
    unseeded = SynthesisRequest.model_validate({"script": [{"speaker_id": "a", "text": "x"}]})
    assert line_seed("job_1", unseeded, 0) == line_seed("job_1", unseeded, 0) != line_seed("job_2", unseeded, 0)


def test_render_outputs_places_lines_and_captions() -> None:
    rng = np.random.default_rng(0)
    lines = [(rng.standard_normal(44100 + 4410 * i) * 0.1).astype(np.float32) for i in range(3)]
    request = SynthesisRequest.model_validate(
        {
            "script": [{"speaker_id": f"s{i}", "text": f"line {i}", "pause_after_ms": 250} for i in range(3)],
            "output_format": "wav",
            "sample_rate": 16000,
            "caption_format": "srt",
        }
    )
    out = render_outputs(request, lines, [(f"S{i}", f"s{i}", f"line {i}") for i in range(3)])
    audio, rate = sf.read(io.BytesIO(out.audio), dtype="float32")
    assert rate == 16000 and audio.size == round(out.duration_s * 16000)
    assert [end - start for start, end in out.offsets] == [16000, 17600, 19200]
    assert [b[0] - a[1] for a, b in zip(out.offsets, out.offsets[1:], strict=False)] == [4000, 4000]
    assert out.caption_units[1]["start"] == out.offsets[1][0] / 16000
    assert out.captions.decode().startswith("1\n00:00:00,000 --> 00:00:01,000\nS0: line 0")
