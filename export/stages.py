"""The five stages (see export/pipeline.py for the table). Each raises `StageFailed` with its own exit code."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from export.install import install, knob_values, plan_model
from export.names import CODEC_GRAPHS
from export.onnx_export import export_graph, sha256
from export.pipeline import Context, ExitCode, StageFailed
from export.report import Report, ReportError
from export.tensorrt import PRECISIONS, PlanBuildError, ShapeProfile, build_plan, codec_profiles, plan_runner
from export.verify import FULL, REDUCED, Verification, onnxruntime_runner, verify_graph
from voicereel.engine.codec import ChunkPlan


def export_onnx(ctx: Context) -> None:
    report = ctx.report = Report.start(ctx.layout, ctx.checkpoint)
    for graph in ctx.options.graphs:
        path = ctx.layout.onnx(graph)
        try:
            record = export_graph(ctx.sources, graph, path, f"{ctx.checkpoint['path']} ({ctx.checkpoint['kind']})")
        except Exception as exc:
            raise StageFailed(ExitCode.ONNX_EXPORT, f"{graph}: {type(exc).__name__}: {exc}") from exc
        report.put(graph, "onnx", record)
        signature = f"{', '.join(record['inputs'])} -> {', '.join(record['outputs'])}"
        ctx.say(
            f"  {path} ({record['bytes'] / 1e6:.1f} MB, opset {record['opset']}, "
            f"{record['export_seconds']} s): {signature}"
        )


def _selected_exports(ctx: Context, report: Report, graphs: tuple[str, ...]) -> list[str]:
    chosen = [graph for graph in graphs if graph in report.exported()]
    if not chosen:
        raise ReportError(f"none of {list(graphs)} was exported to {ctx.layout.root}; run stage 1 (onnx) first")
    return chosen


def verify_onnx(ctx: Context) -> None:
    report = ctx.loaded_report()
    failures: list[str] = []
    for graph in _selected_exports(ctx, report, ctx.options.graphs):
        path = ctx.layout.onnx(graph)
        if not path.is_file() or sha256(path) != report.graph(graph)["onnx"]["sha256"]:
            raise ReportError(f"{path} is missing or changed since stage 1; run stage 1 (onnx) again")
        started = time.perf_counter()
        result = verify_graph(ctx.sources, graph, onnxruntime_runner(path), FULL, seed=ctx.options.seed)
        record = {**result.as_json(), "runtime": "onnxruntime CPUExecutionProvider", "seconds": _since(started)}
        report.put(graph, "verify_onnx", record)
        _say_verification(ctx, result)
        failures.extend(f"{graph}: {problem}" for problem in result.failures)
    if failures:
        raise StageFailed(
            ExitCode.ONNX_VERIFY, f"{len(failures)} comparisons over threshold: " + "; ".join(failures[:5])
        )


def _say_verification(ctx: Context, result: Verification) -> None:
    ctx.say(f"  {result.summary()}")
    for problem in result.failures[:5]:
        ctx.say(f"    {problem}")


def _profiles(ctx: Context) -> dict[str, ShapeProfile]:
    checkpoint = Path(ctx.checkpoint["path"])
    overrides = ctx.options.overrides
    shared = knob_values("codec_decoder", overrides, checkpoint)
    window = ChunkPlan(int(shared["codec_chunk_frames"]), int(shared["codec_context_frames"])).window_frames
    return codec_profiles(
        knob_values(plan_model("codec_encoder"), overrides, checkpoint),
        knob_values(plan_model("codec_decoder"), overrides, checkpoint),
        window,
    )


def build_plans(ctx: Context) -> None:
    report = ctx.loaded_report()
    profiles = _profiles(ctx)
    ladder = PRECISIONS if ctx.options.precision == "auto" else (ctx.options.precision,)
    for graph in _selected_exports(ctx, report, tuple(g for g in ctx.options.graphs if g in CODEC_GRAPHS)):
        if not report.graph(graph).get("verify_onnx", {}).get("passed"):
            raise ReportError(f"{graph}: its ONNX model has not passed stage 2 (verify-onnx)")
        profile, plan = profiles[graph], ctx.layout.plan(graph)
        attempts: list[dict[str, Any]] = []
        for precision in ladder:
            started = time.perf_counter()
            try:
                build_plan(ctx.layout.onnx(graph), plan, profile, precision, ctx.options.workspace_gb)
            except PlanBuildError as exc:
                attempts.append({"precision": precision, "error": str(exc)})
                ctx.say(f"  {graph} {precision}: {exc}")
                continue
            check = verify_graph(
                ctx.sources,
                graph,
                plan_runner(plan),
                _precision_class(precision),
                ctx.options.seed,
                profile.limits,
                kinds=("fixed",),
            )
            attempts.append({"precision": precision, "check": check.as_json(), "seconds": _since(started)})
            ctx.say(f"  {graph} {precision} plan, fixed-input check: {check.summary()}")
            if check.passed:
                record = {
                    "file": plan.name,
                    "sha256": sha256(plan),
                    "precision": precision,
                    "profile": profile.as_json(),
                    "attempts": attempts,
                }
                report.put(graph, "plan", record)
                break
            plan.unlink()
        else:
            report.put(graph, "plan_attempts", attempts)
            raise StageFailed(
                ExitCode.PLAN_BUILD, f"{graph}: no precision in {list(ladder)} gave a plan within thresholds"
            )


def verify_plans(ctx: Context) -> None:
    report = ctx.loaded_report()
    profiles = _profiles(ctx)
    failures: list[str] = []
    graphs = [g for g in ctx.options.graphs if g in CODEC_GRAPHS]
    for graph in graphs:
        record = report.require(graph, "plan", "TensorRT plan", "3 (build-trt)")
        plan = ctx.layout.plan(graph)
        if not plan.is_file() or sha256(plan) != record["sha256"]:
            raise ReportError(f"{plan} is missing or changed since stage 3; run stage 3 (build-trt) again")
        started = time.perf_counter()
        result = verify_graph(
            ctx.sources,
            graph,
            plan_runner(plan),
            _precision_class(record["precision"]),
            ctx.options.seed,
            profiles[graph].limits,
        )
        report.put(graph, "verify_plan", {**result.as_json(), "runtime": "tensorrt", "seconds": _since(started)})
        _say_verification(ctx, result)
        failures.extend(f"{graph}: {problem}" for problem in result.failures)
    if failures:
        raise StageFailed(
            ExitCode.PLAN_VERIFY, f"{len(failures)} comparisons over threshold: " + "; ".join(failures[:5])
        )


def install_repository(ctx: Context) -> None:
    from voicereel.modelrepo import KnobError

    report = ctx.loaded_report()
    try:
        installed = install(report, ctx.options.repository, Path(ctx.checkpoint["path"]), ctx.options.overrides)
    except (KnobError, OSError) as exc:
        raise StageFailed(ExitCode.INSTALL, f"{type(exc).__name__}: {exc}") from exc
    report.stage("install", installed)
    for model, entry in installed["models"].items():
        how = entry.get("runtime") or entry.get("platform")
        ctx.say(f"  {model}: {entry['file']} ({how})")
    if not any(model.endswith("_trt") for model in installed["models"]):
        ctx.say("  no TensorRT plan installed (none was built and verified)")
    ctx.say(f"  repository: {installed['repository']}")


def _precision_class(precision: str) -> str:
    return FULL if precision == "fp32" else REDUCED


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 2)
