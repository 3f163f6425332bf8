"""Load test of codec_encoder and codec_decoder through a real tritonserver (GPU or CPU), without perf_analyzer.

Builds a repository with the two codec models for `--checkpoint` (instance kind auto: the GPU when CUDA is
visible), starts tritonserver through voicereel.stack, checks the round trip, then keeps `concurrency` decoder
windows (default shape, full context) in flight for `--seconds` at each level and reports windows/s, seconds of
audio per second, latency p50/p95 and the execution batch sizes from Triton's statistics.

    python perf/codec/load_codec_models.py --checkpoint /tmp/bench --out codec_triton.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient

from voicereel.engine.codec import FRAME_SAMPLES, SAMPLE_RATE, ChunkPlan
from voicereel.modelrepo import build_repository
from voicereel.stack import Supervisor, TritonPorts, triton_service

PLAN = ChunkPlan()


def tensor(name: str, array: np.ndarray) -> grpcclient.InferInput:
    kinds = {np.dtype(np.float32): "FP32", np.dtype(np.int32): "INT32"}
    item = grpcclient.InferInput(name, list(array.shape), kinds[array.dtype])
    item.set_data_from_numpy(array)
    return item


def window_inputs(rng: np.random.Generator) -> list[grpcclient.InferInput]:
    codes = np.concatenate(
        [rng.integers(0, 4096, (1, PLAN.window_frames)), rng.integers(0, 1024, (9, PLAN.window_frames))]
    ).astype(np.int32)
    return [
        tensor("codes", codes[None]),
        tensor("context_frames", np.array([[PLAN.context_frames]], np.int32)),
        tensor("num_frames", np.array([[PLAN.window_frames]], np.int32)),
    ]


def batch_sizes(client: grpcclient.InferenceServerClient, model: str) -> dict[int, int]:
    stats: Any = client.get_inference_statistics(model, as_json=True)
    return {
        int(e["batch_size"]): int(e["compute_infer"]["count"]) for e in stats["model_stats"][0].get("batch_stats", [])
    }


def run_level(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker(seed: int) -> None:
        rng = np.random.default_rng(seed)
        inputs = window_inputs(rng)
        with grpcclient.InferenceServerClient(url) as client:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                client.infer("codec_decoder", inputs)
                with lock:
                    latencies.append(time.perf_counter() - start)

    with grpcclient.InferenceServerClient(url) as client:
        before = batch_sizes(client, "codec_decoder")
        start = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        after = batch_sizes(client, "codec_decoder")
    executions = {size: count - before.get(size, 0) for size, count in after.items() if count > before.get(size, 0)}
    chunk_seconds = PLAN.chunk_frames * FRAME_SAMPLES / SAMPLE_RATE
    latencies.sort()
    return {
        "concurrency": concurrency,
        "windows": len(latencies),
        "windows_per_s": len(latencies) / wall,
        "audio_s_per_s": len(latencies) * chunk_seconds / wall,
        "latency_p50_ms": 1e3 * statistics.median(latencies),
        "latency_p95_ms": 1e3 * latencies[int(0.95 * (len(latencies) - 1))],
        "executions_by_batch_size": executions,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/codec_load"))
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--compile", action="store_true", help="codec_decoder knob compile_decoder=true")
    args = parser.parse_args()
    overrides = {"codec_decoder": {"compile_decoder": True}} if args.compile else None
    models = ["codec_encoder", "codec_decoder"]
    repository = build_repository(args.work / "repo", args.checkpoint, overrides, models=models)
    ports = TritonPorts.free()
    url = f"127.0.0.1:{ports.grpc}"
    results: dict[str, Any] = {"window_frames": PLAN.window_frames, "chunk_frames": PLAN.chunk_frames}
    results["compile_decoder"] = args.compile
    with Supervisor(args.work / "logs") as supervisor:
        start = time.perf_counter()
        supervisor.start(triton_service(repository, ports, args.work / "triton", args.work / "logs", timeout_s=600))
        results["cold_start_s"] = time.perf_counter() - start
        with grpcclient.InferenceServerClient(url) as client:
            pcm = np.clip(np.random.default_rng(0).normal(0, 0.1, (1, 30 * SAMPLE_RATE)), -1, 1).astype(np.float32)
            client.infer("codec_encoder", [tensor("pcm", pcm)])  # warm-up
            start = time.perf_counter()
            codes = client.infer("codec_encoder", [tensor("pcm", pcm)]).as_numpy("codes")
            results["encode_30s_ms"] = 1e3 * (time.perf_counter() - start)
            results["encode_30s_codes_shape"] = list(codes.shape) if codes is not None else None
        run_level(url, 1, 2.0)  # warm-up
        results["decoder"] = [run_level(url, int(level), args.seconds) for level in args.levels.split(",")]
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
