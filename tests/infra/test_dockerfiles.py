"""The Dockerfiles, checked without a Docker engine (none runs here, so no image is built): stages, users, health
checks and entry modules exist; every install goes through constraints.txt like the Makefile's; the gateway/worker
image needs no torch; the Triton image's base matches our tritonclient and its python-backend stub swap works with
the files the pinned nvidia-pytriton wheel really has."""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from voicereel.stack import REPO_ROOT

DOCKER = REPO_ROOT / "infra" / "docker"
APP_DOCKERFILE = DOCKER / "Dockerfile"
TRITON_DOCKERFILE = DOCKER / "Dockerfile.triton"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Instructions by stage name (FROM ... AS name; unnamed stages by index)."""
    result: dict[str, list[tuple[str, str]]] = {}
    current = None
    for keyword, args in instructions(path):
        if keyword == "FROM":
            parts = args.split()
            current = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(result))
            result[current] = [(keyword, args)]
        elif current is not None:
            result[current].append((keyword, args))
    return result


def effective(path: Path, stage: str, keyword: str) -> str | None:
    """The last `keyword` in `stage` or the stages it is built FROM (USER, CMD, HEALTHCHECK inherit)."""
    all_stages = stages(path)
    found = None
    chain = []
    name: str | None = stage
    while name in all_stages:
        chain.append(name)
        name = all_stages[name][0][1].split()[0]
    for name in reversed(chain):
        for kw, args in all_stages[name]:
            if kw == keyword:
                found = args
    return found


def pip_installs(path: Path) -> list[str]:
    commands = []
    for keyword, args in instructions(path):
        if keyword == "RUN":
            commands += [c.strip() for c in re.split(r"&&|;", args) if re.search(r"\bpip install\b", c)]
    return commands


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[name.strip().lower()] = version.strip()
    return pins


def makefile_no_deps_packages() -> list[str]:
    for line in (REPO_ROOT / "Makefile").read_text().splitlines():
        if "--no-deps" in line and "pip install" in line:
            return line.split("constraints.txt", 1)[1].split()
    raise AssertionError("Makefile has no --no-deps install line")


# --- gateway and worker image ----------------------------------------------------------------------------------


def test_app_image_targets_run_unprivileged_with_health_checks() -> None:
    all_stages = stages(APP_DOCKERFILE)
    assert {"build", "runtime", "gateway", "worker"} <= set(all_stages)
    for target, module in (("gateway", "gateway"), ("worker", "worker")):
        user = effective(APP_DOCKERFILE, target, "USER")
        assert user and user.split(":")[0] not in ("root", "0"), f"{target} runs as {user}"
        cmd = effective(APP_DOCKERFILE, target, "CMD")
        assert cmd is not None and json_argv(cmd) == ["python", "-m", module]
        health = effective(APP_DOCKERFILE, target, "HEALTHCHECK")
        assert health and health.endswith(f'"/app/infra/docker/healthcheck.py", "{target}"]'), health
    assert effective(APP_DOCKERFILE, "gateway", "EXPOSE") == "8080"
    assert all_stages["runtime"][0][1].startswith("${PYTHON_IMAGE}")
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in APP_DOCKERFILE.read_text()


def json_argv(text: str) -> list[str]:
    import json

    value = json.loads(text)
    assert isinstance(value, list)
    return [str(v) for v in value]


@pytest.mark.parametrize("module", ["gateway", "worker"])
def test_entry_modules_exist(module: str) -> None:
    """`python -m gateway` / `python -m worker` are the images' commands."""
    assert (REPO_ROOT / module / "__main__.py").is_file(), f"{module}/__main__.py is missing: the image cannot start"


def test_app_image_installs_like_the_makefile_without_torch() -> None:
    installs = pip_installs(APP_DOCKERFILE)
    project = [c for c in installs if "-e ." in c or "-r " in c]
    assert project, installs
    for command in project:
        assert "-c constraints.txt" in command, command
    for command in installs:
        words = command.split()
        assert not any("engine" in w or "dev]" in w or w.startswith("torch") for w in words), command
        for package in makefile_no_deps_packages():
            assert package not in words, f"{package} (engine only) installed in the gateway/worker image"


def test_gateway_and_worker_never_import_torch() -> None:
    """Every module of the gateway and worker packages imports without pulling in torch (so the image needs none)."""
    code = (
        "import importlib, pkgutil, sys\n"
        "for package in ('gateway', 'worker'):\n"
        "    module = importlib.import_module(package)\n"
        "    for info in pkgutil.walk_packages(module.__path__, package + '.'):\n"
        "        if not info.name.endswith('__main__'):\n"
        "            importlib.import_module(info.name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('gateway', 'worker'))\n"
        "print(len(loaded), 'torch' in sys.modules, [m for m in sys.modules if m.split('.')[0] == 'torch'][:3])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    count, has_torch, _ = result.stdout.split(" ", 2)
    assert int(count) > 10
    assert has_torch == "False", f"torch was imported: {result.stdout}"


def dockerignore_allows(ignore_file: Path, path: str) -> bool:
    """Docker's rule: the last matching pattern decides; `!` re-includes."""
    allowed = True
    for raw in ignore_file.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern == "**" or any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            allowed = negate
    return allowed


@pytest.mark.parametrize("dockerfile", [APP_DOCKERFILE, TRITON_DOCKERFILE], ids=lambda p: p.name)
def test_copy_sources_exist_and_reach_the_build_context(dockerfile: Path) -> None:
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore.is_file(), f"{ignore.name} keeps .venv, checkpoints and .git out of the context"
    assert not dockerignore_allows(ignore, ".venv/bin/python") and not dockerignore_allows(ignore, "checkpoints/x")
    copies = [args for keyword, args in instructions(dockerfile) if keyword == "COPY" and "--from" not in args]
    assert copies
    for args in copies:
        *sources, _dest = shlex.split(args)
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"{dockerfile.name}: COPY {source}: no such path"
            assert dockerignore_allows(ignore, source), f"{dockerfile.name}: COPY {source} is excluded by {ignore.name}"


def test_scripts_the_images_run_are_executable() -> None:
    for name in ("entrypoint.sh", "triton-entrypoint.sh"):
        path = DOCKER / name
        assert path.stat().st_mode & 0o111, f"{name} must be executable (ENTRYPOINT runs it directly)"
        assert path.read_text().startswith("#!/usr/bin/env bash\n")
        check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr


# --- Triton image ------------------------------------------------------------------------------------------------


def test_triton_base_matches_our_tritonclient() -> None:
    """NGC release YY.MM ships Triton 2.(42 + 12*(YY-24) + MM-1): 24.10 is 2.51, the version of our tritonclient
    (and of the nvidia-pytriton stub the image borrows)."""
    base = stages(TRITON_DOCKERFILE)["0"][0][1]
    match = re.fullmatch(r"nvcr\.io/nvidia/tritonserver:(\d\d)\.(\d\d)-py3", base)
    assert match, base
    yy, mm = int(match.group(1)), int(match.group(2))
    server = f"2.{42 + 12 * (yy - 24) + mm - 1}.0"
    pins = constraint_pins()
    assert pins["tritonclient"] == server, (base, pins["tritonclient"])
    assert pins["nvidia-pytriton"] == "0.7.0"  # the pytriton release that carries Triton 2.51


def test_triton_image_installs_the_engine_like_the_makefile() -> None:
    installs = pip_installs(TRITON_DOCKERFILE)
    pins = constraint_pins()
    torch_line = next(c for c in installs if "torch==" in c)
    assert f"torch=={pins['torch']}" in torch_line and f"torchaudio=={pins['torchaudio']}" in torch_line
    engine = next(c for c in installs if "'.[engine]'" in c)
    no_deps = next(c for c in installs if "--no-deps" in c)
    for command in (torch_line, engine, no_deps):
        assert "-c constraints.txt" in command, command
    assert no_deps.split("constraints.txt", 1)[1].split() == makefile_no_deps_packages()
    user = effective(TRITON_DOCKERFILE, "0", "USER")
    assert user and user.split(":")[0] not in ("root", "0")
    text = TRITON_DOCKERFILE.read_text()
    assert "python3.11 -m venv" in text and "python_backend_stubs/3.11/" in text


def test_pytriton_wheel_has_the_stub_the_triton_image_copies(tmp_path: Path) -> None:
    """The 3.11 stub exists in the pinned wheel and resolves every library with only the libcudart the image copies
    next to it (plus system libraries): the Dockerfile's `cp` + `patchelf --set-rpath '$ORIGIN'` plan holds."""
    import importlib.util
    import shutil

    spec = importlib.util.find_spec("pytriton")  # importing it would pull in its client (gevent)
    assert spec is not None and spec.submodule_search_locations
    site = Path(next(iter(spec.submodule_search_locations))).parent
    stub = site / "pytriton" / "tritonserver" / "python_backend_stubs" / "3.11" / "triton_python_backend_stub"
    assert stub.is_file()
    cudart = sorted((site / "nvidia_pytriton.libs").glob("libcudart-*.so.*"))
    assert len(cudart) == 1, cudart
    shutil.copy2(stub, tmp_path / stub.name)
    shutil.copy2(cudart[0], tmp_path / cudart[0].name)
    result = subprocess.run(
        ["ldd", str(tmp_path / stub.name)],
        env={"LD_LIBRARY_PATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "not found" not in result.stdout, result.stdout
    assert cudart[0].name in result.stdout and "libpython3.11" in result.stdout
