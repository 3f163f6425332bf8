"""Stages 3 and 4: TensorRT plans of the codec graphs, with one named MIN/OPT/MAX profile each, and a runner.

TensorRT comes from NVIDIA's package index, not PyPI, so it is often absent: it is on neither this project's CI
and development machines nor its GPU test machine. `load_tensorrt()` then raises `TensorRTUnavailable` with
the import error; the pipeline says so in one line and exits with its own code. Nothing here writes a plan
unless TensorRT built it.

Precision: `auto` builds fp16, then bf16, then fp32, and keeps the first plan whose fixed-input check passes the
reduced-precision thresholds of `export/verify.py` (fp32 must pass the full-precision ones). Stage 4 then
verifies the kept plan on fixed and random inputs.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from export.names import CODEC_DECODER, CODEC_ENCODER
from voicereel.engine.codec import FRAME_SAMPLES, NUM_CODEBOOKS, SAMPLE_RATE

if TYPE_CHECKING:
    from export.verify import ShapeLimits

PRECISIONS = ("fp16", "bf16", "fp32")


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or a CUDA device for it) is not available here."""


class PlanBuildError(RuntimeError):
    """TensorRT could not parse the ONNX file or build a plan from it."""


def load_tensorrt() -> ModuleType:
    try:
        tensorrt = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise TensorRTUnavailable(f"TensorRT is not importable here ({exc})") from exc
    import torch

    if not torch.cuda.is_available():
        raise TensorRTUnavailable(f"TensorRT {tensorrt.__version__} is installed but no CUDA device is visible")
    return tensorrt


@dataclass(frozen=True)
class ShapeProfile:
    """One TensorRT optimization profile: MIN, OPT and MAX shapes of one input, by name."""

    name: str
    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "input": self.input, "MIN": self.min, "OPT": self.opt, "MAX": self.max}

    @property
    def limits(self) -> ShapeLimits:
        """The verification shapes that fit this profile (frames = last axis, in codec frames)."""
        from export.verify import ShapeLimits

        per_frame = FRAME_SAMPLES if self.input == "pcm" else 1
        return ShapeLimits(
            max_batch=self.max[0], max_frames=self.max[-1] // per_frame, min_frames=max(1, self.min[-1] // per_frame)
        )


def codec_profiles(
    encoder: Mapping[str, Any], decoder: Mapping[str, Any], window_frames: int
) -> dict[str, ShapeProfile]:
    """Profiles from the serving knobs: batch up to each model's `max_batch_size`; the encoder's clips up to
    `max_input_seconds` (OPT: 30 s references, a quarter batch); the decoder's windows up to 4 serving windows
    long (OPT: exactly one serving window at half the batch)."""
    enc_batch, dec_batch = int(encoder["max_batch_size"]), int(decoder["max_batch_size"])
    longest = int(float(encoder["max_input_seconds"]) * SAMPLE_RATE) // FRAME_SAMPLES + 1
    typical = min(longest, round(30 * SAMPLE_RATE / FRAME_SAMPLES))
    return {
        CODEC_ENCODER: ShapeProfile(
            "reference_clips",
            "pcm",
            min=(1, FRAME_SAMPLES),
            opt=(max(1, enc_batch // 4), typical * FRAME_SAMPLES),
            max=(enc_batch, longest * FRAME_SAMPLES),
        ),
        CODEC_DECODER: ShapeProfile(
            "decode_windows",
            "codes",
            min=(1, NUM_CODEBOOKS, 1),
            opt=(max(1, dec_batch // 2), NUM_CODEBOOKS, window_frames),
            max=(dec_batch, NUM_CODEBOOKS, 4 * window_frames),
        ),
    }


def build_plan(onnx_path: Path, plan_path: Path, profile: ShapeProfile, precision: str, workspace_gb: float) -> None:
    """Parse `onnx_path`, build a plan with `profile` at `precision` (fp16 | bf16 | fp32), write `plan_path`."""
    trt = load_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise PlanBuildError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    elif precision != "fp32":
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    optimization = builder.create_optimization_profile()
    optimization.set_shape(profile.input, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(optimization)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise PlanBuildError(f"TensorRT failed to build a {precision} plan of {onnx_path.name} (see its log above)")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(bytes(serialized))


def plan_runner(plan_path: Path) -> Any:
    """A runner (inputs by name -> outputs by name, numpy) over a plan, with CUDA buffers from torch."""
    trt = load_tensorrt()
    import torch

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
    if engine is None:
        raise PlanBuildError(f"{plan_path} is not a plan this TensorRT can load")
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    outputs = [name for name in names if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT]

    def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        keep = {}
        for name, array in inputs.items():
            tensor = torch.from_numpy(np.ascontiguousarray(array)).cuda()
            context.set_input_shape(name, tuple(tensor.shape))
            context.set_tensor_address(name, tensor.data_ptr())
            keep[name] = tensor
        results = {}
        for name in outputs:
            dtype = torch.from_numpy(np.empty(0, dtype=trt.nptype(engine.get_tensor_dtype(name)))).dtype
            tensor = torch.empty(tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda")
            context.set_tensor_address(name, tensor.data_ptr())
            results[name] = tensor
        stream = torch.cuda.current_stream()
        if not context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT failed to run {plan_path.name}")
        stream.synchronize()
        return {name: tensor.cpu().numpy() for name, tensor in results.items()}

    return run
