"""The staged export: each stage checks its own output and fails with its own exit code.

| # | stage | does | exit code on failure |
| --- | --- | --- | --- |
| 1 | `onnx` | export the graphs to ONNX (named tensors, dynamic axes, opset 17) | 11 |
| 2 | `verify-onnx` | ONNX Runtime vs PyTorch on fixed and random inputs; thresholds in export/verify.py | 12 |
| 3 | `build-trt` | TensorRT plans of the codec graphs (fp16, bf16 or fp32 as the check allows), named profiles | 13 |
| 4 | `verify-trt` | the plans vs PyTorch, same cases within each profile | 14 |
| 5 | `install` | build the Triton repository with the codec on the exported ONNX, plus verified plans | 15 |

Exit 20: TensorRT is not available here (stage 3 or 4 asked for), said in one line; no plan is pretended.
Exit 3: the checkpoint is missing or invalid; exit 2: bad command line.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from export.names import ALL_GRAPHS
from export.report import BuildLayout, Report, ReportError

if TYPE_CHECKING:
    from export.graphs import ExportSources


class Stage(IntEnum):
    ONNX = 1
    VERIFY_ONNX = 2
    BUILD_TRT = 3
    VERIFY_TRT = 4
    INSTALL = 5

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, text: str) -> Stage:
        for stage in cls:
            if text in (str(stage.value), stage.label):
                return stage
        choices = ", ".join(f"{s.value}|{s.label}" for s in cls)
        raise ValueError(f"unknown stage {text!r}; one of {choices}")


class ExitCode(IntEnum):
    OK = 0
    USAGE = 2
    CHECKPOINT = 3
    ONNX_EXPORT = 11
    ONNX_VERIFY = 12
    PLAN_BUILD = 13
    PLAN_VERIFY = 14
    INSTALL = 15
    TENSORRT_UNAVAILABLE = 20


STAGE_FAILURE = {
    Stage.ONNX: ExitCode.ONNX_EXPORT,
    Stage.VERIFY_ONNX: ExitCode.ONNX_VERIFY,
    Stage.BUILD_TRT: ExitCode.PLAN_BUILD,
    Stage.VERIFY_TRT: ExitCode.PLAN_VERIFY,
    Stage.INSTALL: ExitCode.INSTALL,
}


class StageFailed(RuntimeError):
    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Options:
    checkpoint: Path
    build_dir: Path
    repository: Path
    first: Stage = Stage.ONNX
    last: Stage = Stage.INSTALL
    graphs: tuple[str, ...] = ALL_GRAPHS
    seed: int = 0
    precision: str = "auto"
    workspace_gb: float = 4.0
    skip_tensorrt: bool = False
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass
class Context:
    options: Options
    layout: BuildLayout
    checkpoint: dict[str, Any]
    out: TextIO
    report: Report | None = None

    @cached_property
    def sources(self) -> ExportSources:
        from export.graphs import ExportSources

        return ExportSources(Path(self.checkpoint["path"]))

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def loaded_report(self) -> Report:
        if self.report is None:
            self.report = Report.load(self.layout, self.checkpoint)
        return self.report


def run_pipeline(options: Options, out: TextIO = sys.stdout) -> int:
    """Run stages `first..last`; returns the exit code (0 when every selected stage passed)."""
    from voicereel.engine.checkpoints import CheckpointError, inspect_checkpoint

    try:
        info = inspect_checkpoint(options.checkpoint)
    except CheckpointError as exc:
        print(f"export: {exc}", file=out)
        return ExitCode.CHECKPOINT
    checkpoint = {"path": str(info.root.resolve()), "kind": info.kind, "random_weights": info.random_weights}
    context = Context(options, BuildLayout(options.build_dir), checkpoint, out)
    context.say(f"export: checkpoint {checkpoint['path']} ({info.kind}), build dir {options.build_dir}")
    if info.random_weights:
        context.say("export: RANDOM WEIGHTS: the exported models produce noise, not speech")
    for stage in Stage:
        if not options.first <= stage <= options.last:
            continue
        if stage in (Stage.BUILD_TRT, Stage.VERIFY_TRT):
            if options.skip_tensorrt:
                context.say(f"stage {stage.value} {stage.label}: skipped (--skip-tensorrt); no plan built or verified")
                continue
            missing = _tensorrt_missing()
            if missing:
                context.say(f"stage {stage.value} {stage.label}: {missing}; no plan built (exit 20)")
                return ExitCode.TENSORRT_UNAVAILABLE
        context.say(f"stage {stage.value} {stage.label}:")
        try:
            _runner(stage)(context)
        except StageFailed as exc:
            context.say(f"stage {stage.value} {stage.label} FAILED (exit {exc.code.value}): {exc}")
            return exc.code
        except ReportError as exc:
            context.say(f"stage {stage.value} {stage.label} FAILED (exit {STAGE_FAILURE[stage].value}): {exc}")
            return STAGE_FAILURE[stage]
        except Exception as exc:  # anything else still fails this stage with its own code, traceback on stderr
            traceback.print_exc()
            code = STAGE_FAILURE[stage].value
            context.say(f"stage {stage.value} {stage.label} FAILED (exit {code}): {type(exc).__name__}: {exc}")
            return STAGE_FAILURE[stage]
    context.say("export: done")
    return ExitCode.OK


def _runner(stage: Stage) -> Callable[[Context], None]:
    from export import stages  # imported here: the CLI answers usage and TensorRT questions without loading models

    runners: dict[Stage, Callable[[Context], None]] = {
        Stage.ONNX: stages.export_onnx,
        Stage.VERIFY_ONNX: stages.verify_onnx,
        Stage.BUILD_TRT: stages.build_plans,
        Stage.VERIFY_TRT: stages.verify_plans,
        Stage.INSTALL: stages.install_repository,
    }
    return runners[stage]


def _tensorrt_missing() -> str:
    """Why TensorRT cannot run here, or "" when it can."""
    from export.tensorrt import TensorRTUnavailable, load_tensorrt

    try:
        load_tensorrt()
    except TensorRTUnavailable as exc:
        return str(exc)
    return ""
