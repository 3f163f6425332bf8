"""Does codec_decoder's compiled waveform decoder compile on this GPU, as the knob loads it, and how fast is it?

The benchmark codec (real size, random weights) as codec_decoder serves it (bf16, ``Codec.for_serving``), the default
plan (64 + 64 frames, first chunk 8), ``compile_decoder(32)`` then ``warm_up`` (every bucket and length) and, if
that compiled, ``capture_graphs`` and the time of 16 and 32 full windows a call. Writes ``compiled_decoder.json`` to
the output folder after every step (a run cut short still reports how far it got), with the git SHA.

    python3 perf/codec/check_compiled_decoder.py $OUT
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_codec import timed

from voicereel.engine.checkpoints import make_benchmark_checkpoint
from voicereel.engine.codec import ChunkPlan, Codec, DecodeWindow

CHECKPOINT = Path("/tmp/voicereel-bench-ckpt")


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"git_sha": os.environ.get("BENCH_GIT_SHA", "unknown"), "device": "none"}

    def emit(**figures: Any) -> None:
        results.update(figures)
        (out / "compiled_decoder.json").write_text(json.dumps(results, indent=1))
        print(json.dumps(figures), flush=True)

    emit(device=torch.cuda.get_device_name(), torch=torch.__version__)
    if not (CHECKPOINT / "model.pth").exists():
        make_benchmark_checkpoint(CHECKPOINT, seed=0, device="cuda")
    plan = ChunkPlan(chunk_frames=64, context_frames=64, first_chunk_frames=8)
    codec = Codec.for_serving(CHECKPOINT, "cuda", torch.bfloat16)
    codec.compile_decoder(32, plan)
    start = time.perf_counter()
    try:
        compiled = codec.warm_up(plan)
    except Exception as exc:
        emit(warm_up_error="".join(traceback.format_exception(exc))[-2000:])
        raise
    emit(compiled=compiled, buckets=list(codec.batch_buckets), warm_up_s=round(time.perf_counter() - start, 1))
    start = time.perf_counter()
    emit(graphs=codec.capture_graphs(32, plan), capture_s=round(time.perf_counter() - start, 1))
    codes = torch.randint(0, 1024, (10, plan.window_frames), dtype=torch.int32)
    full = DecodeWindow(codes=codes, context_frames=plan.context_frames, num_frames=plan.window_frames)
    for batch in (16, 32):
        seconds = timed(lambda n=batch: codec.decode_windows([full] * n), codec.device, repeats=5)
        emit(**{f"call_ms_{batch}": round(1e3 * seconds, 1)})


if __name__ == "__main__":
    main()
