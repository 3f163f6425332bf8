"""`make run`: the whole stack on localhost, then a two-speaker demo through the public API.

Starts Redis (unless one already answers at VR_REDIS_URL), Triton with our model repository, one RQ worker and
the gateway, all under one `Supervisor`; SQLite and local-filesystem storage are the embedded defaults. Then it
creates a demo project and key, registers two demo speakers from espeak-ng reference clips, renders a two-line
script, prints where the audio and subtitles are, and waits. Ctrl-C (or SIGTERM) stops every process it started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from voicereel.settings import Settings, get_settings
from voicereel.speech_fixture import reference_clip
from voicereel.stack import (
    REPO_ROOT,
    Service,
    StackError,
    Supervisor,
    TritonPorts,
    free_port,
    http_ok,
    install_signal_handlers,
    port_open,
    python_service,
    redis_service,
    triton_service,
)

NOISE_BANNER = """
################################################################################################
#  No real checkpoint at {real}.
#  Using the TINY RANDOM-WEIGHT checkpoint at {tiny}:
#  every pipeline stage is real, but THE AUDIO IS NOISE. `make weights` fetches openaudio-s1-mini.
################################################################################################
"""


def ensure_checkpoint(settings: Settings) -> Path:
    from voicereel.engine.checkpoints import make_tiny_checkpoint

    active = settings.active_checkpoint_dir
    if active == settings.checkpoint_dir:
        return active
    print(NOISE_BANNER.format(real=settings.checkpoint_dir, tiny=active), file=sys.stderr)
    if not (active / "model.pth").exists():
        make_tiny_checkpoint(active, seed=0)
    return active


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parsed = urlparse(url if "://" in url else f"//{url}")
    return parsed.hostname or "127.0.0.1", parsed.port or default_port


def worker_healthy(redis_url: str, queue_name: str) -> bool:
    from redis import Redis
    from rq import Worker

    try:
        with Redis.from_url(redis_url, socket_timeout=1) as redis:
            return any(queue_name in worker.queue_names() for worker in Worker.all(connection=redis))
    except OSError:
        return False


def start_stack(settings: Settings, supervisor: Supervisor, run_dir: Path) -> dict[str, str]:
    """Start every service; returns the VR_* environment the components share."""
    logs = settings.data_dir / "logs"
    env = {
        "VR_PROFILE": settings.profile.value,
        "VR_DATA_DIR": str(settings.data_dir),
        "VR_DATABASE_URL": settings.effective_database_url,
        "VR_REDIS_URL": settings.redis_url,
        "VR_TRITON_GRPC_URL": settings.triton_grpc_url,
        "VR_TRITON_HTTP_URL": settings.triton_http_url,
        "VR_STORAGE_DIR": str(settings.storage_dir),
        "VR_PUBLIC_BASE_URL": settings.public_base_url,
    }
    _, redis_port = _host_port(settings.redis_url, 6379)
    if port_open(redis_port):
        print(f"redis: using the server already at {settings.redis_url}")
    else:
        supervisor.start(redis_service(redis_port, logs))
        print(f"redis: started on port {redis_port}")

    from voicereel.modelrepo import build_repository

    checkpoint = ensure_checkpoint(settings)
    repository = build_repository(run_dir / "model_repository", checkpoint, None)
    _, grpc_port = _host_port(settings.triton_grpc_url, 8001)
    _, http_port = _host_port(settings.triton_http_url, 8000)
    for name, port in (("gRPC", grpc_port), ("HTTP", http_port)):
        if port_open(port):
            raise StackError(f"triton: port {port} ({name}) is taken; set VR_TRITON_GRPC_URL/VR_TRITON_HTTP_URL")
    ports = TritonPorts(grpc=grpc_port, http=http_port, metrics=free_port())
    started = time.monotonic()
    supervisor.start(triton_service(repository, ports, run_dir / "triton", logs))
    took = time.monotonic() - started
    print(f"triton: ready in {took:.0f}s (gRPC {grpc_port}, HTTP {http_port}), models from {checkpoint}")

    supervisor.start(
        python_service(
            "worker", ["-m", "worker"], lambda: worker_healthy(settings.redis_url, settings.queue_name), env, logs
        )
    )
    print("worker: one RQ worker listening")
    host, port = settings.host, settings.port
    if port_open(port, host):
        raise StackError(f"gateway: port {port} is taken; set VR_PORT")
    supervisor.start(python_service("gateway", ["-m", "gateway"], http_ok(f"http://{host}:{port}/healthz"), env, logs))
    print(f"gateway: http://{host}:{port}")
    return env


def create_demo_key(env: dict[str, str]) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-m", "gateway.admin", "create-key", "--project", "demo", "--name", "make-run", "--json"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        timeout=120,
    )
    issued: dict[str, str] = json.loads(out.stdout)
    return issued


def run_demo(settings: Settings, api_key: str) -> tuple[Path, Path]:
    """Register two speakers and render a two-line script through the public API; returns (audio, captions)."""
    from voicereel.client import VoiceReelClient

    demo_dir = settings.data_dir / "demo"
    min_ref = max(settings.min_reference_s + 2.0, 5.0)
    base_url = f"http://{settings.host}:{settings.port}"
    with VoiceReelClient(base_url, api_key, timeout_s=60) as client:
        speakers = []
        for variant, name in enumerate(("Narrator", "Guest")):
            clip, transcript = reference_clip(
                demo_dir / f"{name.lower()}.wav", lang="en", min_seconds=min_ref, variant=variant
            )
            accepted = client.create_speaker(name, "en", clip, transcript)
            client.wait_for_job(accepted.job_id, timeout_s=600)
            speakers.append(accepted.speaker_id)
            print(f"speaker {name}: {accepted.speaker_id} ready")
        job = client.synthesize(
            {
                "script": [
                    {"speaker_id": speakers[0], "text": "Welcome to VoiceReel, the studio that never sleeps."},
                    {"speaker_id": speakers[1], "text": "Thanks. Let's read the next scene together."},
                ],
                "output_format": "wav",
                "caption_format": "vtt",
            }
        )
        done = client.wait_for_job(
            job.job_id, timeout_s=900, on_progress=lambda j: print(f"  progress {j.progress:.0%}")
        )
        audio = client.download_audio(done, demo_dir / "demo.wav")
        captions = client.download_captions(done, demo_dir / "demo.vtt")
    return audio, captions


def main() -> int:
    settings = get_settings()
    run_dir = REPO_ROOT / ".run"
    with Supervisor(settings.data_dir / "logs") as supervisor:
        install_signal_handlers(supervisor)
        try:
            env = start_stack(settings, supervisor, run_dir)
            issued = create_demo_key(env)
            audio, captions = run_demo(settings, issued["api_key"])
        except StackError as exc:
            print(f"\nmake run failed: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nstopping…")
            return 130
        base = f"http://{settings.host}:{settings.port}"
        print(
            "\nVoiceReel is running.\n"
            f"  demo audio:     {audio.resolve()}\n"
            f"  demo subtitles: {captions.resolve()}\n"
            f"  API docs:       {base}/docs   (OpenAPI: {base}/openapi.json)\n"
            f"  metrics:        {base}/metrics\n"
            f"  demo API key:   {issued['api_key']}   (project {issued['project_id']})\n"
            f"  logs:           {(settings.data_dir / 'logs').resolve()}\n"
            "Press Ctrl-C to stop everything."
        )
        try:
            while all(service.alive for service in supervisor.services):
                time.sleep(1)
            dead = [service for service in supervisor.services if not service.alive]
            _report_dead(dead)
            return 1
        except KeyboardInterrupt:
            print("\nstopping…")
            return 0


def _report_dead(dead: list[Service]) -> None:
    for service in dead:
        print(f"service {service.name!r} stopped unexpectedly; log tail:\n{service.log_tail()}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
