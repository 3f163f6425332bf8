"""Is a prefill pass slow only on its shape's first use in a process, and does the attention backend decide it?

The twelfth session's traces (perf/results/2026-11-26-h200.md) showed the 14-row prefill pass of a 16-stream burst
taking 97–131 ms the first time and 15-row passes 34–44 ms later; the bench's first one-row request 127 ms, the next
33 ms. The prefill is eager, so a guess is per-shape setup in the attention call (cuDNN building a plan per shape).
This times `BatchedDualAR.prefill_many` (S1-mini shapes, random weights, bf16) for each (rows x prompt length): the
first call and the median of the repeats, each attention backend in a process of its own (first-use costs are per
process). Writes profile_prefill.json to --out.

    python perf/gpu/profile_prefill.py --out $OUT            (bash perf/gpu/run_h200.sh --prefill)
    python perf/gpu/profile_prefill.py --out /tmp/p --cpu    (smoke run: the tiny checkpoint, float32)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from voicereel.engine.batched import BatchedDualAR  # noqa: E402

BACKENDS = {  # name: SDPA backends allowed (None: torch's own choice)
    "default": None,
    # torch's choice after one pass of the engine's largest prefill (32 x 256 = prefill_tokens): is the first-use
    # cost the caching allocator growing (then this pass absorbs it for every smaller shape) or per shape?
    "default+warm": None,
    "cudnn": [SDPBackend.CUDNN_ATTENTION],
    "flash": [SDPBackend.FLASH_ATTENTION],
    "efficient": [SDPBackend.EFFICIENT_ATTENTION],
    "math": [SDPBackend.MATH],
}


def backend(name: str) -> contextlib.AbstractContextManager[Any]:
    allowed = BACKENDS[name]
    return contextlib.nullcontext() if allowed is None else sdpa_kernel(allowed)


def model_for(cpu: bool) -> BatchedDualAR:
    if not cpu:
        sys.path.insert(0, str(REPO / "perf" / "gpu"))
        from bench_engine import benchmark_model

        return benchmark_model()
    from voicereel.engine.checkpoints import load_text2semantic, make_tiny_checkpoint

    folder = make_tiny_checkpoint(Path(tempfile.mkdtemp()) / "tiny", seed=0).root
    return BatchedDualAR(load_text2semantic(folder, "cpu", torch.float32), allow_end=False)


@contextlib.contextmanager
def timed(into: list[float], cpu: bool) -> Iterator[None]:
    if not cpu:
        torch.cuda.synchronize()
    started = time.perf_counter()
    yield
    if not cpu:
        torch.cuda.synchronize()
    into.append((time.perf_counter() - started) * 1000)


def one_backend(name: str, shapes: list[tuple[int, int]], reps: int, cpu: bool) -> dict[str, Any]:
    model = model_for(cpu)
    cache = model.new_slow_cache(max(32, *(rows for rows, _ in shapes)), max(256, *(length for _, length in shapes)))
    results: dict[str, Any] = {}
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        if name.endswith("+warm"):
            warm = [torch.randint(0, 1000, (model.num_codebooks + 1, 256), generator=generator) for _ in range(32)]
            model.prefill_many(cache, torch.arange(len(warm), device=cache.k.device), warm)
        for rows, length in shapes:
            prompts = [
                torch.randint(0, 1000, (model.num_codebooks + 1, length), generator=generator) for _ in range(rows)
            ]
            slots = torch.arange(rows, device=cache.k.device)
            times: list[float] = []
            reserved = torch.cuda.memory_reserved() if not cpu else 0
            for _ in range(1 + reps):
                with backend(name), timed(times, cpu):
                    model.prefill_many(cache, slots, prompts)
            results[f"{rows}x{length}"] = {
                "first_ms": round(times[0], 2),
                "again_ms": round(statistics.median(times[1:]), 2),
                "reserved_growth_mib": round(((torch.cuda.memory_reserved() if not cpu else 0) - reserved) / 2**20, 1),
            }
            print(
                f"{name} {rows}x{length}: first {times[0]:.1f} ms, again {statistics.median(times[1:]):.1f} ms",
                flush=True,
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cpu", action="store_true", help="smoke run: tiny checkpoint, float32, default and math")
    parser.add_argument("--shapes", default="1x230,3x230,14x230,15x230,14x240,16x512,32x230,1x64")
    parser.add_argument("--backends", default="default,default+warm,cudnn,flash,efficient,math")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--one", help="internal: run this backend here and print its JSON")
    args = parser.parse_args()
    shapes = [(int(rows), int(length)) for rows, length in (item.split("x") for item in args.shapes.split(","))]
    if args.one:
        print("RESULT " + json.dumps(one_backend(args.one, shapes, args.reps, args.cpu)))
        return
    names = args.backends.split(",") if not args.cpu else ["default", "default+warm", "math"]
    figures: dict[str, Any] = {"shapes": args.shapes, "reps": args.reps, "by_backend": {}}
    if not args.cpu:
        figures["device"] = torch.cuda.get_device_name()
    for name in names:
        cmd = [sys.executable, __file__, "--out", str(args.out), "--shapes", args.shapes, "--reps", str(args.reps)]
        run = subprocess.run([*cmd, "--one", name, *(["--cpu"] if args.cpu else [])], capture_output=True, text=True)
        lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
        if run.returncode != 0 or not lines:
            figures["by_backend"][name] = {"error": run.stderr.strip().splitlines()[-1:] or [f"rc {run.returncode}"]}
        else:
            figures["by_backend"][name] = json.loads(lines[-1].removeprefix("RESULT "))
        print(name, json.dumps(figures["by_backend"][name]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile_prefill.json").write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
