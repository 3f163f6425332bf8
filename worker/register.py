"""`register_speaker`: reference upload -> 44.1 kHz mono -> quality report -> prompt window -> codec codes.

Idempotent: the codes go to the speaker's deterministic key, and a speaker already ready is left as it is.
A recording that cannot make a voice fails the speaker (and the job) with a clear reason.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
from pydantic import ValidationError

from voicereel.audio import CODEC_RATE
from voicereel.audio.pcm import decode_mono, resample
from voicereel.audio.prompt_window import choose_window
from voicereel.audio.quality import quality_report
from voicereel.db.models import Job, Speaker, SpeakerStatus, utcnow
from voicereel.db.session import session_scope
from voicereel.errors import ErrorCode, VoiceReelError
from voicereel.schemas import RegisterSpeakerRequest
from voicereel.storage import ObjectNotFound
from voicereel.storage.keys import codes_key
from voicereel.triton_client import encode_reference
from worker import jobstate
from worker.context import WorkerContext

log = logging.getLogger(__name__)

PROMPT_MAX_S = 30.0
MIN_SPEECH_S = 3.0  # a prompt with less speech than this cannot carry a voice


def codes_to_bytes(codes: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(codes, dtype=np.int32), allow_pickle=False)
    return buf.getvalue()


def codes_from_bytes(data: bytes) -> np.ndarray:
    return np.asarray(np.load(io.BytesIO(data), allow_pickle=False), dtype=np.int32)


def _load_speaker(ctx: WorkerContext, job: Job) -> Speaker:
    try:
        request = RegisterSpeakerRequest.model_validate(job.request)
    except ValidationError as exc:
        raise VoiceReelError(ErrorCode.INVALID_INPUT, f"bad register_speaker request: {exc}") from exc
    with session_scope(ctx.engine) as session:
        speaker = session.get(Speaker, request.speaker_id)
        if speaker is None or speaker.project_id != job.project_id:
            raise VoiceReelError(ErrorCode.NOT_FOUND, f"speaker {request.speaker_id} does not exist")
        return speaker


def _mark_speaker(ctx: WorkerContext, speaker_id: str, **values: Any) -> None:
    with session_scope(ctx.engine) as session:
        speaker = session.get(Speaker, speaker_id)
        if speaker is None:
            return
        for name, value in values.items():
            setattr(speaker, name, value)
        speaker.updated_at = utcnow()
        session.add(speaker)


def register_speaker(ctx: WorkerContext, job: Job, progress: jobstate.Progress) -> None:
    speaker = _load_speaker(ctx, job)
    try:
        result = _register(ctx, job, speaker, progress)
    except VoiceReelError as exc:  # the job fails with this code; the speaker says why
        _mark_speaker(ctx, speaker.id, status=SpeakerStatus.failed, error=f"{exc.code}: {exc.message}")
        raise
    if jobstate.succeed(ctx.engine, job, result, ctx.settings, expires=False) is None:
        raise jobstate.JobStopped(job.id, jobstate.status_of(ctx.engine, job.id))


def _register(ctx: WorkerContext, job: Job, speaker: Speaker, progress: jobstate.Progress) -> dict[str, Any]:
    settings = ctx.settings
    key = codes_key(speaker.project_id, speaker.id)
    if speaker.status == SpeakerStatus.ready and speaker.codes_key and ctx.storage.exists(speaker.codes_key):
        log.info("speaker %s is ready already", speaker.id)
        return {"speaker_id": speaker.id, "codes_key": speaker.codes_key, "duration_s": speaker.duration_s}

    try:
        upload = ctx.storage.get_bytes(speaker.reference_key)
    except ObjectNotFound as exc:
        raise VoiceReelError(ErrorCode.INVALID_INPUT, "the reference upload is missing from storage") from exc
    decoded = decode_mono(upload, max_seconds=settings.max_reference_decoded_s)
    pcm = resample(decoded.pcm, decoded.sample_rate, CODEC_RATE)
    progress.update(0.2, force=True)

    report = quality_report(pcm, CODEC_RATE)
    quality: dict[str, Any] = report.as_dict()
    quality["source_sample_rate"] = decoded.sample_rate
    quality["source_channels"] = decoded.source_channels
    quality["truncated_at_s"] = settings.max_reference_decoded_s if decoded.truncated else None
    _mark_speaker(ctx, speaker.id, quality=quality, duration_s=report.duration_s)
    if report.duration_s < settings.min_reference_s:
        raise VoiceReelError(
            ErrorCode.INSUFFICIENT_REF,
            f"the reference audio is {report.duration_s:.1f} s long; at least {settings.min_reference_s:.0f} s needed",
        )

    window = choose_window(pcm, CODEC_RATE, speaker.reference_text, max_s=PROMPT_MAX_S)
    if window.speech_s < MIN_SPEECH_S:
        raise VoiceReelError(
            ErrorCode.INSUFFICIENT_REF,
            f"only {window.speech_s:.1f} s of speech found in the reference audio; "
            f"at least {MIN_SPEECH_S:.0f} s needed",
        )
    prompt = pcm[window.start : window.end]
    peak = float(np.abs(prompt).max()) if prompt.size else 0.0
    if peak > 1.0:  # resampling can overshoot full scale; the encoder accepts [-1, 1]
        prompt = prompt * np.float32(0.999 / peak)
    progress.update(0.4, force=True)

    codes = encode_reference(settings, prompt)
    ctx.storage.put_bytes(key, codes_to_bytes(codes), "application/octet-stream")
    progress.update(0.9, force=True)

    quality["prompt_window"] = window.as_dict(CODEC_RATE)
    quality["prompt_frames"] = int(codes.shape[1])
    _mark_speaker(
        ctx,
        speaker.id,
        status=SpeakerStatus.ready,
        codes_key=key,
        prompt_text=window.text,
        duration_s=report.duration_s,
        quality=quality,
        error=None,
    )
    return {
        "speaker_id": speaker.id,
        "codes_key": key,
        "duration_s": report.duration_s,
        "prompt_frames": int(codes.shape[1]),
        "quality": quality,
    }
