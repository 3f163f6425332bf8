"""The worker end to end on real services: `python -m worker` processes, Redis, PostgreSQL, S3 (moto server) and
tritonserver serving the tiny random checkpoint (its audio is noise, which is all these tests need: timing,
loudness, formats, reliability). Jobs are put in the database and enqueued exactly as the gateway does.

Caption timing is checked against the decoded file: a line's audio begins at the first sample, near its caption
start, above 5 % of that line's peak (lossy codecs leave a little pre-echo in the silence before an onset; 5 %
stays above it and below the 2 ms fade-in's first samples).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import Engine, text
from sqlmodel import select

from tests.storage.conftest import ACCESS_KEY, SECRET_KEY
from tests.worker.conftest import _TABLES, Rows, WorkerProcesses
from voicereel.audio.loudness import integrated_lufs
from voicereel.db.models import Job, JobKind, JobStatus, SpeakerStatus, UsageRecord
from voicereel.db.session import make_engine, session_scope
from voicereel.errors import ErrorCode
from voicereel.jobqueue import enqueue, make_queue
from voicereel.settings import Settings
from voicereel.speech_fixture import reference_clip
from voicereel.storage import S3Storage, make_storage
from voicereel.storage.keys import codes_key, upload_key
from voicereel.storage.lifecycle import ensure_bucket
from voicereel.storage.s3 import make_client
from worker.context import make_redis
from worker.liveness import alive_key
from worker.register import codes_to_bytes

FORMATS = [("wav", 44100, "json"), ("flac", 22050, "vtt"), ("mp3", 24000, "srt"), ("ogg", 48000, "vtt")]
WORDS = ["Hello.", "Yes.", "Right.", "Okay then.", "Sure.", "Maybe.", "Indeed.", "Thanks.", "Later.", "Bye now."]


@dataclass
class Stack:
    settings: Settings
    engine: Engine
    rows: Rows
    storage: S3Storage
    speakers: list[str]
    workdir: Path

    def script(self, lines: int = 10, seed: int = 7, **options: object) -> dict[str, object]:
        script = []
        for i in range(lines):
            line: dict[str, object] = {"speaker_id": self.speakers[i % 3], "text": WORDS[i % len(WORDS)]}
            if i == 4:
                line["pause_after_ms"] = 120  # a per-line override
            script.append(line)
        return {"script": script, "seed": seed, **options}

    def submit(self, request: dict[str, object]) -> Job:
        texts = request["script"]
        assert isinstance(texts, list)
        job = self.rows.job(JobKind.synthesize, request, characters=sum(len(str(line["text"])) for line in texts))
        redis = make_redis(self.settings)
        try:
            enqueue(make_queue(redis, self.settings), job, self.settings)
        finally:
            redis.close()
        return job

    def usage(self, job_id: str) -> list[UsageRecord]:
        with session_scope(self.engine) as s:
            return list(s.exec(select(UsageRecord).where(UsageRecord.job_id == job_id)).all())


@pytest.fixture(scope="module")
def stack(triton, s3_endpoint: str, redis_url: str, worker_db_url: str, tmp_path_factory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("worker-e2e")
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        profile="test",
        data_dir=workdir / "data",
        redis_url=redis_url,
        database_url=worker_db_url,
        queue_name=f"vr-e2e-{uuid.uuid4().hex[:8]}",
        triton_grpc_url=triton.grpc_url,
        triton_http_url=triton.http_url,
        storage_backend="s3",
        s3_bucket=f"vr-e2e-{uuid.uuid4().hex[:8]}",
        s3_endpoint_url=s3_endpoint,
        worker_heartbeat_s=0.5,
        reconcile_interval_s=2,
        reconcile_grace_s=1.0,
        sweep_interval_s=5,
        triton_retry_max_wait_s=2.0,
        min_reference_s=5.0,
        worker_max_in_flight=16,
    )
    engine = make_engine(worker_db_url, pool_size=2)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(_TABLES)} CASCADE"))
    storage = make_storage(settings)
    assert isinstance(storage, S3Storage)
    ensure_bucket(settings, make_client(settings))
    rows = Rows(engine)

    speakers, jobs = [], []
    for variant in range(3):
        clip, transcript = reference_clip(workdir / f"ref{variant}.wav", lang="en", min_seconds=6, variant=variant)
        speaker = rows.speaker(name=f"Voice {variant}", reference_text=transcript)
        key = upload_key(rows.project_id, speaker.id)
        storage.put_bytes(key, clip.read_bytes(), "audio/wav")
        rows_job = rows.job(JobKind.register_speaker, {"speaker_id": speaker.id})
        redis = make_redis(settings)
        enqueue(make_queue(redis, settings), rows_job, settings)
        redis.close()
        speakers.append(speaker.id)
        jobs.append(rows_job.id)
    procs = WorkerProcesses(workdir)
    procs.start(settings)
    try:
        for job_id in jobs:
            done = rows.wait_job(job_id, {JobStatus.succeeded, JobStatus.failed}, timeout=180)
            assert done.status == JobStatus.succeeded, (done.error_code, done.error_message, procs.logs())
    finally:
        procs.stop_all()
    yield Stack(settings, engine, rows, storage, speakers, workdir)
    engine.dispose()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_speakers_were_registered(stack: Stack) -> None:
    for speaker_id in stack.speakers:
        speaker = stack.rows.get_speaker(speaker_id)
        assert speaker.status == SpeakerStatus.ready and speaker.error is None
        assert speaker.codes_key == codes_key(stack.rows.project_id, speaker_id)
        codes = np.load(io.BytesIO(stack.storage.get_bytes(speaker.codes_key)))
        assert codes.dtype == np.int32 and codes.shape[0] == 10 and codes.shape[1] > 50
        quality = speaker.quality or {}
        for field in ("duration_s", "clipped_fraction", "peak_dbfs", "loudness_lufs", "silence_ratio", "snr_db"):
            assert field in quality
        assert quality["prompt_frames"] == codes.shape[1]
        assert quality["prompt_window"]["end_s"] - quality["prompt_window"]["start_s"] <= 30.0
        assert speaker.prompt_text and speaker.duration_s and speaker.duration_s >= 6


@pytest.fixture(scope="module")
def rendered(stack: Stack, tmp_path_factory) -> Iterator[dict[str, Job]]:
    """One job per output format, all submitted at once and run by two workers (their lines batch in Triton)."""
    jobs = {
        fmt: stack.submit(stack.script(output_format=fmt, sample_rate=rate, caption_format=captions))
        for fmt, rate, captions in FORMATS
    }
    procs = WorkerProcesses(tmp_path_factory.mktemp("render-workers"))
    procs.start(stack.settings)
    procs.start(stack.settings, "--no-cron")
    try:
        done = {
            fmt: stack.rows.wait_job(job.id, {JobStatus.succeeded, JobStatus.failed}, timeout=400)
            for fmt, job in jobs.items()
        }
        for job in done.values():
            assert job.status == JobStatus.succeeded, (job.error_code, job.error_message, procs.logs())
    finally:
        procs.stop_all()
    yield done


def _onset(audio: np.ndarray, start: int, end: int, rate: int) -> int:
    window = int(0.02 * rate)
    threshold = 0.05 * float(np.abs(audio[start:end]).max())
    lo = max(0, start - window)
    return lo + int(np.argmax(np.abs(audio[lo : start + window]) > threshold))


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "rate", "caption_format"), FORMATS)
def test_script_renders_in_every_format(stack: Stack, rendered, fmt: str, rate: int, caption_format: str) -> None:
    job = rendered[fmt]
    result = job.result or {}
    assert result["output_format"] == fmt and result["sample_rate"] == rate
    assert result["audio_key"] == f"jobs/{stack.rows.project_id}/{job.id}/audio.{fmt}"
    assert result["caption_key"] == f"jobs/{stack.rows.project_id}/{job.id}/captions.{caption_format}"
    data = stack.storage.get_bytes(result["audio_key"])
    audio, decoded_rate = sf.read(io.BytesIO(data), dtype="float32")
    assert decoded_rate == rate
    assert audio.size == round(result["duration_s"] * rate)

    # loudness target met by the delivered (decoded) file
    assert integrated_lufs(audio, rate) == pytest.approx(-16.0, abs=0.5)

    # captions: one per line, in order, each starting within 1 ms of its line's audio in the decoded file
    captions = result["captions"]
    assert [c["speaker_id"] for c in captions] == [stack.speakers[i % 3] for i in range(10)]
    assert [c["speaker"] for c in captions] == [f"Voice {i % 3}" for i in range(10)]
    for caption in captions:
        start, end = round(caption["start"] * rate), round(caption["end"] * rate)
        assert end - start > 0.5 * rate  # the tiny model speaks at least its 2 s frame floor
        assert abs(_onset(audio, start, end, rate) - start) / rate <= 0.001, caption
    # pauses: default 300 ms, 120 ms after the fifth line
    gaps = [round((b["start"] - a["end"]) * 1000) for a, b in itertools.pairwise(captions)]
    assert gaps == [300, 300, 300, 300, 120, 300, 300, 300, 300]

    caption_text = stack.storage.get_bytes(result["caption_key"]).decode()
    if caption_format == "vtt":
        assert caption_text.startswith("WEBVTT") and caption_text.count("<v Voice 1>") == 3
    elif caption_format == "srt":
        assert caption_text.startswith("1\n") and "Voice 0: Hello." in caption_text
    else:
        assert json.loads(caption_text)["captions"] == captions

    usage = stack.usage(job.id)
    assert len(usage) == 1 and usage[0].characters == job.characters
    assert usage[0].audio_seconds == pytest.approx(result["duration_s"], abs=0.01)
    assert job.expires_at is not None and job.finished_at is not None
    assert (job.expires_at - job.finished_at).total_seconds() == pytest.approx(48 * 3600)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group. Zombies count as dead: an orphan's zombie waits for a
    reaper, and a container's PID 1 may not be one."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_killed_worker_job_is_finished_by_another(stack: Stack, workers: WorkerProcesses) -> None:
    job = stack.submit(stack.script(output_format="mp3", sample_rate=44100))
    first = workers.start(stack.settings)
    redis = make_redis(stack.settings)
    try:
        deadline = time.monotonic() + 120
        while True:  # in the middle of the job: lines are in Triton
            row = stack.rows.get_job(job.id)
            owner = redis.get(alive_key(job.id))
            if row.status == JobStatus.running and row.progress > 0 and owner:
                break
            assert time.monotonic() < deadline, workers.logs()
            time.sleep(0.1)
        horse_pid = int(owner.decode().rsplit(":", 1)[1])
        os.kill(first.pid, signal.SIGKILL)  # kill -9 of the worker process
        first.wait(timeout=10)
        deadline = time.monotonic()
        time.sleep(1.0)
        assert not _pid_alive(horse_pid), "the work-horse outlived its worker"
        # nor did anything else it started (the cron child, RQ's scheduler) outlive it
        survivors = _group_members(first.pid)
        while survivors and time.monotonic() < deadline + 5:
            time.sleep(0.2)
            survivors = _group_members(first.pid)
        assert not survivors, f"processes of the killed worker still run: {survivors}"

        workers.start(stack.settings)
        done = stack.rows.wait_job(job.id, {JobStatus.succeeded, JobStatus.failed}, timeout=300, logs=workers.logs)
        assert done.status == JobStatus.succeeded, (done.error_message, workers.logs())
        assert done.attempts == 2
        assert len(stack.usage(job.id)) == 1
        assert stack.storage.exists(done.result["audio_key"])  # type: ignore[index]
    finally:
        redis.close()


@pytest.mark.slow
def test_jobs_survive_a_redis_restart(stack: Stack, workers: WorkerProcesses, supervisor, redis_server) -> None:
    jobs = [stack.submit(stack.script(lines=4, seed=s, output_format="wav", sample_rate=16000)) for s in (1, 2, 3)]
    workers.start(stack.settings)
    deadline = time.monotonic() + 120
    while stack.rows.get_job(jobs[0].id).status != JobStatus.running:  # one running, the others queued
        assert time.monotonic() < deadline, workers.logs()
        time.sleep(0.1)
    supervisor.restart(redis_server)  # no persistence: every queue and RQ job is gone
    redis = make_redis(stack.settings)
    try:
        assert redis.dbsize() == 0 or not redis.exists(f"rq:job:{jobs[2].id}")
    finally:
        redis.close()
    for job in jobs:
        done = stack.rows.wait_job(job.id, {JobStatus.succeeded, JobStatus.failed}, timeout=300, logs=workers.logs)
        assert done.status == JobStatus.succeeded, (done.error_message, workers.logs())
        assert len(stack.usage(job.id)) == 1


@pytest.mark.slow
def test_job_waits_out_a_triton_outage(stack: Stack, workers: WorkerProcesses, triton) -> None:
    # Triton goes down before the job's lines reach it: stopping it once the job is merely "running" raced with
    # the tiny model, which can finish every Triton call before the stop lands (then nothing waits).
    job = stack.submit(stack.script(lines=6, output_format="flac", sample_rate=44100))
    triton.supervisor.stop(triton.service)
    try:
        workers.start(stack.settings)
        deadline = time.monotonic() + 120
        while stack.rows.get_job(job.id).status != JobStatus.running:
            assert time.monotonic() < deadline, workers.logs()
            time.sleep(0.1)
        time.sleep(30)
        assert stack.rows.get_job(job.id).status == JobStatus.running  # waiting, not failed
        assert "retrying" in workers.logs()
    finally:
        triton.supervisor.restart(triton.service)  # later tests need it, whatever happened here
    done = stack.rows.wait_job(job.id, {JobStatus.succeeded, JobStatus.failed}, timeout=400, logs=workers.logs)
    assert done.status == JobStatus.succeeded, (done.error_message, workers.logs())
    assert done.attempts == 1  # the same attempt waited; nothing was re-run


def test_invalid_input_fails_at_once(stack: Stack, workers: WorkerProcesses) -> None:
    broken = stack.rows.speaker(name="Broken", reference_text="hello", status=SpeakerStatus.ready)
    key = codes_key(stack.rows.project_id, broken.id)
    stack.storage.put_bytes(key, codes_to_bytes(np.full((10, 40), 99_999, dtype=np.int32)), "application/octet-stream")
    with session_scope(stack.engine) as s:
        row = s.get(type(broken), broken.id)
        row.codes_key = key
        s.add(row)
    job = stack.submit({"script": [{"speaker_id": broken.id, "text": "Hello."}]})
    workers.start(stack.settings)
    done = stack.rows.wait_job(job.id, {JobStatus.succeeded, JobStatus.failed}, timeout=60, logs=workers.logs)
    assert done.status == JobStatus.failed and done.error_code == ErrorCode.INVALID_INPUT
    assert "code" in (done.error_message or "").lower() and done.attempts == 1
    assert (done.finished_at - done.started_at).total_seconds() < 10  # no retrying of a permanent error
    assert stack.usage(job.id) == []


def test_canceled_job_stops_between_lines(stack: Stack, workers: WorkerProcesses) -> None:
    job = stack.submit(stack.script(output_format="wav"))
    workers.start(stack.settings)
    deadline = time.monotonic() + 120
    while stack.rows.get_job(job.id).status != JobStatus.running:
        assert time.monotonic() < deadline, workers.logs()
        time.sleep(0.05)
    with session_scope(stack.engine) as s:  # what the gateway's DELETE does to the row
        row = s.get(Job, job.id)
        row.status = JobStatus.canceled
        s.add(row)
    deadline = time.monotonic() + 120
    while f"{job.id} is canceled" not in workers.logs():
        assert time.monotonic() < deadline, workers.logs()
        time.sleep(0.2)
    row = stack.rows.get_job(job.id)
    assert row.status == JobStatus.canceled and row.result is None
    assert stack.usage(job.id) == []
    assert not stack.storage.exists(f"jobs/{stack.rows.project_id}/{job.id}/audio.wav")
    assert "succeeded" not in workers.logs()


def test_artifacts_expire_at_their_exact_time(stack: Stack, workers: WorkerProcesses) -> None:
    # a 6 s lifetime, and a periodic sweep too rare to matter: only the one-off sweep RQ schedules at the job's
    # exact expiry can delete the artifacts in time
    settings = stack.settings.model_copy(update={"artifact_ttl_h": 6 / 3600, "sweep_interval_s": 3600})
    job = stack.submit({"script": [{"speaker_id": stack.speakers[0], "text": "Hello."}], "output_format": "mp3"})
    workers.start(settings)
    done = stack.rows.wait_job(job.id, {JobStatus.succeeded, JobStatus.failed}, timeout=120, logs=workers.logs)
    assert done.status == JobStatus.succeeded, (done.error_message, workers.logs())
    assert done.expires_at is not None and done.finished_at is not None
    assert (done.expires_at - done.finished_at).total_seconds() == pytest.approx(6.0)
    result = done.result or {}
    if time.time() < done.expires_at.timestamp() - 1:
        assert stack.storage.exists(result["audio_key"])
    expired = stack.rows.wait_job(job.id, {JobStatus.expired}, timeout=60, poll=0.1, logs=workers.logs)
    seen_at = time.time()
    assert seen_at >= done.expires_at.timestamp()
    assert seen_at - done.expires_at.timestamp() < 4.0, "expired late: the scheduled sweep did not run on time"
    assert not stack.storage.exists(result["audio_key"]) and not stack.storage.exists(result["caption_key"])
    assert expired.result == result  # the record stays; only the artifacts go
