"""The language model and the codec in one process on a GPU (shared knob pcm_decoding = text2semantic), no Triton.

Loads what text2semantic loads with that knob (compiled decode pieces, CUDA graphs, the codec behind a
CodecWorker) on the benchmark checkpoint, then streams requests of --frames frames through the engine's loop thread:

- lm: codes only (the language model alone: the ceiling for the modes below),
- pcm: codes rendered to PCM by the worker on a lowest-priority CUDA stream, the loop on a highest-priority one,
- pcm-same-priority: the same with the codec's stream at the loop's priority,
- pcm-switch-0.5ms: pcm with Python's GIL switch interval at 0.5 ms instead of 5 ms (two busy threads share it).

Per mode and concurrency: wall seconds, audio seconds per wall second, first-output latency p50/p95.

    python perf/gpu/bench_colocated.py --out $OUT [--levels 1 16 128] [--frames 646]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from voicereel.engine.codec import FRAME_SAMPLES, SAMPLE_RATE, ChunkPlan  # noqa: E402
from voicereel.engine.codec_serving import Failure  # noqa: E402
from voicereel.engine.generate import FinishReason, FrameBudget, GenerationRequest, SamplingParams  # noqa: E402
from voicereel.engine.pcm_render import PcmStream, engine_stream  # noqa: E402
from voicereel.engine.scheduler import Engine, EngineConfig  # noqa: E402
from voicereel.engine.t2s_serving import ServingConfig, load_engine, load_renderer  # noqa: E402

TEXTS = [
    "The morning train left the station just after six, carrying sleepy commuters into the city.",
    "She opened the old wooden box and found a bundle of letters tied with a faded blue ribbon.",
]


class Tracker:
    """One request's output: when the first piece arrived, how many samples, when it ended."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.first: float | None = None
        self.samples = 0
        self.failure: Failure | None = None
        self.finished = threading.Event()

    def _arrived(self) -> None:
        if self.first is None:
            self.first = time.perf_counter() - self.started

    def send_codes(self, codes: torch.Tensor) -> None:  # lm mode
        self._arrived()
        self.samples += codes.shape[1] * FRAME_SAMPLES

    def send_pcm(self, pcm: torch.Tensor) -> None:
        self._arrived()
        self.samples += pcm.numel()

    def close(self, failure: Failure | None) -> None:
        self.failure = failure
        self.finished.set()

    def is_cancelled(self) -> bool:
        return False


def run_level(engine: Engine, worker: Any, plan: ChunkPlan, concurrency: int, frames: int, pcm: bool) -> dict[str, Any]:
    started = time.perf_counter()
    trackers = []
    for index in range(concurrency):
        tracker = Tracker(time.perf_counter())
        target: Any = PcmStream(tracker, worker, plan) if pcm else tracker

        def done(reason: FinishReason, message: str | None, out: Any = target) -> None:
            out.close(Failure("INTERNAL", message or "") if reason is FinishReason.error else None)

        engine.submit(
            GenerationRequest(
                f"c{concurrency}-{index}-{time.monotonic_ns()}",
                [TEXTS[index % len(TEXTS)]],
                sampling=SamplingParams(seed=index),
                max_new_frames=frames,
                on_codes=target.send_codes,
                on_done=done,
            )
        )
        trackers.append(tracker)
    for tracker in trackers:
        if not tracker.finished.wait(timeout=300):
            raise RuntimeError("a request did not finish in 300 s")
    wall = time.perf_counter() - started
    failures = [str(t.failure) for t in trackers if t.failure is not None]
    if failures:
        raise RuntimeError(f"requests failed: {failures[:3]}")
    audio_s = sum(t.samples for t in trackers) / SAMPLE_RATE
    firsts = sorted(t.first or 0.0 for t in trackers)
    return {
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "audio_s": round(audio_s, 2),
        "x_realtime": round(audio_s / wall, 1),
        "first_p50_ms": round(1000 * statistics.median(firsts), 1),
        "first_p95_ms": round(1000 * firsts[min(len(firsts) - 1, int(0.95 * len(firsts)))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, default=Path("/tmp/voicereel-bench-ckpt"))
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16, 128])
    parser.add_argument("--frames", type=int, default=646)
    parser.add_argument("--modes", nargs="+", default=["lm", "pcm", "pcm-same-priority", "pcm-switch-0.5ms"])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from voicereel.engine.checkpoints import make_benchmark_checkpoint

    if not (args.checkpoint / "model.pth").exists():
        make_benchmark_checkpoint(args.checkpoint, seed=0, device="cuda")
    device = torch.device("cuda", 0)
    plan = ChunkPlan(chunk_frames=64, context_frames=64, first_chunk_frames=8)
    config = ServingConfig(
        checkpoint_dir=args.checkpoint,
        dtype="bfloat16",
        engine=EngineConfig(
            max_slots=max(args.levels),
            slot_capacity=1024,
            stream_frames=8,
            budget=FrameBudget(6.0, 43, max(args.frames, 64)),
            kv_block=256,
            cuda_graphs=True,
        ),
        max_text_chars=2000,
        chunk_chars=300,
        defaults=SamplingParams(),
        compile_backend="inductor",
        render_pcm=True,
        codec_plan=plan,
        codec_max_batch=32,
    )
    started = time.perf_counter()
    engine = load_engine(config, device)
    worker = load_renderer(config, device)
    assert worker is not None
    low = worker.cuda_stream
    figures: dict[str, Any] = {
        "git_sha": os.environ.get("BENCH_GIT_SHA", "unknown"),  # the device machine's copy has no .git
        "frames": args.frames,
        "load_s": round(time.perf_counter() - started, 1),
        "runs": [],
    }
    engine.start(engine_stream(device))
    for level in args.levels:  # captures each level's graphs before anything is timed
        run_level(engine, worker, plan, level, args.frames, pcm=True)
    for mode in args.modes:
        worker.cuda_stream = torch.cuda.Stream(device, priority=-100) if mode == "pcm-same-priority" else low
        sys.setswitchinterval(0.0005 if mode == "pcm-switch-0.5ms" else 0.005)
        for level in args.levels:
            run = {"mode": mode, **run_level(engine, worker, plan, level, args.frames, pcm=mode != "lm")}
            figures["runs"].append(run)
            print(json.dumps(run), flush=True)
    sys.setswitchinterval(0.005)
    engine.stop()
    worker.stop()
    (args.out / "colocated.json").write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
