"""Single-stream decoding with and without the one-row pieces (knob ``one_row_step``), in-process on a GPU.

For each variant, on S1-mini shapes with random weights (bf16, the benchmark checkpoint's shapes, slow head without
the end token) and a fresh compile cache of its own:
- load and warm-up (compile) time, as text2semantic's load does it (``t2s_serving.warm_up``);
- decode-step replay at batch 1 for kv 256 and 1024 (CUDA events, median) and device events (kernels) per step;
- one 646-frame request through ``Engine.step`` after a full-length warm-up: wall seconds and frames per second;
- the first frame where its codes differ from the any-batch pieces' (greedy and sampled; bf16 arithmetic differs).

    python perf/gpu/bench_one_row.py --out $OUT      # bash perf/gpu/run_h200.sh --one-row
Writes one_row.json (with the git SHA from BENCH_GIT_SHA) to --out.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "perf" / "gpu"))

from bench_engine import TEXTS, benchmark_model  # noqa: E402
from profile_step import cuda_ms  # noqa: E402

from voicereel.engine.batched import BatchedDualAR  # noqa: E402
from voicereel.engine.generate import FrameBudget, GenerationRequest, SamplingParams  # noqa: E402
from voicereel.engine.scheduler import Engine, EngineConfig  # noqa: E402
from voicereel.engine.t2s_serving import warm_up  # noqa: E402


def one_request(engine: Engine, frames: int, temperature: float) -> tuple[torch.Tensor, float]:
    chunks: list[torch.Tensor] = []
    engine.submit(
        GenerationRequest(
            f"single-{time.monotonic_ns()}",
            [TEXTS[0]],
            sampling=SamplingParams(temperature, 0.8, 1.1, seed=7),
            max_new_frames=frames,
            on_codes=chunks.append,
        )
    )
    torch.cuda.synchronize()
    start = time.perf_counter()
    while engine.step():
        pass
    torch.cuda.synchronize()
    return torch.cat(chunks, dim=1), time.perf_counter() - start


def device_events(engine: Engine, kv: int, steps: int = 5) -> tuple[float, list[str]]:
    from torch.profiler import ProfilerActivity, profile

    engine.runner.step(1, kv)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            engine.runner.step(1, kv)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if getattr(e, "device_time_total", 0) > 0]
    events.sort(key=lambda e: e.device_time_total, reverse=True)
    count = sum(e.count for e in events) / steps
    top = [f"{e.device_time_total / steps / 1000:8.3f} ms {e.count / steps:5.1f}x {e.key[:90]}" for e in events[:12]]
    return count, top


def variant(one_row: bool, frames: int, reps: int, out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    shared = benchmark_model(None)
    model = BatchedDualAR(shared.model, allow_end=False, compile_backend="inductor", one_row=one_row)
    config = EngineConfig(
        max_slots=128,
        slot_capacity=1024,
        stream_frames=8,
        budget=FrameBudget(6.0, 43, 2048),
        kv_block=256,
        cuda_graphs=True,
    )
    engine = Engine(model, config)
    loaded = time.perf_counter()
    compiled = warm_up(engine)
    torch.cuda.synchronize()
    result: dict[str, Any] = {
        "one_row": one_row,
        "compiled": compiled,
        "load_s": round(loaded - started, 1),
        "warm_up_s": round(time.perf_counter() - loaded, 1),
    }
    print(json.dumps(result), flush=True)
    one_request(engine, frames, 0.8)  # full length: every kv bucket's graph captured before timing
    codes, wall = one_request(engine, frames, 0.8)
    result["single"] = {
        "frames": int(codes.shape[1]),
        "wall_s": round(wall, 3),
        "frames_per_s": round(codes.shape[1] / wall, 1),
    }
    print(json.dumps(result), flush=True)
    (out / f"one_row-{'one-row' if one_row else 'any-batch'}.json").write_text(json.dumps(result, indent=1))
    torch.save({"sampled": codes, "greedy": one_request(engine, 96, 0.0)[0]}, out / f"codes-{int(one_row)}.pt")
    engine.submit(  # one busy slot so replays below decode a real row
        GenerationRequest("held", [TEXTS[1]], sampling=SamplingParams(seed=1), max_new_frames=900)
    )
    engine.step()
    for kv in (256, 1024):
        try:
            result[f"step_ms_kv{kv}"] = round(cuda_ms(functools.partial(engine.runner.step, 1, kv), reps), 3)
        except Exception as exc:  # one bucket failing is a result; keep the others
            result[f"step_ms_kv{kv}"] = f"{type(exc).__name__}: {exc}"[:300]
    result["device_events_per_step_kv1024"], result["top_kernels_kv1024"] = device_events(engine, 1024)
    print(json.dumps(result), flush=True)
    return result


def first_difference(a: torch.Tensor, b: torch.Tensor) -> int | None:
    length = min(a.shape[1], b.shape[1])
    differs = (a[:, :length] != b[:, :length]).any(dim=0).nonzero()
    return int(differs[0]) if len(differs) else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--frames", type=int, default=646)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--variant", choices=["any-batch", "one-row"], help="run one here (else both, a process each)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.variant:
        run = variant(args.variant == "one-row", args.frames, args.reps, args.out)
        (args.out / f"one_row-{args.variant}.json").write_text(json.dumps(run, indent=1))
        return
    result: dict[str, Any] = {
        "git_sha": os.environ.get("BENCH_GIT_SHA", "unknown"),
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "runs": [],
    }
    for name in ("any-batch", "one-row"):  # each in a process of its own, with an empty compile cache of its own
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(prefix=f"{name}-")}
        command = [sys.executable, __file__, "--variant", name, "--out", str(args.out), "--frames", str(args.frames)]
        done = subprocess.run([*command, "--reps", str(args.reps)], env=env, check=False)
        path = args.out / f"one_row-{name}.json"
        failed = {"variant": name, "rc": done.returncode}
        result["runs"].append(json.loads(path.read_text()) if path.is_file() else failed)
    codes = [args.out / f"codes-{flag}.pt" for flag in (0, 1)]
    if all(path.is_file() for path in codes):
        any_batch, one_row = (torch.load(path) for path in codes)
        for key in ("greedy", "sampled"):
            result[f"{key}_first_difference_frame"] = first_difference(any_batch[key], one_row[key])
    singles = [run.get("single", {}).get("wall_s") for run in result["runs"]]
    if all(singles):
        result["single_stream_speedup"] = round(singles[0] / singles[1], 3)
    (args.out / "one_row.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1), flush=True)


if __name__ == "__main__":
    main()
