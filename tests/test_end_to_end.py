"""The thin end-to-end path through real components (issue 2's acceptance test).

POST /v1/speakers (multipart reference audio + transcript) -> RQ worker -> Triton `codec_encoder` -> speaker ready;
POST /v1/synthesize with two lines and two speakers -> worker -> Triton `tts` -> stitched WAV + JSON captions in
storage -> GET /v1/jobs/{id} -> download through the job's URL. Real Redis, real tritonserver with the tiny random
checkpoint, the gateway and the worker as the processes `make run` starts (`python -m gateway`, `python -m worker`).
Plain HTTP, no SDK: this is what a customer with curl sees.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf

from voicereel.devstack import worker_healthy
from voicereel.speech_fixture import reference_clip
from voicereel.stack import REPO_ROOT, Supervisor, free_port, http_ok, python_service

pytestmark = pytest.mark.slow


class Stack:
    def __init__(self, base_url: str, api_key: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers={"X-VR-APIKEY": api_key}, timeout=30)

    def wait_job(self, job_id: str, timeout_s: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.http.get(f"/v1/jobs/{job_id}").raise_for_status().json()
            if job["status"] in ("succeeded", "failed", "canceled", "expired"):
                return job
            time.sleep(0.5)
        raise AssertionError(f"job {job_id} did not finish in {timeout_s}s")


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, triton: Any, supervisor: Supervisor
) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("e2e-stack")
    port = free_port()
    queue = f"voicereel-e2e-{uuid.uuid4().hex[:8]}"  # our own queue: no other test's worker takes these jobs
    env = {
        "VR_PROFILE": "test",
        "VR_DATA_DIR": str(data),
        "VR_DATABASE_URL": f"sqlite:///{data / 'voicereel.db'}",
        "VR_REDIS_URL": redis_url,
        "VR_QUEUE_NAME": queue,
        "VR_TRITON_GRPC_URL": triton.grpc_url,
        "VR_TRITON_HTTP_URL": triton.http_url,
        "VR_STORAGE_DIR": str(data / "storage"),
        "VR_PORT": str(port),
        "VR_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "VR_MIN_REFERENCE_S": "8",  # keeps the test fast; the 30 s default is the gateway's tests' business
        "OMP_NUM_THREADS": "1",
    }
    issued = json.loads(
        subprocess.run(
            [sys.executable, "-m", "gateway.admin", "create-key", "--project", "e2e", "--json"],
            env={**os.environ, **env},
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    )
    logs = data / "logs"
    gateway = supervisor.start(
        python_service(f"gateway-{queue}", ["-m", "gateway"], http_ok(f"http://127.0.0.1:{port}/healthz"), env, logs)
    )
    worker = supervisor.start(
        python_service(
            f"worker-{queue}", ["-m", "worker", "--no-cron"], lambda: worker_healthy(redis_url, queue), env, logs
        )
    )
    stack = Stack(f"http://127.0.0.1:{port}", issued["api_key"])
    yield stack
    stack.http.close()
    supervisor.stop(worker)
    supervisor.stop(gateway)


def register(stack: Stack, tmp: Path, name: str, variant: int) -> str:
    clip, transcript = reference_clip(tmp / f"{name}.wav", lang="en", min_seconds=9.0, variant=variant)
    with clip.open("rb") as audio:
        response = stack.http.post(
            "/v1/speakers",
            data={"name": name, "lang": "en", "reference_script": transcript},
            files={"reference_audio": (clip.name, audio, "audio/wav")},
        )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["speaker_id"].startswith("spk_") and accepted["job_id"].startswith("job_")
    job = stack.wait_job(accepted["job_id"])
    assert job["status"] == "succeeded", job
    speaker = stack.http.get(f"/v1/speakers/{accepted['speaker_id']}").raise_for_status().json()
    assert speaker["status"] == "ready", speaker
    assert speaker["duration_s"] is not None and speaker["duration_s"] >= 9.0
    return str(accepted["speaker_id"])


def test_two_speakers_two_lines_end_to_end(stack: Stack, tmp_path: Path) -> None:
    narrator = register(stack, tmp_path, "Narrator", 0)
    guest = register(stack, tmp_path, "Guest", 1)
    lines = [
        {"speaker_id": narrator, "text": "Welcome to the studio."},
        {"speaker_id": guest, "text": "Thanks, it is good to be here."},
    ]
    response = stack.http.post(
        "/v1/synthesize", json={"script": lines, "output_format": "wav", "caption_format": "json"}
    )
    assert response.status_code == 202, response.text
    job = stack.wait_job(response.json()["job_id"])
    assert job["status"] == "succeeded", job

    # The audio, downloaded through the URL the job hands out, decodes to the length the job reports.
    audio_bytes = httpx.get(job["audio_url"], timeout=30).raise_for_status().content
    audio, rate = sf.read(io.BytesIO(audio_bytes))
    assert rate == 44100
    seconds = len(audio) / rate
    assert seconds > 0.5
    assert abs(seconds - job["duration_s"]) < 0.01, (seconds, job["duration_s"])

    # One caption per line, in order, inside the file, not overlapping; the caption file says the same.
    captions = job["captions"]
    assert [c["text"] for c in captions] == [line["text"] for line in lines]
    assert [c["speaker_id"] for c in captions] == [narrator, guest]
    # (times are rounded to the microsecond)
    first, second = captions
    assert 0 <= first["start"] < first["end"] <= second["start"] < second["end"] <= seconds + 1e-6
    caption_file = httpx.get(job["caption_url"], timeout=30).raise_for_status().json()
    assert caption_file == captions or caption_file.get("captions") == captions
