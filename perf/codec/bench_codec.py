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
from collections.abc import Callable
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
        whole = timed(lambda n=batch: codec.decode_codes(codes[None].expand(n, -1, -1)), codec.device, repeats)
        rows[batch] = {
            "call_ms": seconds * 1e3,
            "windows_per_s": batch / seconds,
            "audio_s_per_s": batch * chunk_seconds / seconds,
            "whole_window_call_ms": whole * 1e3,
            "speedup_vs_whole_window": whole / seconds,
        }
    return {"window_frames": plan.window_frames, "chunk_frames": plan.chunk_frames, "by_batch": rows}


def decode_variants(
    checkpoint: Path, device: torch.device, repeats: int, compile_: bool, batches: list[int]
) -> dict[str, Any]:
    """Decode speed of the default window (64 + 64) by dtype, cuDNN autotuning and (optionally) compilation,
    each against the fp32 result of the same windows."""
    plan = ChunkPlan()
    out: dict[str, Any] = {}
    reference = Codec.from_checkpoint(checkpoint, device, torch.float32)
    window = DecodeWindow(random_codes(plan.window_frames, 2).to(torch.int32), plan.context_frames, plan.window_frames)
    expected = reference.decode_windows([window])[0]
    del reference
    # (name, dtype, cudnn.benchmark, compiled, weight norms folded (same maths, one weight per conv instead of g, v),
    # dilated convs phased (codec.phase_dilated_convs: same sums, undilated cuDNN kernels; both as served))
    variants: list[tuple[str, torch.dtype, bool, bool, bool, bool]] = [
        ("fp32", torch.float32, False, False, False, False),
        ("bf16", torch.bfloat16, False, False, False, False),
        ("bf16+cudnn_benchmark", torch.bfloat16, True, False, False, False),
        ("bf16+folded_weight_norm", torch.bfloat16, False, False, True, False),
        ("bf16+folded+phased_dilations", torch.bfloat16, False, False, True, True),
        ("fp32+folded+phased_dilations", torch.float32, False, False, True, True),
    ]
    if compile_:
        variants.append(("fp32+compiled_decoder", torch.float32, False, True, False, False))
    for name, dtype, benchmark, compiled, folded, phased in variants:
        torch.backends.cudnn.benchmark = benchmark
        codec = Codec.from_checkpoint(checkpoint, device, dtype, fold_weight_norm=folded, phase_dilations=phased)
        if compiled:
            codec.compile_decoder(max(batches), plan)
        try:
            start = time.perf_counter()
            if compiled:
                codec.warm_up(plan)
            got = codec.decode_windows([window])[0]
            first_call_s = time.perf_counter() - start
            row = decode_throughput(codec, plan, batches, repeats)
            row["first_call_s"] = first_call_s
            row["max_abs_vs_fp32"] = float((got - expected).abs().max())
        except Exception as exc:  # a failed variant is a result, not the end of the run
            row = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        out[name] = row
        del codec
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
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd decoders (slow start)")
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
