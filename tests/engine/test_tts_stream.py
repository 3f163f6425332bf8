"""The tts pipeline in-process: the real engine's code stream, the real (tiny) codec, fixed decode windows."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from voicereel.engine.batched import BatchedDualAR
from voicereel.engine.codec import FRAME_SAMPLES, ChunkPlan, Codec, DecodeWindow, plan_windows
from voicereel.engine.codec_serving import Failure
from voicereel.engine.generate import FrameBudget, GenerationRequest, SamplingParams
from voicereel.engine.scheduler import Engine, EngineConfig
from voicereel.engine.tts_stream import FailureError, TtsCalls, WindowFeed, run_tts

PLAN = ChunkPlan(chunk_frames=16, context_frames=8)


@pytest.fixture(scope="module")
def code_chunks(tiny_lm: Any) -> list[torch.Tensor]:
    """Code chunks as the engine streams them (5 frames per chunk, 43 frames in all)."""
    config = EngineConfig(max_slots=2, slot_capacity=512, stream_frames=5, budget=FrameBudget(1.0, 60, 200))
    engine = Engine(BatchedDualAR(tiny_lm), config)
    chunks: list[torch.Tensor] = []
    engine.submit(
        GenerationRequest(
            "r", ["some text"], sampling=SamplingParams(seed=7), max_new_frames=43, on_codes=chunks.append
        )
    )
    while engine.step():
        pass
    return chunks


def _same_windows(got: list[DecodeWindow], expected: list[DecodeWindow]) -> None:
    assert [(w.context_frames, w.num_frames) for w in got] == [(w.context_frames, w.num_frames) for w in expected]
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a.codes, b.codes)


def test_window_feed_cuts_the_windows_of_whole_sequence_decoding(code_chunks: list[torch.Tensor]) -> None:
    codes = torch.cat(code_chunks, dim=1)
    feed = WindowFeed(PLAN)
    got: list[DecodeWindow] = []
    for chunk in code_chunks:
        got.extend(feed.push(chunk))
        assert feed.rendered <= feed.frames  # a window never waits for frames that exist
        assert feed.frames - feed.rendered < PLAN.chunk_frames  # ...and is cut as soon as they do
    got.extend(feed.finish())
    _same_windows(got, plan_windows(codes.long(), PLAN))
    assert feed.finish() == []


class Client:
    """The tts client side of run_tts: PCM chunks and how the stream was closed."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.pcm: list[torch.Tensor] = []
        self.closed: list[Failure | None] = []
        self.cancel_after = cancel_after
        self.cancels = 0

    def calls(self, codes: Any, decode: Any) -> TtsCalls:
        return TtsCalls(
            codes=codes,
            decode=decode,
            send=self.pcm.append,
            close=self.closed.append,
            is_cancelled=lambda: self.cancel_after is not None and len(self.pcm) >= self.cancel_after,
            cancel_codes=self._cancel,
        )

    def _cancel(self) -> None:
        self.cancels += 1


def test_streamed_pcm_equals_decoding_all_codes_at_once(code_chunks: list[torch.Tensor], codec: Codec) -> None:
    client = Client()
    run_tts(client.calls(iter(code_chunks), lambda w: codec.decode_windows([w])[0]), PLAN)
    assert client.closed == [None]
    assert [p.numel() for p in client.pcm] == [16 * FRAME_SAMPLES, 16 * FRAME_SAMPLES, 11 * FRAME_SAMPLES]
    whole = codec.decode_chunked(torch.cat(code_chunks, dim=1), PLAN)
    torch.testing.assert_close(torch.cat(client.pcm), whole, atol=1e-5, rtol=0)


def test_a_code_stream_failure_is_forwarded(code_chunks: list[torch.Tensor], codec: Codec) -> None:
    client = Client()
    failure = Failure("INVALID_INPUT", "text is empty")
    run_tts(client.calls(iter([failure]), lambda w: codec.decode_windows([w])[0]), PLAN)
    assert client.closed == [failure] and client.pcm == []


def test_a_cancelled_client_cancels_the_code_stream_once(code_chunks: list[torch.Tensor], codec: Codec) -> None:
    client = Client(cancel_after=1)
    run_tts(client.calls(iter(code_chunks), lambda w: codec.decode_windows([w])[0]), PLAN)
    assert client.cancels == 1 and len(client.pcm) == 1 and client.closed == [None]


def test_a_failed_decode_ends_the_stream_with_its_error(code_chunks: list[torch.Tensor]) -> None:
    def decode(window: DecodeWindow) -> torch.Tensor:
        raise FailureError(Failure("INTERNAL", "codec_decoder unavailable"))

    client = Client()
    run_tts(client.calls(iter(code_chunks), decode), PLAN)
    assert client.closed == [Failure("INTERNAL", "codec_decoder unavailable")] and client.pcm == []


def test_a_short_first_window_starts_the_audio_early_then_windows_are_regular(
    code_chunks: list[torch.Tensor], codec: Codec
) -> None:
    plan = ChunkPlan(chunk_frames=PLAN.chunk_frames, context_frames=PLAN.context_frames, first_chunk_frames=5)
    codes = torch.cat(code_chunks, dim=1)
    feed = WindowFeed(plan)
    got: list[DecodeWindow] = []
    for chunk in code_chunks:
        got.extend(feed.push(chunk))
    got.extend(feed.finish())
    _same_windows(got, plan_windows(codes.long(), plan))
    ends = [5 + PLAN.chunk_frames * i for i in range(len(got))]
    rendered = [w.num_frames - w.context_frames for w in got]
    assert rendered[0] == 5 and all(r == PLAN.chunk_frames for r in rendered[1:-1])
    assert sum(rendered) == codes.shape[1] and ends[len(got) - 2] < codes.shape[1]
    pcm = torch.cat([codec.decode_windows([w])[0] for w in got])
    whole = codec.decode(codes)
    assert float((pcm - whole).abs().max()) < 1e-3  # the codec's stated chunking tolerance
