"""CUDA graphs of the codec's waveform decoder: every window takes a captured length, and replays equal eager
decodes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from voicereel.engine.codec import ChunkPlan, Codec, plan_windows, validate_codes, window_spans
from voicereel.engine.tts_stream import WindowFeed

from .test_codec import mixed_windows, random_codes, shapes_restored


@pytest.mark.parametrize("plan", [ChunkPlan(64, 64, 8), ChunkPlan(64, 64, 0), ChunkPlan(32, 48, 4), ChunkPlan(64, 4)])
def test_every_window_of_any_length_or_stream_takes_a_captured_length(codec: Codec, plan: ChunkPlan) -> None:
    """A window whose decoder length was not captured would decode eagerly: none may exist, whole or streamed."""
    with shapes_restored(codec):
        codec.fix_shapes(8, plan)
        lengths = set(codec.planned_spans(plan))
        assert lengths <= set(window_spans(plan))
        for frames in (1, 3, 8, 9, 40, 64, 71, 72, 73, 130, 200, 333):
            codes = validate_codes(random_codes(frames, seed=frames))
            windows = plan_windows(codes, plan)
            feed = WindowFeed(plan)
            for start in range(0, frames, 5):  # streamed in chunks of 5 frames
                windows += feed.push(codes[:, start : start + 5])
            windows += feed.finish()
            assert {end - skip for skip, end in map(codec.window_call, windows)} <= lengths, frames


@pytest.mark.parametrize(
    ("plan", "spans"),
    [
        (ChunkPlan(64, 64, 8), (8, 72)),  # the default: the whole window's 128 is never reached
        (ChunkPlan(64, 64, 0), (72,)),
        (ChunkPlan(32, 48, 4), (4, 40, 80)),  # the third window's 36 frames of context are too few to skip
        (ChunkPlan(64, 4), (68,)),  # context within the margin: nothing skipped, whole windows
    ],
)
def test_planned_spans_are_the_lengths_a_plan_reaches(codec: Codec, plan: ChunkPlan, spans: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="needs fixed shapes"):
        codec.planned_spans(plan)
    with shapes_restored(codec):
        codec.fix_shapes(8, plan)
        assert codec.planned_spans(plan) == spans


def test_graphs_need_cuda(codec: Codec) -> None:
    with pytest.raises(ValueError, match="CUDA graphs need the codec on a CUDA device"):
        codec.capture_graphs(2, ChunkPlan(64, 64, 8))
    assert codec.graphs is None


@pytest.mark.gpu
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_graph_replays_equal_eager_decodes(tiny_checkpoint: Path, compiled: bool) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: CUDA graphs cannot be captured")
    plan = ChunkPlan(chunk_frames=64, context_frames=64, first_chunk_frames=8)
    windows = mixed_windows(plan)
    eager = Codec.from_checkpoint(tiny_checkpoint, "cuda", torch.float32)
    expected = eager.decode_windows(windows)
    graphed = Codec.from_checkpoint(tiny_checkpoint, "cuda", torch.float32)
    if compiled:
        graphed.compile_decoder(2, plan)
    # lengths 8 and 72 at buckets 1 and 2; compiled, bucket 2 only (a lone window decodes as two)
    assert graphed.capture_graphs(2, plan) == (1 if compiled else 2) * 2
    got = [pcm for size in (1, 2, 5) for pcm in graphed.decode_windows(windows[:size])]
    again = graphed.decode_windows(windows)  # replays overwrite the graphs' outputs: earlier results are copies
    reference = [expected[index] for size in (1, 2, 5) for index in range(size)]
    for a, b in zip([*got, *again], [*reference, *expected], strict=True):
        assert a.shape == b.shape and float((a - b).abs().max()) < 1e-4
