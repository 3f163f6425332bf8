"""GPU smoke check: the compiled decode pieces in CUDA graphs at S1-mini shapes survive admissions of many sizes.

The engine as served (inductor-compiled pieces, CUDA graphs, 128 slots of 1024 positions, benchmark checkpoint),
warmed up as at load, then batches of requests admitted together (4, 16, 3, 128): each admission size is a new
first-frame graph and decode bucket. A fault (say, an out-of-bounds read in a compiled kernel) raises here instead
of poisoning a Triton stub. Run it with ``CUDA_LAUNCH_BLOCKING=1 GRAPHS=0`` to see which kernel faults.

    PYTHONPATH=/tmp/site:$PWD python3 perf/gpu/check_compiled.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from voicereel.engine.batched import BatchedDualAR
from voicereel.engine.checkpoints import load_text2semantic, make_benchmark_checkpoint
from voicereel.engine.generate import FinishReason, GenerationRequest, SamplingParams
from voicereel.engine.scheduler import Engine, EngineConfig
from voicereel.engine.t2s_serving import warm_up

CHECKPOINT = Path("/tmp/voicereel-bench-ckpt")


def main() -> None:
    if not (CHECKPOINT / "model.pth").exists():
        make_benchmark_checkpoint(CHECKPOINT, seed=0, device="cuda")
    model = load_text2semantic(CHECKPOINT, torch.device("cuda"), torch.bfloat16)
    config = EngineConfig(max_slots=128, slot_capacity=1024, cuda_graphs=os.environ.get("GRAPHS", "1") == "1")
    engine = Engine(BatchedDualAR(model, allow_end=False, compile_backend="inductor"), config)
    started = time.perf_counter()
    print(f"warm-up ok: {warm_up(engine)} {time.perf_counter() - started:.1f} s", flush=True)
    for count in (4, 16, 3, 128):
        reasons: list[FinishReason] = []

        def done(reason: FinishReason, message: str | None, into: list[FinishReason] = reasons) -> None:
            into.append(reason)

        for index in range(count):
            engine.submit(
                GenerationRequest(
                    f"r{count}-{index}",
                    ["hello there, how are you"],
                    sampling=SamplingParams(0.8, seed=index),
                    max_new_frames=20,
                    on_codes=lambda codes: None,
                    on_done=done,
                )
            )
        started = time.perf_counter()
        while engine.step():
            pass
        torch.cuda.synchronize()
        outcome = sorted({reason.value for reason in reasons})
        print(f"{count} at once: {outcome} {time.perf_counter() - started:.2f} s", flush=True)
        if outcome != [FinishReason.length.value]:
            raise SystemExit(f"admissions of {count} ended {outcome}")


if __name__ == "__main__":
    main()
