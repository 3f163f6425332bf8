"""Codec figures on one device: chunked-vs-whole error by context length, decode/encode throughput, dtypes.

Runs on the benchmark checkpoint (real-size codec, random weights) on the GPU, or on the tiny one on CPU for a
smoke check. Writes a JSON file of figures and prints it.

    python perf/codec/bench_codec.py --checkpoint /tmp/bench --device cuda --out codec.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from voicereel.engine.codec import FRAME_SAMPLES, SAMPLE_RATE, ChunkPlan, Codec, DecodeWindow, validate_codes


def git_sha() -> str:
    """BENCH_GIT_SHA (the device machine's copy of the tree has no .git), else the checkout's HEAD."""
    if os.environ.get("BENCH_GIT_SHA"):
        return os.environ["BENCH_GIT_SHA"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def random_codes(frames: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    semantic = torch.randint(0, 4096, (1, frames), generator=gen)
    return validate_codes(torch.cat([semantic, torch.randint(0, 1024, (9, frames), generator=gen)]))


def timed(fn: Callable[..., Any], device: torch.device, repeats: int) -> float:
    """Median wall seconds of `fn` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def with_attention_scale(checkpoint: Path, device: torch.device, scale: float) -> Codec:
    scaled = Codec.from_checkpoint(checkpoint, device, torch.float32)
    for module in scaled.dac.modules():
        if type(module).__name__ == "LayerScale":
            module.gamma.data.fill_(scale)
    return scaled


def chunk_errors(codec: Codec, frames: int, contexts: list[int], chunk: int) -> dict[str, Any]:
    codes = random_codes(frames, seed=3)
    whole = codec.decode(codes)
    rms = float(whole.pow(2).mean().sqrt())
    out: dict[str, Any] = {"frames": frames, "chunk_frames": chunk, "whole_rms": rms, "by_context": {}}
    for context in contexts:
        chunked = codec.decode_chunked(codes, ChunkPlan(chunk_frames=chunk, context_frames=context), batch_size=8)
        diff = (chunked - whole).abs()
        out["by_context"][context] = {
            "max_abs": float(diff.max()),
            "rel_rms": float(diff.pow(2).mean().sqrt()) / rms,
        }
    return out


def decode_throughput(codec: Codec, plan: ChunkPlan, batches: list[int], repeats: int) -> dict[str, Any]:
    """Steady-state windows (full context): decode_windows (waveform decoder on chunk + margin) against the
    same windows decoded whole (what a window cost before the two-stage decode)."""
    codes = random_codes(plan.window_frames, seed=1).to(torch.int32)
    full = DecodeWindow(codes=codes, context_frames=plan.context_frames, num_frames=plan.window_frames)
    chunk_seconds = plan.chunk_frames * FRAME_SAMPLES / SAMPLE_RATE
    rows = {}
    for batch in batches:
        seconds = timed(lambda n=batch: codec.decode_windows([full] * n), codec.device, repeats)
        rows[batch] = {
            "call_ms": seconds * 1e3,
            "windows_per_s": batch / seconds,
            "audio_s_per_s": batch * chunk_seconds / seconds,
        }
        if not codec.fixed_spans:  # fixed shapes (compiled, graphs) would compile or run the whole window eagerly
            whole = timed(lambda n=batch: codec.decode_codes(codes[None].expand(n, -1, -1)), codec.device, repeats)
            rows[batch].update(whole_window_call_ms=whole * 1e3, speedup_vs_whole_window=whole / seconds)
    return {"window_frames": plan.window_frames, "chunk_frames": plan.chunk_frames, "by_batch": rows}


@dataclass(frozen=True)
class Variant:
    """One way of running the codec's decoder: dtype, cuDNN autotuning, weight norms folded (same maths, one weight
    per conv instead of g, v), dilated convs phased (``phase_dilated_convs``: same sums, undilated cuDNN kernels),
    torch.compile'd waveform decoder, CUDA graphs (``Codec.capture_graphs``: what codec_decoder serves)."""

    name: str
    dtype: torch.dtype
    benchmark: bool = False
    folded: bool = False
    phased: bool = False
    compiled: bool = False
    graphs: bool = False


VARIANTS = (
    Variant("fp32", torch.float32),
    Variant("bf16", torch.bfloat16),
    Variant("bf16+cudnn_benchmark", torch.bfloat16, benchmark=True),
    Variant("bf16+folded_weight_norm", torch.bfloat16, folded=True),
    Variant("bf16+folded+phased_dilations", torch.bfloat16, folded=True, phased=True),
    Variant("fp32+folded+phased_dilations", torch.float32, folded=True, phased=True),
)
# With --compile: the served decoder (bf16, folded, phased, graphs) against the same compiled, with and without
# the phasing (inductor may lower a dilated conv well on its own).
COMPILED_VARIANTS = (
    Variant("served:bf16+folded+phased+graphs", torch.bfloat16, folded=True, phased=True, graphs=True),
    Variant("served+compiled", torch.bfloat16, folded=True, phased=True, compiled=True, graphs=True),
    Variant("served+compiled-phasing", torch.bfloat16, folded=True, compiled=True, graphs=True),
)


def prepared(variant: Variant, checkpoint: Path, device: torch.device, plan: ChunkPlan, batches: list[int]) -> Codec:
    """The codec of ``variant``, compiled and captured (graphs at the sizes of ``batches`` only, not every bucket
    codec_decoder captures: a compiled decoder compiles once per shape)."""
    torch.backends.cudnn.benchmark = variant.benchmark
    codec = Codec.from_checkpoint(
        checkpoint, device, variant.dtype, fold_weight_norm=variant.folded, phase_dilations=variant.phased
    )
    if variant.compiled:
        codec.compile_decoder(max(batches), plan)
    if variant.compiled or variant.graphs:
        codec.fix_shapes(max(batches), plan)
        codec.batch_buckets = tuple(sorted(set(batches)))
    if variant.graphs:
        codec.capture_graphs(max(batches), plan)
    elif variant.compiled and not codec.warm_up(plan):
        raise RuntimeError("the compiled decoder failed at warm-up (see the log)")
    return codec


def decode_variants(
    checkpoint: Path, device: torch.device, repeats: int, compile_: bool, batches: list[int]
) -> dict[str, Any]:
    """Decode speed of the default window (64 + 64) by variant, each against the fp32 result of the same windows;
    with ``compile_`` only the served decoder against compiled ones."""
    plan = ChunkPlan()
    out: dict[str, Any] = {}
    reference = Codec.from_checkpoint(checkpoint, device, torch.float32)
    window = DecodeWindow(random_codes(plan.window_frames, 2).to(torch.int32), plan.context_frames, plan.window_frames)
    expected = reference.decode_windows([window])[0]
    del reference
    for variant in COMPILED_VARIANTS if compile_ else VARIANTS:
        try:
            start = time.perf_counter()
            codec = prepared(variant, checkpoint, device, plan, batches)
            got = codec.decode_windows([window])[0]
            row = decode_throughput(codec, plan, batches, repeats)
            row["prepare_and_first_call_s"] = time.perf_counter() - start
            row["max_abs_vs_fp32"] = float((got - expected).abs().max())
            del codec
        except Exception as exc:  # a failed variant is a result, not the end of the run
            row = {"error": "".join(traceback.format_exception(exc))[-3000:]}
        out[variant.name] = row
        if device.type == "cuda":
            torch.cuda.empty_cache()
    torch.backends.cudnn.benchmark = False
    return out


def decode_profile(checkpoint: Path, device: torch.device, batch: int, calls: int = 3) -> list[str]:
    """torch.profiler over ``calls`` decodes of ``batch`` full windows (bf16 on a GPU): the ops that take the device
    time, to see what a faster waveform decoder has to change."""
    from torch.profiler import ProfilerActivity, profile

    plan = ChunkPlan()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    codec = Codec.for_serving(checkpoint, device, dtype)
    window = DecodeWindow(random_codes(plan.window_frames, 3).to(torch.int32), plan.context_frames, plan.window_frames)
    codec.decode_windows([window] * batch)  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(calls):
            codec.decode_windows([window] * batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
    by_device = device.type == "cuda"
    events = list(prof.key_averages())
    events.sort(key=lambda e: e.device_time_total if by_device else e.self_cpu_time_total, reverse=True)
    total_ms = sum(e.self_device_time_total if by_device else e.self_cpu_time_total for e in events) / calls / 1000
    where = "device" if by_device else "CPU"
    lines = [f"batch {batch} windows ({dtype}): {total_ms:.1f} ms of self {where} time a call"]
    for event in events[:30]:
        spent = (event.device_time_total if by_device else event.self_cpu_time_total) / calls / 1000
        lines.append(f"{spent:9.3f} ms/call  {event.count / calls:7.1f}/call  {event.key[:100]}")
    # which convolutions: the same op grouped by its input shapes (input, weight, ...)
    convs = [e for e in prof.key_averages(group_by_input_shape=True) if e.key == "aten::convolution"]
    convs.sort(key=lambda e: e.device_time_total if by_device else e.cpu_time_total, reverse=True)
    lines.append("convolutions by input shapes:")
    for event in convs[:15]:
        spent = (event.device_time_total if by_device else event.cpu_time_total) / calls / 1000
        lines.append(f"{spent:9.3f} ms/call  {event.count / calls:5.1f}/call  {str(event.input_shapes)[:90]}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=646, help="utterance length for the error test (646 = 30 s)")
    parser.add_argument("--batches", default="1,2,4,8,16,32,64")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only-variants", action="store_true", help="skip everything but the speed-up variants")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="time the served decoder against compiled ones (instead of the plain variants)",
    )
    parser.add_argument("--profile", type=int, default=0, help="also profile decodes of this many windows a call")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "git_sha": git_sha(),
    }

    start = time.perf_counter()
    codec = Codec.from_checkpoint(args.checkpoint, device, torch.float32)
    results["load_s"] = time.perf_counter() - start
    results["params"] = sum(p.numel() for p in codec.dac.parameters())

    if args.only_variants:
        batches = [int(b) for b in args.batches.split(",")]
        results["decode_variants"] = decode_variants(args.checkpoint, device, args.repeats, args.compile, batches)
        if args.profile:
            results["decode_profile"] = decode_profile(args.checkpoint, device, args.profile)
        args.out.write_text(json.dumps(results, indent=2))
        print(json.dumps(results, indent=2))
        return

    contexts = [0, 8, 16, 32, 64, 128]
    results["chunk_error_as_initialised"] = chunk_errors(codec, args.frames, contexts, 64)
    results["chunk_error_attention_x100"] = chunk_errors(
        with_attention_scale(args.checkpoint, device, 1.0), args.frames, contexts, 64
    )

    batches = [int(b) for b in args.batches.split(",")]
    results["decode_fp32"] = {
        str(plan.context_frames): decode_throughput(codec, plan, batches, args.repeats)
        for plan in (ChunkPlan(64, 64), ChunkPlan(64, 32))
    }
    codes = random_codes(args.frames, seed=4)
    results["decode_whole_30s_ms"] = {
        batch: 1e3 * timed(lambda b=batch: codec.decode_codes(codes[None].expand(b, -1, -1)), device, args.repeats)
        for batch in (1, 16)
    }
    pcm = torch.clamp(torch.randn(args.frames * FRAME_SAMPLES) * 0.1, -1, 1)
    results["encode_30s_ms"] = {
        batch: 1e3 * timed(lambda b=batch: codec.encode_batch([pcm] * b), device, args.repeats) for batch in (1, 8)
    }

    if device.type == "cuda":
        half = Codec.from_checkpoint(args.checkpoint, device, torch.bfloat16)
        whole32 = codec.decode(codes)
        whole16 = half.decode(codes)
        results["bf16_vs_fp32_max_abs"] = float((whole16 - whole32).abs().max())
        results["decode_bf16"] = decode_throughput(half, ChunkPlan(64, 64), batches, args.repeats)
        results["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 1e9

    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
