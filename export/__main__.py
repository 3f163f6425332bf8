"""`python -m export` (`make export EXPORT_ARGS="..."`): checkpoint -> ONNX -> TensorRT plan -> model repository.

Examples:
  python -m export                                   # all stages, Settings' active checkpoint
  python -m export --checkpoint checkpoints/tiny --skip-tensorrt
  python -m export --stage verify-onnx --stop-stage verify-onnx
  python -m export --stage install --out .run/model_repository --set codec_decoder.max_batch_size=16

Stages: 1 onnx, 2 verify-onnx, 3 build-trt, 4 verify-trt, 5 install. Exit codes: 0 ok, 2 usage, 3 checkpoint,
11-15 the failing stage (10 + its number), 20 TensorRT not available here. Figures go to <build-dir>/report.json.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from export.names import ALL_GRAPHS
from export.pipeline import ExitCode, Options, Stage, run_pipeline

DEFAULT_BUILD_ROOT = Path("build/export")
DEFAULT_REPOSITORY = Path(".run/model_repository")


def _stage(text: str) -> Stage:
    try:
        return Stage.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _graphs(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(set(names) - set(ALL_GRAPHS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"graphs must be a comma-separated subset of {', '.join(ALL_GRAPHS)}")
    return names


def parser() -> argparse.ArgumentParser:
    stages = ", ".join(f"{s.value} {s.label}" for s in Stage)
    p = argparse.ArgumentParser(
        prog="python -m export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", type=Path, help="checkpoint directory (default: Settings' active checkpoint)")
    p.add_argument("--build-dir", type=Path, help=f"where artifacts go (default: {DEFAULT_BUILD_ROOT}/<checkpoint>)")
    p.add_argument("--out", type=Path, default=DEFAULT_REPOSITORY, help="model repository stage 5 builds")
    p.add_argument("--stage", type=_stage, default=Stage.ONNX, help=f"first stage ({stages})")
    p.add_argument("--stop-stage", type=_stage, default=Stage.INSTALL, help="last stage (same names)")
    p.add_argument("--graphs", type=_graphs, default=ALL_GRAPHS, help=f"subset of {','.join(ALL_GRAPHS)}")
    p.add_argument("--seed", type=int, default=0, help="seed of the random verification inputs")
    p.add_argument(
        "--precision",
        choices=["auto", "fp16", "bf16", "fp32"],
        default="auto",
        help="TensorRT precision (auto: fp16, then bf16, then fp32, first within thresholds)",
    )
    p.add_argument("--workspace-gb", type=float, default=4.0, help="TensorRT builder workspace")
    p.add_argument("--skip-tensorrt", action="store_true", help="do not run stages 3 and 4 (no plan is built)")
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="SCOPE.KNOB=VALUE",
        help="knob override for stage 5 and the plan profiles (as python -m voicereel.modelrepo)",
    )
    return p


def options_from(args: argparse.Namespace) -> Options:
    from voicereel.modelrepo.__main__ import parse_setting
    from voicereel.settings import get_settings

    checkpoint = args.checkpoint if args.checkpoint is not None else get_settings().active_checkpoint_dir
    build_dir = args.build_dir if args.build_dir is not None else DEFAULT_BUILD_ROOT / Path(checkpoint).resolve().name
    overrides: dict[str, dict[str, Any]] = {}
    for text in args.settings:
        scope, knob, value = parse_setting(text)
        overrides.setdefault(scope, {})[knob] = value
    return Options(
        checkpoint=Path(checkpoint),
        build_dir=build_dir,
        repository=args.out,
        first=args.stage,
        last=args.stop_stage,
        graphs=args.graphs,
        seed=args.seed,
        precision=args.precision,
        workspace_gb=args.workspace_gb,
        skip_tensorrt=args.skip_tensorrt,
        overrides=overrides,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.stage > args.stop_stage:
        print(f"export: --stage {args.stage.label} comes after --stop-stage {args.stop_stage.label}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        options = options_from(args)
    except ValueError as exc:  # a malformed --set (KnobError is a ValueError)
        print(f"export: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    return run_pipeline(options)


if __name__ == "__main__":
    raise SystemExit(main())
