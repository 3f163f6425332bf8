"""Where the text2semantic engine's GPU time goes, on S1-mini shapes with random weights (bf16).

Measures, in one run:
- compile + capture time of the engine's warm-up;
- prefill (admission) cost: one request at a time and, when the engine has it, admitted together;
- decode step replay time per (batch, kv) bucket (CUDA events, median), and the split between the slow
  transformer and the frame sampler (fast transformer + sampling), each captured as its own graph;
- host overhead of a whole ``Engine.step`` at full batch over the replay alone;
- the top kernels of one step at batch 1 and at the largest batch (torch.profiler).

    python perf/gpu/profile_step.py --out $OUT     # on the H200 (bash perf/gpu/run_h200.sh --profile)
Writes profile_step.json and profile_b<batch>.txt to --out; prints a summary table last.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "perf" / "gpu"))

from bench_engine import TEXTS, benchmark_model  # noqa: E402

from voicereel.engine.generate import FrameBudget, GenerationRequest, SamplingParams  # noqa: E402
from voicereel.engine.prompt import VoiceTurn, build_prompt  # noqa: E402
from voicereel.engine.scheduler import Engine, EngineConfig  # noqa: E402
from voicereel.engine.step import sample_frame  # noqa: E402
from voicereel.engine.t2s_serving import warm_up  # noqa: E402


def cuda_ms(fn: Callable[[], None], reps: int) -> float:
    """Median milliseconds of ``fn`` on the current stream over ``reps`` timed calls (after one warm call)."""
    fn()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


def graph_of(fn: Callable[[], Any]) -> torch.cuda.CUDAGraph:
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def reference_turn(frames: int) -> VoiceTurn:
    generator = torch.Generator().manual_seed(frames)
    semantic = torch.randint(0, 4096, (1, frames), generator=generator)
    return VoiceTurn(TEXTS[3], torch.cat([semantic, torch.randint(0, 1024, (9, frames), generator=generator)]))


def request(rid: str, text: str, frames: int, seed: int, references: list[VoiceTurn]) -> GenerationRequest:
    return GenerationRequest(
        rid,
        [text],
        references=references,
        sampling=SamplingParams(0.8, 0.8, 1.1, seed=seed),
        max_new_frames=frames,
    )


def admission(engine: Engine, count: int, references: list[VoiceTurn]) -> float:
    """Milliseconds of the engine step that admits ``count`` requests at once (includes one decode step)."""
    for index in range(count):
        engine.submit(request(f"a{index}", TEXTS[index % 4], 400, index, references))
    torch.cuda.synchronize()
    start = time.perf_counter()
    engine.step()
    torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start)


def drain(engine: Engine) -> None:
    for run in list(engine._by_slot.values()):
        engine.cancel(run.request.request_id)
    while engine.step():
        pass


def top_kernels(engine: Engine, batch: int, kv: int, steps: int, out: Path) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    engine.runner.step(batch, kv)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            engine.runner.step(batch, kv)
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if getattr(e, "device_time_total", 0) > 0]
    events.sort(key=lambda e: e.device_time_total, reverse=True)
    kernels = sum(e.count for e in events if e.device_type == torch.autograd.DeviceType.CUDA) / steps
    lines = [f"batch {batch} kv {kv}: {kernels:.0f} device events per step"]
    for event in events[:40]:
        lines.append(
            f"{event.device_time_total / steps / 1000:9.3f} ms/step  {event.count / steps:6.1f}/step  {event.key[:110]}"
        )
    (out / f"profile_b{batch}.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:25]), flush=True)
    return {"device_events_per_step": kernels, "top": lines[1:16]}


def profile_admission(engine: Engine, out: Path) -> list[str]:
    """torch.profiler over the engine step that admits one text request: top ops by self CPU and device time."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(2):
        admission(engine, 1, [])
        drain(engine)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        took = admission(engine, 1, [])
    drain(engine)
    events = list(prof.key_averages())
    lines = [f"one admission: {took:.1f} ms wall, {sum(e.count for e in events)} profiled events"]
    for key, label in (("self_cpu_time_total", "self CPU"), ("device_time_total", "device")):
        lines.append(f"-- top by {label} time (ms, count)")
        for event in sorted(events, key=lambda e: getattr(e, key, 0), reverse=True)[:25]:
            lines.append(f"{getattr(event, key, 0) / 1000:9.3f} {event.count:6d}  {event.key[:120]}")
    (out / "profile_admission.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--slots", type=int, default=128)
    parser.add_argument("--capacity", type=int, default=1024)
    parser.add_argument("--batches", default="1,4,16,64,128")
    parser.add_argument("--kv", default="256,1024")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--eager", action="store_true", help="eager pieces inside the graphs (no torch.compile)")
    parser.add_argument("--admission-only", action="store_true", help="only profile one admission (prefill) and stop")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    started = time.perf_counter()
    model = benchmark_model(None if args.eager else "inductor")
    config = EngineConfig(
        max_slots=args.slots,
        slot_capacity=args.capacity,
        stream_frames=16,
        budget=FrameBudget(6.0, 43, 2048),
        kv_block=256,
        cuda_graphs=True,
    )
    engine = Engine(model, config)
    warm_up(engine)
    torch.cuda.synchronize()
    result["load_and_warm_up_s"] = round(time.perf_counter() - started, 1)
    print(f"warm-up done in {result['load_and_warm_up_s']} s", flush=True)
    if args.admission_only:
        result["admission_profile"] = profile_admission(engine, args.out)
        (args.out / "profile_step.json").write_text(json.dumps(result, indent=1))
        return

    # Admission: one request, then all slots at once, plain text and with a 10 s reference (215 frames).
    admit: dict[str, float] = {}
    for name, refs in (("text", []), ("ref215", [reference_turn(215)])):
        prompt_len = build_prompt(model.model.tokenizer, model.num_codebooks, TEXTS[0], refs).shape[1]
        singles = []
        for _ in range(4):  # the first one may capture new graph buckets: dropped
            singles.append(admission(engine, 1, refs))
            drain(engine)
        one = statistics.median(singles[1:])
        admission(engine, args.slots, refs)  # warm: the full batch's buckets
        drain(engine)
        many = admission(engine, args.slots, refs)
        drain(engine)
        admit[f"{name}_prompt_tokens"] = prompt_len
        admit[f"{name}_one_ms"] = round(one, 2)
        admit[f"{name}_{args.slots}_ms"] = round(many, 1)
        admit[f"{name}_per_request_ms_in_{args.slots}"] = round(many / args.slots, 2)
        print(json.dumps(admit), flush=True)
    result["admission"] = admit

    # Fill every slot, then time replays per bucket.
    for index in range(args.slots):
        engine.submit(request(f"f{index}", TEXTS[index % 4], 2000, index, []))
    engine.step()
    torch.cuda.synchronize()
    replay: list[dict[str, Any]] = []
    batches = [int(b) for b in args.batches.split(",") if int(b) <= args.slots]
    for kv in [int(k) for k in args.kv.split(",")]:
        for batch in batches:
            try:
                ms = cuda_ms(functools.partial(engine.runner.step, batch, kv), args.reps)
            except Exception as exc:  # one bucket failing is a result; the others still get measured
                row = {"batch": batch, "kv": kv, "error": f"{type(exc).__name__}: {exc}"[:300]}
                replay.append(row)
                print(json.dumps(row), flush=True)
                continue
            row = {"batch": batch, "kv": kv, "step_ms": round(ms, 3), "frames_per_s": round(batch * 1000 / ms, 1)}
            replay.append(row)
            print(json.dumps(row), flush=True)
    result["replay"] = replay

    # Slow transformer vs frame sampler, each as its own graph, at kv 1024.
    state, tables = engine.state, engine.tables
    split = []
    for batch in batches:
        hidden = torch.zeros(batch, model.config.dim, device="cuda", dtype=model.dtype)

        def slow(b: int = batch, h: torch.Tensor = hidden) -> None:
            kv = max(int(k) for k in args.kv.split(","))
            h.copy_(model.decode_slow(state.slow, state.frame[:b], state.position[:b], state.rows[:b], kv))

        def sampler(b: int = batch, h: torch.Tensor = hidden) -> None:
            sample_frame(
                model,
                h,
                state.sampling.narrow(0, b),
                state.history[:b],
                state.frame_index[:b],
                tables,
            )

        slow_graph, sampler_graph = graph_of(slow), graph_of(sampler)
        row = {
            "batch": batch,
            "slow_ms": round(cuda_ms(slow_graph.replay, args.reps), 3),
            "sampler_ms": round(cuda_ms(sampler_graph.replay, args.reps), 3),
        }
        split.append(row)
        print(json.dumps(row), flush=True)
        del slow_graph, sampler_graph
    result["split_kv1024"] = split

    # Host overhead: a whole Engine.step at full batch vs its replay.
    torch.cuda.synchronize()
    start = time.perf_counter()
    steps = 20
    for _ in range(steps):
        engine.step()
    torch.cuda.synchronize()
    result["engine_step_ms_full_batch"] = round(1000 * (time.perf_counter() - start) / steps, 3)
    result["engine_times"] = engine.times.summary()

    (args.out / "profile_step.json").write_text(json.dumps(result, indent=1))
    profiles = {}
    for batch in sorted({batches[0], batches[-1]}):
        try:
            profiles[str(batch)] = top_kernels(engine, batch, 1024, 5, args.out)
        except Exception as exc:  # the profiler is a diagnostic: keep the timings above
            profiles[str(batch)] = {"error": repr(exc)}
    result["profile"] = profiles
    (args.out / "profile_step.json").write_text(json.dumps(result, indent=1))
    print("\nsummary")
    print(json.dumps({k: v for k, v in result.items() if k != "profile"}, indent=1))


if __name__ == "__main__":
    main()
