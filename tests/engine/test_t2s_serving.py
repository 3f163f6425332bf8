"""Serving helpers of text2semantic: responses sent off the engine thread, compiled decode pieces warmed up.

The compiled pieces are checked with dynamo's ``aot_eager`` backend (traced, functionalised, run by eager
kernels: the same graph inductor gets on a GPU, without compiling C++ here); codes must equal eager ones.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from voicereel.engine.batched import BatchedDualAR, DecodeKernels
from voicereel.engine.codec_serving import Failure
from voicereel.engine.generate import FrameBudget, GenerationRequest, SamplingParams
from voicereel.engine.scheduler import Engine, EngineConfig
from voicereel.engine.stage_times import StageTimes
from voicereel.engine.t2s_serving import DispatchedStream, ResponseDispatcher, warm_up


class RecordingStream:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.sender_threads: set[str] = set()
        self.cancelled = False
        self.closed = threading.Event()

    def send_codes(self, codes: torch.Tensor) -> None:
        self.sender_threads.add(threading.current_thread().name)
        self.events.append(int(codes[0, 0]))

    def close(self, failure: Failure | None) -> None:
        self.events.append(failure)
        self.closed.set()

    def is_cancelled(self) -> bool:
        return self.cancelled


def test_dispatched_streams_keep_order_off_the_calling_thread_and_see_cancellation() -> None:
    dispatcher = ResponseDispatcher(threads=2)
    inner = [RecordingStream() for _ in range(3)]
    streams = [DispatchedStream(stream, dispatcher, poll_s=0.0) for stream in inner]
    for value in range(50):
        for stream in streams:
            stream.send_codes(torch.full((10, 1), value, dtype=torch.int32))
    inner[1].cancelled = True
    streams[1].send_codes(torch.full((10, 1), 50, dtype=torch.int32))
    for stream in streams:
        stream.close(None)
    for recording in inner:
        assert recording.closed.wait(10)
    dispatcher.stop()
    assert [s.events for s in inner] == [[*range(50), None], [*range(51), None], [*range(50), None]]
    assert all(s.sender_threads and threading.current_thread().name not in s.sender_threads for s in inner)
    assert streams[1].is_cancelled() and not streams[0].is_cancelled()


def _codes(model: BatchedDualAR) -> dict[str, torch.Tensor]:
    budget = FrameBudget(6.0, 43, 200)
    config = EngineConfig(max_slots=4, slot_capacity=256, stream_frames=4, budget=budget, kv_block=64)
    engine = Engine(model, config)
    out: dict[str, list[torch.Tensor]] = {"a": [], "b": []}
    for index, rid in enumerate(out):
        engine.submit(
            GenerationRequest(
                rid,
                [f"compiled {rid} " * (index + 1)],
                sampling=SamplingParams(0.8, 0.8, 1.1, seed=index),
                max_new_frames=9 + 5 * index,
                on_codes=out[rid].append,
            )
        )
    while engine.step():
        pass
    return {rid: torch.cat(chunks, dim=1) for rid, chunks in out.items()}


def test_compiled_decode_pieces_equal_eager_and_warm_up_keeps_them(tiny_lm: Any) -> None:
    from torch._dynamo.utils import compile_times

    torch.set_num_threads(1)
    torch._dynamo.reset()  # so warm-up compiles here, with fresh compile metrics
    compiled = BatchedDualAR(tiny_lm, compile_backend="aot_eager")
    assert compiled.kernels != DecodeKernels.eager()
    engine = Engine(compiled, EngineConfig(max_slots=2, slot_capacity=256, kv_block=64))
    assert warm_up(engine) and engine.busy_slots == [] and engine.waiting == 0
    # Compiled once per piece: no tracing restarted (the norms' epsilon traced as a symbol, then specialised, made
    # pieces trace twice; aot_eager runs the pass that forces it, dynamo's own eager backend does not).
    metrics = compile_times(repr="str")
    assert "compile_attempt_0" in metrics and "compile_attempt_1" not in metrics
    eager, got = _codes(BatchedDualAR(tiny_lm)), _codes(compiled)
    assert all(torch.equal(eager[rid], got[rid]) for rid in eager)


def test_after_warm_up_no_batch_size_or_cache_length_compiles_again(tiny_lm: Any) -> None:
    """Each new (batch, kv) bucket used to recompile the pieces (seconds each on the GPU, stalling every stream):
    size coincidences (duck sizing), a stride-0 RoPE view, prefill rows of another tensor kind, batch 1. Counted
    with dynamo alone (backend "eager"): the graphs it traces are the compilations inductor would do."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list
    from torch._dynamo.utils import counters

    from voicereel.engine.batched import decode_post, decode_pre, fast_position
    from voicereel.engine.sampling import sample_tensors

    torch.set_num_threads(1)
    torch._dynamo.reset()  # earlier tests' compilations (other backends) would count as variants
    config = EngineConfig(max_slots=8, slot_capacity=256, stream_frames=4, budget=FrameBudget(1.0, 6, 80), kv_block=64)
    engine = Engine(BatchedDualAR(tiny_lm, compile_backend="eager"), config)
    assert warm_up(engine)
    # At most two variants a piece (batch 1, any batch). The fast transformer's once had four: its cache input at
    # position 0 (the slot state's scratch, made outside inference mode, slot rows) and after it (inference tensors,
    # batch rows): twice the compile at start-up.
    for piece in (decode_pre, decode_post, fast_position, sample_tensors):
        assert len(_debug_get_cache_entry_list(piece.__code__)) <= 2, piece.__name__
    traced = counters["stats"]["unique_graphs"]
    for count, frames in ((1, 8), (3, 80), (5, 12), (8, 70)):  # batch buckets 1, 4, 8; kv buckets 64 and 128
        for index in range(count):
            request = GenerationRequest(
                f"b{count}-{index}",
                ["some words to say"],
                sampling=SamplingParams(0.8, seed=index),
                max_new_frames=frames,
                on_codes=lambda codes: None,
            )
            engine.submit(request)
        while engine.step():
            pass
    assert counters["stats"]["unique_graphs"] == traced


def test_one_row_pieces_serve_single_rows_without_compiling_again_and_match_eager(tiny_lm: Any) -> None:
    """With ``one_row``, steps of one row run pieces of their own (dims of size 1 static, attention as products),
    traced once at warm-up and reused at every kv bucket and layer; a single stream's codes equal eager ones and the
    batch's steps still run the any-batch pieces."""
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list
    from torch._dynamo.utils import counters

    from voicereel.engine.batched import (
        decode_post_one_row,
        decode_pre_one_row,
        fast_position_one_row,
        sample_tensors_one_row,
    )

    torch.set_num_threads(1)
    torch._dynamo.reset()
    model = BatchedDualAR(tiny_lm, compile_backend="eager", one_row=True)
    assert model.one_row_kernels is not None
    assert model.kernels_for(1) is model.one_row_kernels and model.kernels_for(2) is model.kernels
    config = EngineConfig(max_slots=4, slot_capacity=256, stream_frames=4, budget=FrameBudget(1.0, 6, 120), kv_block=64)
    engine = Engine(model, config)
    assert warm_up(engine)
    one_row = (decode_pre_one_row, decode_post_one_row, fast_position_one_row, sample_tensors_one_row)
    assert [len(_debug_get_cache_entry_list(piece.__code__)) for piece in one_row] == [1, 1, 1, 1]
    traced = counters["stats"]["unique_graphs"]
    got: list[torch.Tensor] = []
    engine.submit(
        GenerationRequest(
            "alone",
            ["one row through two cache buckets"],
            sampling=SamplingParams(0.8, 0.8, 1.1, seed=3),
            max_new_frames=100,  # positions past 64: kv buckets 64 and 128
            on_codes=got.append,
        )
    )
    while engine.step():
        pass
    assert counters["stats"]["unique_graphs"] == traced
    expected: list[torch.Tensor] = []
    eager = Engine(BatchedDualAR(tiny_lm), config)
    eager.submit(
        GenerationRequest(
            "alone",
            ["one row through two cache buckets"],
            sampling=SamplingParams(0.8, 0.8, 1.1, seed=3),
            max_new_frames=100,
            on_codes=expected.append,
        )
    )
    while eager.step():
        pass
    assert torch.equal(torch.cat(got, dim=1), torch.cat(expected, dim=1))


def test_one_row_pieces_need_a_compile_backend(tiny_lm: Any) -> None:
    assert BatchedDualAR(tiny_lm, one_row=True).one_row_kernels is None


def test_warm_up_falls_back_to_eager_pieces_when_compiling_fails(tiny_lm: Any) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("no compiler")

    model = BatchedDualAR(tiny_lm)
    model.kernels = DecodeKernels(broken, broken, broken, broken)
    model.one_row_kernels = DecodeKernels(broken, broken, broken, broken)
    engine = Engine(model, EngineConfig(max_slots=2, slot_capacity=256, kv_block=64))
    assert not warm_up(engine)
    assert model.kernels == DecodeKernels.eager() and model.one_row_kernels is None


def test_stage_times_sum_per_stage() -> None:
    import logging

    times = StageTimes("t", logging.getLogger("t"), every_s=0.0)
    with times.stage("a"):
        pass
    times.add("a", 1.0)
    times.add("frames", 0.0, 7)
    assert times.counts == {"a": 2, "frames": 7} and times.seconds["a"] >= 1.0
    assert times.summary().startswith("t stats over ") and "frames=0.000s/7" in times.summary()


def test_warm_up_drops_only_the_one_row_pieces_when_they_fail(tiny_lm: Any) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("one-row compile failed")

    model = BatchedDualAR(tiny_lm, compile_backend="eager", one_row=True)
    any_batch = model.kernels
    model.one_row_kernels = DecodeKernels(broken, broken, broken, broken)
    engine = Engine(model, EngineConfig(max_slots=2, slot_capacity=256, kv_block=64))
    assert warm_up(engine)
    assert model.one_row_kernels is None and model.kernels is any_batch and model.kernels_for(1) is any_batch


def test_engine_knobs_reach_the_serving_config(tmp_path: Any, tiny_checkpoint: Any) -> None:
    import re

    from voicereel.engine.t2s_serving import ServingConfig
    from voicereel.modelrepo import build_repository

    entry = re.compile(r'\{ key: "(\w+)", value: \{ string_value: "([^"]*)" \} \}')

    def config(knobs: dict[str, Any] | None, name: str) -> ServingConfig:
        repository = build_repository(tmp_path / name, tiny_checkpoint, knobs, models=["text2semantic"])
        parameters = dict(entry.findall((repository / "text2semantic" / "config.pbtxt").read_text()))
        return ServingConfig.from_parameters(parameters, on_gpu=True)

    default = config(None, "default")
    assert not default.one_row_step and default.compile_backend == "inductor"
    assert default.engine.admit_wait_ms == 0.0 and not default.engine.trace_requests
    assert default.prefill_attention == "flash"
    changed = config(
        {
            "text2semantic": {"one_row_step": True, "admit_wait_ms": 2.5, "prefill_attention": "auto"},
            "shared": {"trace_requests": True},
        },
        "on",
    )
    assert changed.one_row_step and changed.engine.admit_wait_ms == 2.5 and changed.engine.trace_requests
    assert changed.prefill_attention == "auto"
    in_process = {"shared": {"pcm_decoding": "text2semantic"}}
    assert config(in_process, "pcm").render_pcm
    with pytest.raises(ValueError, match="needs capture_at_load"):
        config({**in_process, "text2semantic": {"capture_at_load": False}}, "pcm-first-use")
