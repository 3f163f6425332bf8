"""Client side of the GPU benchmark: drives Triton `tts` over gRPC streaming and measures what issue 8 asks.

- single stream: one request for N frames (646 = 30 s of audio): wall time and frames/s;
- first audio chunk latency p50/p95 at concurrency 1 and 16;
- throughput (seconds of audio per wall second, codec included) at concurrency 1, 4, 16, 64, 128.

Every request asks for exactly `--frames` frames (`max_new_frames`); the benchmark checkpoint's slow head never
picks the end token, so each request produces exactly that much audio. Writes a JSON file of figures.

    python perf/gpu/bench_tts.py --url 127.0.0.1:8001 --out bench.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import np_to_triton_dtype

SAMPLE_RATE = 44_100
TEXT = (
    "The morning train left the station just after six, carrying sleepy commuters into the city. "
    "She opened the old wooden box and found a bundle of letters tied with a faded blue ribbon. "
) * 3


@dataclass
class Result:
    first_chunk_s: float
    wall_s: float
    samples: int
    started: float = 0.0  # perf_counter at the request's start


def _input(name: str, value: np.ndarray) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(value.shape), np_to_triton_dtype(value.dtype))
    tensor.set_data_from_numpy(value)
    return tensor


def request_inputs(frames: int, seed: int) -> list[grpcclient.InferInput]:
    return [
        # UTF-8 in UINT8: BYTES inputs are garbled by Triton 2.51's python backend under numpy 2 (the GPU image)
        _input("text_utf8", np.frombuffer(TEXT.encode(), dtype=np.uint8)),
        _input("max_new_frames", np.array([frames], dtype=np.int32)),
        _input("seed", np.array([seed], dtype=np.int64)),
        _input("temperature", np.array([0.8], dtype=np.float32)),
        _input("top_p", np.array([0.8], dtype=np.float32)),
        _input("repetition_penalty", np.array([1.1], dtype=np.float32)),
    ]


async def one_request(client: grpcclient.InferenceServerClient, frames: int, seed: int, label: str = "run") -> Result:
    start = time.perf_counter()
    first: float | None = None
    samples = 0

    async def requests() -> AsyncIterator[dict[str, object]]:
        yield {
            "model_name": "tts",
            "inputs": request_inputs(frames, seed),
            "request_id": f"{label}-{seed}",  # the label groups first-chunk traces (voicereel.engine.trace)
            # decoupled: ask for the empty final response, so the end of the stream is seen
            "parameters": {"triton_enable_empty_final_response": True},
        }

    async for response, error in client.stream_infer(requests()):
        if error is not None:
            raise RuntimeError(f"tts failed: {error}")
        result = response.get_response()
        if result.outputs:
            pcm = response.as_numpy("pcm")
            if pcm is not None and pcm.size:
                if first is None:
                    first = time.perf_counter() - start
                samples += int(pcm.size)
        if result.parameters.get("triton_final_response") and result.parameters["triton_final_response"].bool_param:
            break
    wall = time.perf_counter() - start
    return Result(first if first is not None else wall, wall, samples, start)


REQUEST_TIMEOUT_S = 120.0  # a request without its final response by then is a hang: fail the run, do not wait on


async def bounded_request(
    client: grpcclient.InferenceServerClient, frames: int, seed: int, timeout_s: float, label: str = "run"
) -> Result:
    try:
        return await asyncio.wait_for(one_request(client, frames, seed, label), timeout_s)
    except TimeoutError:
        raise RuntimeError(f"tts request (seed {seed}) had no final response after {timeout_s:.0f} s") from None


async def run_level(
    url: str,
    concurrency: int,
    requests_each: int,
    frames: int,
    timeout_s: float = REQUEST_TIMEOUT_S,
    label: str = "run",
) -> tuple[list[Result], float]:
    clients = [grpcclient.InferenceServerClient(url) for _ in range(concurrency)]

    async def user(index: int) -> list[Result]:
        out = []
        for round_ in range(requests_each):
            out.append(await bounded_request(clients[index], frames, 1000 * index + round_, timeout_s, label))
        return out

    start = time.perf_counter()
    per_user = await asyncio.gather(*(user(i) for i in range(concurrency)))
    wall = time.perf_counter() - start
    for client in clients:
        await client.close()
    return [r for rs in per_user for r in rs], wall


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    figures: dict[str, object] = {"frames_per_request": args.frames}
    # warm-up: one full-length request, so the single stream below finds the CUDA graph of every KV-length bucket
    # it passes through already captured (the server captures a bucket's graph on its first use)
    await run_level(args.url, 1, 1, args.frames, args.request_timeout, "warmup")

    results, _ = await run_level(args.url, 1, 1, args.frames, args.request_timeout, "single")
    single = results[0]
    frames_out = single.samples / 2048
    figures["single_stream"] = {
        "wall_s": single.wall_s,
        "frames": frames_out,
        "frames_per_s": frames_out / single.wall_s,
        "audio_s": single.samples / SAMPLE_RATE,
        "first_chunk_s": single.first_chunk_s,
    }
    latency: dict[str, object] = {}
    for concurrency in args.latency_levels:
        rounds = 8 if concurrency == 1 else 2
        level_start = time.perf_counter()
        results, _ = await run_level(
            args.url, concurrency, rounds, args.frames, args.request_timeout, f"latency{concurrency}"
        )
        firsts = [r.first_chunk_s for r in results]
        by_round = [[r.first_chunk_s for r in results[index::rounds]] for index in range(rounds)]
        latency[f"c{concurrency}"] = {
            "p50_s": statistics.median(firsts),
            "p95_s": pct(firsts, 0.95),
            "n": len(firsts),
            # round 1 starts together on an idle server; later rounds start as each user's previous request ends
            "p50_s_by_round": [statistics.median(values) for values in by_round],
            "max_s_by_round": [max(values) for values in by_round],
            # [user, round, start, first chunk, end] in seconds from the level's start
            "timeline": [
                [index // rounds, index % rounds]
                + [round(t, 3) for t in (r.started - level_start, r.started - level_start + r.first_chunk_s)]
                + [round(r.started - level_start + r.wall_s, 3)]
                for index, r in enumerate(results)
            ],
        }
    figures["first_chunk_latency"] = latency
    throughput: dict[str, object] = {}
    for concurrency in args.concurrency:
        label = f"throughput{concurrency}"
        results, wall = await run_level(args.url, concurrency, args.rounds, args.frames, args.request_timeout, label)
        audio = sum(r.samples for r in results) / SAMPLE_RATE
        throughput[f"c{concurrency}"] = {
            "audio_s": audio,
            "wall_s": wall,
            "x_realtime": audio / wall,
            "first_chunk_p50_s": statistics.median(r.first_chunk_s for r in results),
        }
        print(f"concurrency {concurrency}: {audio / wall:.1f}x real time", flush=True)
    figures["throughput"] = throughput
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="127.0.0.1:8001")
    parser.add_argument("--frames", type=int, default=646)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16, 64, 128])
    parser.add_argument("--latency-levels", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=1, help="requests per concurrent user in the sweep")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--request-timeout", type=float, default=REQUEST_TIMEOUT_S, help="seconds; then the run fails")
    args = parser.parse_args()
    figures = asyncio.run(main_async(args))
    args.out.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
