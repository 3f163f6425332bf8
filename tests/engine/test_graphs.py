"""Bucketing of decode steps, and CUDA-graph replay equal to eager decoding (GPU only)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from voicereel.engine.batched import BatchedDualAR
from voicereel.engine.generate import FrameBudget, GenerationRequest, SamplingParams
from voicereel.engine.graphs import DecodeRunner, all_buckets, batch_buckets, bucket_batch, bucket_kv_len
from voicereel.engine.scheduler import Engine, EngineConfig
from voicereel.engine.step import hash_tables, new_state


def test_batch_buckets_are_powers_of_two_capped_at_the_slots() -> None:
    assert [bucket_batch(n, 12) for n in range(1, 13)] == [1, 2, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12]
    with pytest.raises(ValueError):
        bucket_batch(0, 4)
    with pytest.raises(ValueError):
        bucket_batch(5, 4)


def test_kv_buckets_are_block_multiples_capped_at_the_capacity() -> None:
    assert [bucket_kv_len(n, 256, 1000) for n in (1, 256, 257, 768, 769, 1000)] == [256, 256, 512, 768, 1000, 1000]
    with pytest.raises(ValueError):
        bucket_kv_len(1001, 256, 1000)


@pytest.mark.parametrize(("slots", "block", "capacity"), [(128, 256, 1024), (12, 256, 1000), (1, 64, 64), (5, 8, 70)])
def test_all_buckets_are_exactly_the_buckets_a_step_can_pick(slots: int, block: int, capacity: int) -> None:
    picked = {
        (bucket_batch(n, slots), bucket_kv_len(k, block, capacity))
        for n in range(1, slots + 1)
        for k in range(1, capacity + 1)
    }
    buckets = all_buckets(slots, block, capacity)
    assert set(buckets) == picked and len(buckets) == len(picked)
    assert buckets == sorted(buckets)
    assert batch_buckets(slots) == sorted({batch for batch, _ in picked})


def test_capture_at_load_does_nothing_without_cuda_graphs(tiny_lm: Any) -> None:
    engine = Engine(BatchedDualAR(tiny_lm), EngineConfig(max_slots=2, slot_capacity=128, capture_at_load=True))
    assert engine.capture_graphs() == 0 and engine.runner.graphs == {} and engine.runner.first_graphs == {}


def test_graphs_need_cuda(tiny_lm: Any) -> None:
    model = BatchedDualAR(tiny_lm)
    state = new_state(model, 2, 64)
    with pytest.raises(ValueError, match="CUDA"):
        DecodeRunner(model, state, hash_tables(model), use_graphs=True)


def _generate(model: BatchedDualAR, cuda_graphs: bool, capture_at_load: bool = False) -> dict[str, torch.Tensor]:
    config = EngineConfig(
        max_slots=4,
        slot_capacity=512,
        stream_frames=4,
        budget=FrameBudget(1.0, 6, 40),
        kv_block=64,
        cuda_graphs=cuda_graphs,
        capture_at_load=capture_at_load,
    )
    engine = Engine(model, config)
    if capture_at_load:  # every bucket now, none at first use
        assert engine.capture_graphs() == len(all_buckets(4, 64, 512)) + len(batch_buckets(4))
        assert len(engine.runner.graphs) == len(all_buckets(4, 64, 512))
        assert sorted(engine.runner.first_graphs) == batch_buckets(4) == [1, 2, 4]
        captured = (dict(engine.runner.graphs), dict(engine.runner.first_graphs))
    out: dict[str, list[torch.Tensor]] = {}
    texts = {"a": "first request", "b": "second, a longer request text", "c": "third"}
    for step in range(400):
        if step < len(texts):  # join one per step: the batch bucket changes while others decode
            name = list(texts)[step]
            out[name] = []
            engine.submit(
                GenerationRequest(
                    name, [texts[name]], sampling=SamplingParams(0.8, seed=step), on_codes=out[name].append
                )
            )
        if not engine.step() and step >= len(texts):
            break
    assert engine.runner.graphs or not cuda_graphs
    if capture_at_load:  # requests replayed what was captured at load, and captured nothing more
        assert (engine.runner.graphs, engine.runner.first_graphs) == captured
    return {name: torch.cat(chunks, dim=1) for name, chunks in out.items()}


@pytest.mark.gpu
def test_cuda_graph_replay_equals_eager(tiny_lm: Any) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: CUDA graphs cannot be captured")
    model = BatchedDualAR(tiny_lm.to("cuda"))
    try:
        eager = _generate(model, cuda_graphs=False)
        graphed = _generate(model, cuda_graphs=True)
        captured_at_load = _generate(model, cuda_graphs=True, capture_at_load=True)
    finally:
        tiny_lm.to("cpu")
    for name, codes in eager.items():
        assert torch.equal(codes, graphed[name]), name
        assert torch.equal(codes, captured_at_load[name]), name


@pytest.mark.gpu
def test_graphs_are_captured_while_another_thread_uses_the_gpu(tiny_lm: Any) -> None:
    """The in-process codec (pcm_render) decodes on its own thread and stream while the engine captures a graph at a
    bucket's first use; with the default (global) capture mode its allocations and synchronisations fail the capture
    (seen on the H200). Captured thread_local, decoding is unchanged."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: CUDA graphs cannot be captured")
    import threading

    stop = threading.Event()
    errors: list[BaseException] = []

    def busy() -> None:
        side = torch.cuda.Stream()
        try:
            with torch.cuda.stream(side):
                while not stop.is_set():
                    # A fresh allocation each time. Not drawn from the RNG: during a capture the default CUDA generator
                    # belongs to the graph (another thread's randn then raises), and the codec draws no random numbers.
                    block = torch.full((256, 256), 0.5, device="cuda")
                    (block @ block).sum().item()  # and a synchronisation
        except BaseException as exc:
            errors.append(exc)

    model = BatchedDualAR(tiny_lm.to("cuda"))
    try:
        eager = _generate(model, cuda_graphs=False)
        thread = threading.Thread(target=busy, daemon=True)
        thread.start()
        try:
            graphed = _generate(model, cuda_graphs=True)
        finally:
            stop.set()
            thread.join()
    finally:
        tiny_lm.to("cpu")
    assert errors == []
    for name, codes in eager.items():
        assert torch.equal(codes, graphed[name]), name


@pytest.mark.gpu
def test_forgotten_graphs_are_captured_again_into_a_new_pool(tiny_lm: Any) -> None:
    """Warm-up's fallback (compiled pieces failed) drops the graphs and captures again. Into the pool of the graphs
    just destroyed, torch 2.11's allocator asserted (``use_count > 0``, H100, fourteenth session)."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: CUDA graphs cannot be captured")
    model = BatchedDualAR(tiny_lm.to("cuda"))
    try:
        config = EngineConfig(max_slots=2, slot_capacity=128, kv_block=64, cuda_graphs=True, capture_at_load=True)
        engine = Engine(model, config)
        captured = engine.capture_graphs()
        assert captured > 0
        engine.runner.forget_graphs()
        assert engine.runner.graphs == {} and engine.runner.first_graphs == {}
        assert engine.capture_graphs() == captured
    finally:
        tiny_lm.to("cpu")
