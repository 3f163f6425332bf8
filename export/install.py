"""Stage 5: install verified artifacts into a built Triton model repository.

- The repository is built by `voicereel.modelrepo.build_repository` (every model of `model_repository/`, configs
  filled from the templates by the strict filler), with the codec models' knob `runtime` set to `onnxruntime`:
  `codec_encoder` and `codec_decoder` then serve the exported ONNX files, copied to `<model>/1/model.onnx`,
  through ONNX Runtime inside the python backend (`voicereel.engine.onnx_codec`). Their contract is unchanged.
  Their instances default to CPU when this ONNX Runtime has no CUDA provider (`instance_kind` auto would pick the
  GPU where one is visible, and the model would refuse to load there); `--set` overrides either knob.
- Where stage 4 verified a TensorRT plan, it is installed as its own model, `codec_encoder_trt` /
  `codec_decoder_trt` (`platform: "tensorrt_plan"`, dynamic batching, instance group from the knobs of
  `export/templates/`), at `<model>/1/model.plan`. Without TensorRT there is no plan, and nothing is installed
  for it.

Overrides use the repository's knob syntax: `{"codec_decoder": {"max_batch_size": 16}, "codec_decoder_trt":
{...}, "shared": {...}}`; scopes of `export/templates/` go to the plan models, the rest to `build_repository`.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnxruntime

from export.names import CODEC_GRAPHS
from export.onnx_export import sha256
from export.report import Report, ReportError
from voicereel.modelrepo import build_repository, render_configs
from voicereel.modelrepo.build import DECLARATION, SHARED_SCOPE, SOURCE, discover, resolve_values
from voicereel.modelrepo.knobs import load_declaration, load_shared

TEMPLATES = Path(__file__).resolve().parent / "templates"
ONNX_FILE = "model.onnx"
PLAN_FILE = "model.plan"
RUNTIME_KNOB = "runtime"


def plan_model(graph: str) -> str:
    return f"{graph}_trt"


def split_overrides(
    overrides: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(overrides for model_repository/, overrides for export/templates/)."""
    plan_models = {d.name for d in discover(TEMPLATES)}
    repository: dict[str, dict[str, Any]] = {}
    plans: dict[str, dict[str, Any]] = {}
    for scope, values in overrides.items():
        (plans if scope in plan_models else repository)[scope] = dict(values)
    return repository, plans


def knob_values(model: str, overrides: Mapping[str, Mapping[str, Any]], checkpoint: Path) -> dict[str, Any]:
    """Resolved knobs of one model (of model_repository/ or export/templates/), shared ones included."""
    source = TEMPLATES if (TEMPLATES / model).is_dir() else SOURCE
    shared = load_shared(source / DECLARATION)
    declaration = load_declaration(source / model, shared)
    values = resolve_values(declaration.knobs, overrides.get(model, {}), f"model {model}")
    shared_given = {"checkpoint_dir": checkpoint, **(overrides.get(SHARED_SCOPE, {}) if source == SOURCE else {})}
    shared_values = resolve_values(shared, shared_given, "shared knobs")
    values.update({name: shared_values[name] for name in declaration.shared})
    return values


def verified_file(report: Report, graph: str, kind: str) -> Path:
    """The artifact of `graph` (`onnx` or `plan`) if its verification passed and the file is unchanged since."""
    layout = report.layout
    if kind == "onnx":
        record, verification, path = (
            report.graph(graph).get("onnx"),
            report.graph(graph).get("verify_onnx"),
            layout.onnx(graph),
        )
    else:
        record, verification, path = (
            report.graph(graph).get("plan"),
            report.graph(graph).get("verify_plan"),
            layout.plan(graph),
        )
    if record is None or verification is None:
        raise ReportError(f"{graph}: no verified {kind} in {layout.report_path}")
    if not verification.get("passed"):
        raise ReportError(f"{graph}: its {kind} failed verification; it is not installed")
    if not path.is_file() or sha256(path) != record["sha256"]:
        raise ReportError(f"{path} is missing or changed since it was verified; run the export again")
    return path


def install(
    report: Report, repository: Path, checkpoint: Path, overrides: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Build `repository` and install the verified artifacts of `report`; returns what was installed."""
    onnx_files = {graph: verified_file(report, graph, "onnx") for graph in CODEC_GRAPHS}
    plans = {
        graph: verified_file(report, graph, "plan")
        for graph in CODEC_GRAPHS
        if report.graph(graph).get("verify_plan", {}).get("passed")
    }
    repo_overrides, plan_overrides = split_overrides(overrides)
    unused = sorted(set(plan_overrides) - {plan_model(graph) for graph in plans})
    if unused:
        raise ReportError(f"overrides for {unused} given, but no verified plan of theirs to install")
    cpu_only = "CUDAExecutionProvider" not in onnxruntime.get_available_providers()
    for graph in CODEC_GRAPHS:
        knobs = repo_overrides.setdefault(graph, {})
        knobs.setdefault(RUNTIME_KNOB, "onnxruntime")
        if knobs[RUNTIME_KNOB] == "onnxruntime" and cpu_only:
            knobs.setdefault("instance_kind", "cpu")  # this ONNX Runtime has no GPU provider (auto would pick gpu)
    build_repository(repository, checkpoint, repo_overrides)
    installed: dict[str, Any] = {"repository": str(repository.resolve()), "models": {}}
    for graph, path in onnx_files.items():
        target = repository / graph / "1" / ONNX_FILE
        shutil.copyfile(path, target)
        installed["models"][graph] = {"file": str(target), "runtime": repo_overrides[graph][RUNTIME_KNOB]}
    if plans:
        models = [plan_model(graph) for graph in plans]
        configs = render_configs(checkpoint, plan_overrides, source=TEMPLATES, models=models)
        for graph, path in plans.items():
            model_dir = repository / plan_model(graph)
            (model_dir / "1").mkdir(parents=True, exist_ok=True)
            (model_dir / "config.pbtxt").write_text(configs[plan_model(graph)])
            shutil.copyfile(path, model_dir / "1" / PLAN_FILE)
            plan_file = str(model_dir / "1" / PLAN_FILE)
            installed["models"][plan_model(graph)] = {"file": plan_file, "platform": "tensorrt_plan"}
    return installed
