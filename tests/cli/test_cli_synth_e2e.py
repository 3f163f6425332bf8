"""`voicereel synth` of a screenplay through the whole local stack: the gateway (uvicorn), a real RQ worker
(`python -m worker`) and tritonserver serving the tiny random checkpoint (the lead's `triton` fixture). Speakers
are registered from espeak-ng reference clips through the CLI, then a two-speaker screenplay is rendered to MP3
with SRT captions. The tiny checkpoint's audio is noise; what is checked is the pipeline and the files.

The stack has its own SQLite database and its own queue, so its worker never touches other tests' jobs.
"""

from __future__ import annotations

import importlib.util
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import soundfile as sf

from voicereel.cli.exit_codes import ExitCode

if TYPE_CHECKING:
    from tests.cli.conftest import Cli
    from tests.client.live_gateway import Keys, LiveServer

pytestmark = pytest.mark.slow


def _worker_missing() -> str | None:
    if importlib.util.find_spec("worker.__main__") is None or importlib.util.find_spec("worker.jobs") is None:
        return "the worker (`python -m worker`, worker.jobs) is not in this checkout yet"
    return None


@pytest.fixture(scope="module")
def full_stack(
    tmp_path_factory: pytest.TempPathFactory,
    redis_url: str,
    supervisor: Any,
    live_gateway_module: ModuleType,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[LiveServer, Keys]]:
    missing = _worker_missing()
    if missing:
        print(f"SKIPPED full-stack synth: {missing}")
        pytest.skip(missing)
    from voicereel.devstack import worker_healthy
    from voicereel.stack import python_service

    triton = request.getfixturevalue("triton")
    data_dir = tmp_path_factory.mktemp("e2e")
    queue = f"voicereel-e2e-{uuid.uuid4().hex[:8]}"
    database_url = f"sqlite:///{data_dir / 'voicereel.db'}"
    extra = {"triton_grpc_url": triton.grpc_url, "triton_http_url": triton.http_url, "queue_name": queue}
    with live_gateway_module.live_gateway(data_dir, database_url, redis_url, **extra) as (server, keys):
        settings = server.settings
        env = {
            "VR_PROFILE": "test",
            "VR_DATA_DIR": str(settings.data_dir),
            "VR_DATABASE_URL": database_url,
            "VR_REDIS_URL": redis_url,
            "VR_QUEUE_NAME": queue,
            "VR_TRITON_GRPC_URL": triton.grpc_url,
            "VR_TRITON_HTTP_URL": triton.http_url,
            "VR_STORAGE_DIR": str(settings.storage_dir),
            "VR_PUBLIC_BASE_URL": settings.public_base_url,
            "OMP_NUM_THREADS": "1",
        }
        worker = supervisor.start(
            python_service(
                f"worker-{queue}",
                ["-m", "worker", "--no-cron"],
                lambda: worker_healthy(redis_url, queue),
                env,
                data_dir / "logs",
            )
        )
        try:
            yield server, keys
        finally:
            supervisor.stop(worker)


def _srt_entries(text: str) -> list[tuple[str, str]]:
    """(timing line, text) of each SRT cue."""
    blocks = [b.strip().splitlines() for b in text.strip().split("\n\n") if b.strip()]
    return [(b[1], " ".join(b[2:])) for b in blocks]


def test_synth_screenplay_end_to_end(full_stack: tuple[LiveServer, Keys], cli: Cli, tmp_path: Path) -> None:
    from voicereel.speech_fixture import reference_clip

    server, keys = full_stack
    key = keys.new_key()
    cli.env.update({"VOICEREEL_BASE_URL": server.base_url, "VOICEREEL_API_KEY": key.key})
    for variant, name in enumerate(("Alice", "Bob")):
        clip, transcript = reference_clip(tmp_path / f"{name}.wav", lang="en", min_seconds=31, variant=variant)
        added = cli("--json", "speakers", "add", str(clip), "--name", name, "--lang", "en", "--transcript", transcript,
                    "--wait", "--wait-timeout", "900", timeout=1000)  # fmt: skip
        assert added.code == 0, f"registration of {name} failed:\n{added.stderr}\n{server_log_hint(server)}"
        assert added.json()["status"] == "ready"

    script = tmp_path / "scene.txt"
    script.write_text("ALICE: Did you hear that?\nBOB: Hear what?\n    It is three in the morning.\n")
    out = tmp_path / "out" / "scene.mp3"
    result = cli("--json", "synth", str(script), "-o", str(out), "--captions", "srt",
                 "-s", "ALICE=Alice", "-s", "BOB=Bob", "--wait-timeout", "1200", timeout=1300)  # fmt: skip
    assert result.code == 0, result.stderr
    summary = result.json()
    job = summary["job"]
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    assert summary["files"] == {"audio": str(out), "captions": str(out.with_suffix(".srt"))}

    info = sf.info(str(out))
    assert info.format == "MP3" and info.samplerate == job["sample_rate"]
    assert abs(info.duration - job["duration_s"]) < 0.1
    cues = _srt_entries(out.with_suffix(".srt").read_text())
    assert len(cues) == 2
    assert "Did you hear that?" in cues[0][1] and "It is three in the morning." in cues[1][1]
    assert all(re.match(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}$", timing) for timing, _ in cues)
    assert [c["speaker"] for c in job["captions"]] == ["Alice", "Bob"]

    again = cli("--progress", "jobs", "download", job["id"], "-o", str(tmp_path / "copy.mp3"))
    assert again.code == ExitCode.OK and (tmp_path / "copy.mp3").read_bytes() == out.read_bytes()
    assert "downloading copy.mp3" in again.stderr  # the download bar
    waited = cli("--progress", "jobs", "show", job["id"], "--wait")
    assert waited.code == ExitCode.OK and f"{job['id']} [succeeded]" in waited.stderr  # the wait bar


def server_log_hint(server: LiveServer) -> str:
    logs = Path(server.settings.data_dir) / "logs"
    tails = []
    for log in sorted(logs.glob("worker-*.log")):
        tails.append(f"--- {log.name} (tail) ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
    return "\n".join(tails)
