"""`synthesize`: script -> Triton tts (all lines in flight) -> stitch -> master -> encode -> captions -> storage.

Order of the audio work, and why:
1. every line's PCM (44.1 kHz, from Triton) is resampled to the delivered rate on its own (soxr),
2. lines are trimmed, faded and placed at integer sample offsets of the delivered rate, with the pauses,
3. the whole is mastered (gain and limiter change no timing) and encoded (codecs keep sample offsets),
so the captions' times are the placements divided by the delivered rate: sample-accurate by construction.

Idempotent: artifact keys are deterministic, each line's seed is fixed by the request (or derived from the job
id), the final write is conditional on the job still running, and usage is recorded once per job.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import ValidationError
from sqlmodel import col, select

from voicereel.audio import CODEC_RATE
from voicereel.audio.deliver import master_and_encode
from voicereel.audio.encode import CODECS, UnsupportedOutput, check_supported
from voicereel.audio.pcm import resample, samples_for_ms
from voicereel.audio.stitch import stitch
from voicereel.captions import from_offsets, render
from voicereel.db.models import Job, Speaker, SpeakerStatus
from voicereel.db.session import session_scope
from voicereel.errors import ErrorCode, VoiceReelError
from voicereel.schemas import SynthesisRequest
from voicereel.storage.keys import audio_key, caption_key
from voicereel.triton_client import LineRequest, synthesize_lines
from worker import jobstate
from worker.context import WorkerContext
from worker.maintenance import schedule_sweep
from worker.register import codes_from_bytes
from worker.text import request_texts

log = logging.getLogger(__name__)

GENERATION_SHARE = 0.85  # of the progress bar; the rest is stitching, mastering, encoding, upload


@dataclass(frozen=True)
class Voice:
    speaker_id: str
    name: str
    codes: np.ndarray
    prompt_text: str


def parse_request(job: Job) -> SynthesisRequest:
    try:
        return SynthesisRequest.model_validate(job.request)
    except ValidationError as exc:
        raise VoiceReelError(ErrorCode.INVALID_INPUT, f"invalid synthesis request: {exc}") from exc


def load_voices(ctx: WorkerContext, project_id: str, speaker_ids: set[str]) -> dict[str, Voice]:
    with session_scope(ctx.engine) as session:
        rows = session.exec(
            select(Speaker).where(col(Speaker.id).in_(sorted(speaker_ids)), col(Speaker.project_id) == project_id)
        ).all()
    found = {s.id: s for s in rows}
    voices: dict[str, Voice] = {}
    for speaker_id in sorted(speaker_ids):
        speaker = found.get(speaker_id)
        if speaker is None:
            raise VoiceReelError(
                ErrorCode.INVALID_INPUT, f"speaker {speaker_id} does not exist", {"speaker_id": speaker_id}
            )
        if speaker.status != SpeakerStatus.ready or not speaker.codes_key:
            raise VoiceReelError(
                ErrorCode.INVALID_INPUT,
                f"speaker {speaker_id} is not ready (status {speaker.status})",
                {"speaker_id": speaker_id},
            )
        codes = codes_from_bytes(ctx.storage.get_bytes(speaker.codes_key))
        voices[speaker_id] = Voice(speaker_id, speaker.name, codes, speaker.prompt_text or speaker.reference_text)
    return voices


def line_seed(job_id: str, request: SynthesisRequest, index: int) -> int:
    """The line's own seed, else the job's seed plus its index, else one derived from the job id: a rerun of the
    same job asks the engine for the same audio."""
    line = request.script[index]
    if line.seed is not None:
        return line.seed
    if request.seed is not None:
        return (request.seed + index) % 2**63
    digest = hashlib.sha256(f"{job_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 2**63


def build_requests(
    job: Job, request: SynthesisRequest, voices: dict[str, Voice], max_chars: int
) -> tuple[list[LineRequest], list[int]]:
    """Triton requests for every line, and for each request the index of its line."""
    requests: list[LineRequest] = []
    owners: list[int] = []
    for index, line in enumerate(request.script):
        voice = voices[line.speaker_id]
        texts = request_texts(line.text, max_chars)
        if not texts:
            raise VoiceReelError(ErrorCode.INVALID_INPUT, f"line {index + 1} has no speakable text", {"line": index})
        seed = line_seed(job.id, request, index)
        for part, text in enumerate(texts):
            requests.append(
                LineRequest(
                    request_id=f"{job.id}:{index}:{part}",
                    text=text,
                    reference_text=voice.prompt_text,
                    reference_codes=voice.codes,
                    temperature=line.temperature,
                    top_p=line.top_p,
                    repetition_penalty=line.repetition_penalty,
                    seed=(seed + part) % 2**63,
                )
            )
            owners.append(index)
    return requests, owners


@dataclass(frozen=True)
class Rendered:
    audio: bytes
    captions: bytes
    caption_content_type: str
    caption_extension: str
    offsets: list[tuple[int, int]]
    duration_s: float
    report: dict[str, Any]
    caption_units: list[dict[str, Any]]


def render_outputs(
    request: SynthesisRequest, line_pcm: list[np.ndarray], names: list[tuple[str, str, str]]
) -> Rendered:
    """The CPU part of a job (what perf/worker_bench.py measures): resample, stitch, master, encode, captions."""
    rate = request.sample_rate
    clips = [resample(pcm, CODEC_RATE, rate) for pcm in line_pcm]
    pauses = [
        samples_for_ms(line.pause_after_ms if line.pause_after_ms is not None else request.pause_ms, rate)
        for line in request.script
    ]
    signal, placements = stitch(clips, pauses, rate)
    delivered = master_and_encode(
        signal, rate, request.output_format, target_lufs=request.loudness_lufs, ceiling_dbtp=request.true_peak_dbtp
    )
    offsets = [(p.start, p.end) for p in placements]
    captions = from_offsets(offsets, rate, names)
    rendered = render(captions, request.caption_format)
    return Rendered(
        audio=delivered.data,
        captions=rendered.data,
        caption_content_type=rendered.content_type,
        caption_extension=rendered.extension,
        offsets=offsets,
        duration_s=signal.size / rate,
        report=delivered.as_dict(),
        caption_units=[c.as_dict() for c in captions],
    )


def synthesize(ctx: WorkerContext, job: Job, progress: jobstate.Progress) -> None:
    settings = ctx.settings
    request = parse_request(job)
    try:
        check_supported(request.output_format, request.sample_rate)
    except UnsupportedOutput as exc:
        raise VoiceReelError(ErrorCode.INVALID_INPUT, str(exc)) from exc
    voices = load_voices(ctx, job.project_id, {line.speaker_id for line in request.script})
    requests, owners = build_requests(job, request, voices, settings.max_line_chars)
    progress.update(0.02, force=True)

    done = 0

    def on_done(_index: int, _pcm: np.ndarray) -> None:  # between lines: progress, and the cancel check
        nonlocal done
        done += 1
        progress.update(GENERATION_SHARE * done / len(requests), force=done == len(requests))

    pcm_parts = synthesize_lines(settings, requests, on_done)
    line_pcm: list[list[np.ndarray]] = [[] for _ in request.script]
    for owner, pcm in zip(owners, pcm_parts, strict=True):
        line_pcm[owner].append(pcm)
    joined = [np.concatenate(parts) if parts else np.zeros(0, np.float32) for parts in line_pcm]

    names = [(voices[line.speaker_id].name, line.speaker_id, line.text) for line in request.script]
    out = render_outputs(request, joined, names)
    progress.update(0.95, force=True)

    codec = CODECS[request.output_format]
    a_key = audio_key(job.project_id, job.id, codec.extension)
    c_key = caption_key(job.project_id, job.id, out.caption_extension)
    ctx.storage.put_bytes(a_key, out.audio, codec.content_type)
    ctx.storage.put_bytes(c_key, out.captions, out.caption_content_type)

    characters = job.characters or request.characters
    result = {
        "audio_key": a_key,
        "caption_key": c_key,
        "duration_s": round(out.duration_s, 6),
        "sample_rate": request.sample_rate,
        "output_format": request.output_format.value,
        "caption_format": request.caption_format.value,
        "captions": out.caption_units,
        "characters": characters,
        "loudness": out.report,
        "audio_bytes": len(out.audio),
    }
    expires_at = jobstate.succeed(ctx.engine, job, result, settings, usage=(characters, out.duration_s))
    if expires_at is None:
        status = jobstate.status_of(ctx.engine, job.id)
        if status is not None and status.value == "canceled":  # canceled while we rendered: leave nothing behind
            ctx.storage.delete_prefix(a_key.rsplit("/", 1)[0] + "/")
        raise jobstate.JobStopped(job.id, status)
    schedule_expiry_sweep(ctx, job.id, expires_at)


def schedule_expiry_sweep(ctx: WorkerContext, job_id: str, at: datetime) -> None:
    """Ask RQ's scheduler to sweep this job's artifacts at their exact expiry (the periodic sweep is the backstop
    if Redis forgets it)."""
    try:
        schedule_sweep(ctx.redis, ctx.settings, job_id, at)
    except Exception as exc:  # best effort by design
        log.warning("could not schedule the expiry sweep of %s: %s", job_id, exc)
