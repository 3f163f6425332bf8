"""The text2semantic engine alone on a GPU: correctness of its CUDA paths, then decode throughput.

--check (tiny checkpoint): CUDA-graph replay equals eager decoding; batched equals alone, in fp32 and bf16;
the batched step's logits equal upstream forward_generate's for one sequence (fp32 tight, bf16 loose).
--bench: S1-mini shapes with random weights and the slow head without the end token (every request runs to
its cap), bf16: frames per second of the whole engine (prefill, decode steps, sampling, streaming to the host)
for several batch sizes, with and without CUDA graphs.

    python perf/gpu/bench_engine.py --check --bench --tiny checkpoints/tiny --out $OUT
Writes engine_check.json / engine_bench.json to --out and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from voicereel.engine.batched import BatchedDualAR  # noqa: E402
from voicereel.engine.checkpoints import load_text2semantic  # noqa: E402
from voicereel.engine.generate import FrameBudget, GenerationRequest, SamplingParams  # noqa: E402
from voicereel.engine.scheduler import Engine, EngineConfig  # noqa: E402

TEXTS = [
    "The morning train left the station just after six, carrying sleepy commuters into the city.",
    "오늘 아침 기차는 여섯 시가 조금 넘어 역을 떠났고, 졸린 통근자들을 도시로 실어 날랐다.",
    "朝の電車は六時過ぎに駅を出発し、眠そうな通勤客を街へ運んだ。",
    "She opened the old wooden box and found a bundle of letters tied with a faded blue ribbon.",
]


def run_engine(engine: Engine, requests: list[tuple[str, int, int, int]]) -> tuple[dict[str, torch.Tensor], float]:
    """Submit (id, text index, seed, frames) with joins every 3 steps; returns codes by id and wall seconds."""
    out: dict[str, list[torch.Tensor]] = {rid: [] for rid, *_ in requests}
    pending = list(requests)
    step = 0
    start = time.perf_counter()
    while True:
        if pending and step % 3 == 0:
            rid, text, seed, frames = pending.pop(0)
            engine.submit(
                GenerationRequest(
                    rid,
                    [TEXTS[text % len(TEXTS)]],
                    sampling=SamplingParams(0.8, 0.8, 1.1, seed=seed),
                    max_new_frames=frames,
                    on_codes=out[rid].append,
                )
            )
        busy = engine.step()
        step += 1
        if not busy and not pending:
            break
    torch.cuda.synchronize()
    return {rid: torch.cat(chunks, dim=1) for rid, chunks in out.items()}, time.perf_counter() - start


def first_difference(a: torch.Tensor, b: torch.Tensor) -> int | None:
    """Index of the first frame where two code sequences differ (None if equal)."""
    if a.shape == b.shape and torch.equal(a, b):
        return None
    length = min(a.shape[1], b.shape[1])
    differs = (a[:, :length] != b[:, :length]).any(dim=0).nonzero()
    return int(differs[0]) if len(differs) else length


def check(tiny: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    config = EngineConfig(
        max_slots=8, slot_capacity=1024, stream_frames=8, budget=FrameBudget(6.0, 43, 400), kv_block=64
    )
    requests = [(f"r{i}", i, 100 + i, 40 + 13 * i) for i in range(6)]
    for dtype in (torch.float32, torch.bfloat16):
        model = BatchedDualAR(load_text2semantic(tiny, "cuda", dtype))
        name = str(dtype).removeprefix("torch.")
        eager, _ = run_engine(Engine(model, config), requests)
        graphed_engine = Engine(model, EngineConfig(**{**config.__dict__, "cuda_graphs": True}))
        graphed, _ = run_engine(graphed_engine, requests)
        alone = {}
        for request in requests:
            codes, _ = run_engine(Engine(model, EngineConfig(**{**config.__dict__, "cuda_graphs": True})), [request])
            alone.update(codes)
        results[name] = {
            "graphs_captured": len(graphed_engine.runner.graphs),
            "graphs_equal_eager": all(torch.equal(eager[k], graphed[k]) for k in eager),
            "batched_equal_alone": {k: bool(torch.equal(graphed[k], alone[k])) for k in graphed},
            "first_difference_frame": {k: first_difference(graphed[k], alone[k]) for k in graphed},
        }
    print(json.dumps(results, indent=1), flush=True)
    results["upstream_logits_max_abs_diff"] = upstream_logits(tiny)
    return results


@torch.inference_mode()
def upstream_logits(tiny: Path) -> dict[str, float]:
    from voicereel.engine.prompt import build_prompt

    diffs = {}
    for dtype in (torch.float32, torch.bfloat16):
        lm = load_text2semantic(tiny, "cuda", dtype)
        engine = BatchedDualAR(lm)
        prompt = build_prompt(lm.tokenizer, 10, TEXTS[0], [])
        with torch.device("cuda"):
            lm.setup_caches(1, 256, dtype=dtype)
        up = lm.forward_generate(prompt[None].long().cuda(), input_pos=torch.arange(prompt.shape[1], device="cuda"))
        ids = [*range(engine.tokens.semantic_begin_id, engine.tokens.semantic_begin_id + 4096), engine.tokens.im_end_id]
        cache = engine.new_slow_cache(4, 256)
        hidden = engine.prefill(cache, 3, prompt)
        diff = (engine.slow_logits(hidden)[0].float() - up.logits[0, -1, ids].float()).abs().max()
        diffs[str(dtype).removeprefix("torch.")] = float(diff)
    return diffs


def benchmark_model(compile_backend: str | None = None) -> BatchedDualAR:
    from fish_speech.models.text2semantic.llama import DualARModelArgs, DualARTransformer

    from voicereel.engine.checkpoints import load_tokenizer
    from voicereel.engine.random_checkpoints import BENCHMARK_LM, write_byte_tokenizer

    folder = Path(tempfile.mkdtemp())
    write_byte_tokenizer(folder)
    config = DualARModelArgs(**BENCHMARK_LM)
    torch.manual_seed(0)
    with torch.device("cuda"):
        lm = DualARTransformer(config, tokenizer=load_tokenizer(folder))
    return BatchedDualAR(lm.to(torch.bfloat16).eval(), allow_end=False, compile_backend=compile_backend)


VARIANTS = {  # name: (cuda graphs, torch.compile backend of the decode pieces)
    "graphs": (True, None),
    "compiled": (True, "inductor"),
    "eager": (False, None),
}


def bench(batches: list[int], frames: int, variants: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {"frames_per_request": frames, "runs": []}
    for variant in variants:
        graphs, backend = VARIANTS[variant]
        model = benchmark_model(backend)
        started = time.perf_counter()
        for batch in batches:
            config = EngineConfig(
                max_slots=batch,
                slot_capacity=2048,
                stream_frames=16,
                budget=FrameBudget(6.0, 43, 2048),
                kv_block=256,
                cuda_graphs=graphs,
            )
            engine = Engine(model, config)
            requests = [(f"w{i}", i, i, frames) for i in range(batch)]
            run_engine(engine, requests)  # warm-up: captures this engine's graphs (and compiles)
            if batch == batches[0]:
                print(f"{variant}: first warm-up done after {time.perf_counter() - started:.1f}s", flush=True)
            decoded: list[torch.Tensor] = []
            torch.cuda.synchronize()
            start = time.perf_counter()
            for i in range(batch):
                request = GenerationRequest(
                    f"t{i}",
                    [TEXTS[i % 4]],
                    sampling=SamplingParams(seed=i),
                    max_new_frames=frames,
                    on_codes=decoded.append,
                )
                engine.submit(request)
            steps = 0
            while engine.step():
                steps += 1
            torch.cuda.synchronize()
            wall = time.perf_counter() - start
            total = sum(chunk.shape[1] for chunk in decoded)
            run = {
                "batch": batch,
                "variant": variant,
                "cuda_graphs": graphs,
                "frames": total,
                "wall_s": round(wall, 3),
                "frames_per_s": round(total / wall, 1),
                "per_request_frames_per_s": round(total / wall / batch, 1),
                "decode_steps": steps,
                "ms_per_step": round(1000 * wall / max(steps, 1), 2),
            }
            results["runs"].append(run)
            print(json.dumps(run), flush=True)
            if not graphs and batch >= 16:
                break  # eager is only the reference point
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--bench", action="store_true")
    parser.add_argument("--tiny", type=Path, default=REPO / "checkpoints" / "tiny")
    parser.add_argument("--batches", default="1,8,32,64")
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--variants", default="graphs,eager", help=f"comma-separated, of {sorted(VARIANTS)}")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(torch.cuda.get_device_name(), torch.__version__, flush=True)
    if args.check:
        result = check(args.tiny)
        (args.out / "engine_check.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1), flush=True)
    if args.bench:
        result = bench([int(b) for b in args.batches.split(",")], args.frames, args.variants.split(","))
        (args.out / "engine_bench.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
