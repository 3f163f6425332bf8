"""Stage 1: trace each graph to ONNX (opset 17, TorchScript exporter), then check the file says what we meant.

After writing, the file is loaded back and checked: the ONNX checker passes, the input and output names are
exactly the spec's in order, and every dynamic axis carries its name (so Triton and TensorRT profiles can refer
to it). Facts a runner needs (sample rate, frame size, token ids ...) go into the model's metadata under
`voicereel.*`.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from pathlib import Path
from typing import Any

import onnx
import torch

from export.codec_graphs import traceable_conv_padding
from export.graphs import ExportSources, GraphSpec
from export.names import CODEC_GRAPHS
from export.symbolics import OPSET, decode_step_symbolics

METADATA_PREFIX = "voicereel."


class ExportCheckError(RuntimeError):
    """An exported file does not match its spec (names, axes) or fails the ONNX checker."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_graph(sources: ExportSources, name: str, path: Path, checkpoint_label: str) -> dict[str, Any]:
    """Export graph `name` to `path`; returns the record stage 1 keeps (file, hash, tensors, timing)."""
    spec = sources.spec(name)
    module = sources.module(name)
    example = sources.example(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    context = traceable_conv_padding() if name in CODEC_GRAPHS else decode_step_symbolics()
    with context, warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # Expected and harmless here: the tracer's notes that Python-side values become constants (each one is
        # listed in export/codec_graphs.py and covered by verification at other shapes), and torch's notice
        # that this exporter is the older of its two (chosen on purpose: see export/symbolics.py).
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*legacy TorchScript-based ONNX.*")
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_axes=spec.dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    seconds = time.perf_counter() - started
    _stamp_and_check(path, spec, checkpoint_label)
    return {
        "file": path.name,
        "sha256": sha256(path),
        "bytes": path.stat().st_size,
        "opset": OPSET,
        "exporter": "torch.onnx.export(dynamo=False)",
        "inputs": [t.describe() for t in spec.inputs],
        "outputs": [t.describe() for t in spec.outputs],
        "export_seconds": round(seconds, 2),
    }


def _stamp_and_check(path: Path, spec: GraphSpec, checkpoint_label: str) -> None:
    model = onnx.load(str(path), load_external_data=False)
    metadata = {"graph": spec.name, "checkpoint": checkpoint_label, **spec.metadata}
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_PREFIX + key, value
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))  # by path: works for models with external data (> 2 GB) too
    problems = _spec_mismatches(model.graph, spec)
    if problems:
        raise ExportCheckError(f"{path.name}: " + "; ".join(problems))


def _spec_mismatches(graph: Any, spec: GraphSpec) -> list[str]:
    problems = []
    inputs = [value for value in graph.input if value.name not in {init.name for init in graph.initializer}]
    for kind, values, tensors in (("inputs", inputs, spec.inputs), ("outputs", list(graph.output), spec.outputs)):
        names = [value.name for value in values]
        if names != [t.name for t in tensors]:
            problems.append(f"{kind} are {names}, expected {[t.name for t in tensors]}")
            continue
        for value, tensor in zip(values, tensors, strict=True):
            dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            if dims != list(tensor.dims):
                problems.append(f"{tensor.name} has dims {dims}, expected {list(tensor.dims)}")
    return problems


def read_metadata(path: Path) -> dict[str, str]:
    """The `voicereel.*` metadata of an exported model (prefix removed)."""
    model = onnx.load(str(path), load_external_data=False)
    return {
        entry.key.removeprefix(METADATA_PREFIX): entry.value
        for entry in model.metadata_props
        if entry.key.startswith(METADATA_PREFIX)
    }
