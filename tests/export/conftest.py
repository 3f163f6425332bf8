"""One `python -m export` run on the tiny checkpoint, shared by the export tests (CI's `make export`, in a tmp dir).

The run is the real CLI in a subprocess (stages 1, 2 and 5; 3 and 4 skipped with --skip-tensorrt, their own
behaviour without TensorRT is tested separately), so what the tests read is what an operator gets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from voicereel.stack import REPO_ROOT


@dataclass(frozen=True)
class ExportRun:
    checkpoint: Path
    build_dir: Path
    repository: Path
    returncode: int
    output: str

    @property
    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.build_dir / "report.json").read_text())
        return data

    def onnx(self, graph: str) -> Path:
        return self.build_dir / "onnx" / f"{graph}.onnx"


def _run_export(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m export ARGS` from the repository root, one thread per op (the CI machine has 2 cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "export", *map(str, args)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def export_run(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> ExportRun:
    root = tmp_path_factory.mktemp("export")
    build_dir, repository = root / "build", root / "model_repository"
    done = _run_export(
        "--checkpoint", tiny_checkpoint, "--build-dir", build_dir, "--out", repository, "--skip-tensorrt"
    )
    assert done.returncode == 0, f"python -m export failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
    return ExportRun(tiny_checkpoint, build_dir, repository, done.returncode, done.stdout + done.stderr)


@pytest.fixture(scope="session")
def run_export() -> Callable[..., subprocess.CompletedProcess[str]]:
    """The CLI runner, for tests that run further stages on their own build directories."""
    return _run_export
