"""infra/docker/triton-entrypoint.sh, the Triton image's start: run for real with the tritonserver 2.51 binary that
`make run` uses standing in for the image's (same release), the virtualenv's python, and our model repository."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from voicereel.stack import REPO_ROOT, Service, Supervisor, TritonPorts, http_ok, triton_service

ENTRYPOINT = REPO_ROOT / "infra" / "docker" / "triton-entrypoint.sh"
VENV_BIN = Path(sys.executable).parent


def tritonserver_argv(tmp: Path) -> tuple[list[str], dict[str, str]]:
    """The pytriton tritonserver with the python stub of this interpreter: (argv, environment)."""
    service = triton_service(tmp / "unused", TritonPorts.free(), tmp / "work", tmp / "logs")
    assert service.env is not None
    return service.argv, dict(service.env)


def wrapper_bin(tmp: Path, binary: str) -> Path:
    """A `tritonserver` on PATH, as in the image (one that does not exist, for runs that must not reach it)."""
    bin_dir = tmp / ("bin" if Path(binary).exists() else "bin-missing")
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "tritonserver"
    script.write_text(f'#!/bin/sh\nexec "{binary}" "$@"\n')
    script.chmod(0o755)
    return bin_dir


def entrypoint_env(tmp: Path, triton_env: dict[str, str], **values: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VR_")}
    bin_dir = wrapper_bin(tmp, "/nonexistent")
    return {
        **base,
        **triton_env,
        "PATH": f"{bin_dir}:{VENV_BIN}:/usr/bin:/bin",
        "MODEL_REPOSITORY_DIR": str(tmp / "models"),
        "VR_TINY_CHECKPOINT_DIR": str(tmp / "tiny"),
        "MODELREPO_SET": "",
        **values,
    }


def run_entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_tritonserver_flags_exist_in_2_51(tmp_path: Path) -> None:
    argv, env = tritonserver_argv(tmp_path)
    result = subprocess.run([argv[0], "--help"], env=env, capture_output=True, text=True, timeout=30, check=False)
    help_text = result.stdout + result.stderr
    known = set(re.findall(r"^\s+(--[a-z0-9-]+)", help_text, re.MULTILINE))
    assert len(known) > 30, help_text[:500]
    script = ENTRYPOINT.read_text()
    exec_block = script[script.index("exec tritonserver") :]
    used = set(re.findall(r"(--[a-z0-9-]+)=", exec_block))
    assert used and used <= known, sorted(used - known)


def test_prod_never_serves_the_random_checkpoint(tmp_path: Path) -> None:
    _, triton_env = tritonserver_argv(tmp_path)
    env = entrypoint_env(tmp_path, triton_env, VR_PROFILE="prod", VR_CHECKPOINT_DIR=str(tmp_path / "missing"))
    result = run_entrypoint(env)
    assert result.returncode == 66, result
    assert "prod never serves the random one" in result.stderr
    assert not (tmp_path / "tiny").exists() and not (tmp_path / "models").exists()


def test_unknown_knob_stops_before_triton(tmp_path: Path, tiny_checkpoint: Path) -> None:
    _, triton_env = tritonserver_argv(tmp_path)
    env = entrypoint_env(
        tmp_path,
        triton_env,
        VR_CHECKPOINT_DIR=str(tiny_checkpoint),
        MODELREPO_SET="text2semantic.max_slots=4 text2semantic.no_such_knob=1",
    )
    result = run_entrypoint(env)
    assert result.returncode == 2, result
    assert "no_such_knob" in result.stderr
    assert "/nonexistent" not in result.stderr, "tritonserver must not be reached"


@pytest.mark.slow
def test_start_builds_the_repository_from_the_tiny_checkpoint_and_serves_it(tmp_path: Path) -> None:
    """No checkpoint mounted (dev): the entrypoint makes the tiny random one, says so, builds the repository with
    the given knobs, and Triton serves every model; its metrics port answers."""
    argv, triton_env = tritonserver_argv(tmp_path)
    ports = TritonPorts.free()
    bin_dir = wrapper_bin(tmp_path, argv[0])
    env = entrypoint_env(
        tmp_path,
        triton_env,
        VR_PROFILE="dev",
        VR_CHECKPOINT_DIR=str(tmp_path / "openaudio-s1-mini"),
        MODELREPO_SET="text2semantic.max_slots=2 codec_decoder.max_batch_size=4",
    )
    env["PATH"] = f"{bin_dir}:{VENV_BIN}:/usr/bin:/bin"
    backends = next(a for a in argv if a.startswith("--backend-directory="))
    service = Service(
        "triton-entrypoint",
        [
            "bash",
            str(ENTRYPOINT),
            backends,
            f"--http-port={ports.http}",
            f"--grpc-port={ports.grpc}",
            f"--metrics-port={ports.metrics}",
        ],
        http_ok(f"http://127.0.0.1:{ports.http}/v2/health/ready"),
        tmp_path / "logs" / "entrypoint.log",
        env=env,
        timeout_s=240,
    )
    with Supervisor(tmp_path / "logs") as supervisor:
        supervisor.start(service)
        log = service.log_tail(400)
        assert "TINY RANDOM checkpoint" in log
        assert (tmp_path / "tiny" / "model.pth").is_file()
        configs = {p.parent.name: p.read_text() for p in (tmp_path / "models").glob("*/config.pbtxt")}
        assert set(configs) == {"codec_decoder", "codec_encoder", "text2semantic", "tts"}
        assert "max_batch_size: 4" in configs["codec_decoder"]
        with urllib.request.urlopen(f"http://127.0.0.1:{ports.http}/v2/repository/index", data=b"{}") as resp:
            index = json.loads(resp.read())
        assert {m["name"]: m.get("state") for m in index} == {name: "READY" for name in configs}
        with urllib.request.urlopen(f"http://127.0.0.1:{ports.metrics}/metrics") as resp:
            assert b"nv_inference_request_success" in resp.read()
