"""Codes rendered to PCM in text2semantic's process: the real engine and tiny codec, then the worker's queue rules."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
import torch

from voicereel.engine.batched import BatchedDualAR
from voicereel.engine.codec import FRAME_SAMPLES, ChunkPlan, Codec, DecodeWindow, make_window
from voicereel.engine.codec_serving import Failure
from voicereel.engine.generate import FrameBudget, GenerationRequest, SamplingParams
from voicereel.engine.pcm_render import CodecWorker, PcmStream
from voicereel.engine.scheduler import Engine, EngineConfig

PLAN = ChunkPlan(chunk_frames=16, context_frames=8, first_chunk_frames=4)


class Sink:
    def __init__(self) -> None:
        self.pcm: list[torch.Tensor] = []
        self.closed: list[Failure | None] = []
        self.finished = threading.Event()

    def send_pcm(self, pcm: torch.Tensor) -> None:
        assert not self.closed, "pcm after the final response"
        self.pcm.append(pcm)

    def close(self, failure: Failure | None) -> None:
        self.closed.append(failure)
        self.finished.set()

    def is_cancelled(self) -> bool:
        return False


def test_streams_rendered_by_the_worker_thread_equal_decoding_their_codes(tiny_lm: Any, codec: Codec) -> None:
    config = EngineConfig(max_slots=4, slot_capacity=512, stream_frames=5, budget=FrameBudget(1.0, 60, 200))
    engine = Engine(BatchedDualAR(tiny_lm), config)
    worker = CodecWorker(codec, max_batch=3)
    frames = [43, 4, 55]
    sinks = [Sink() for _ in frames]
    codes: list[list[torch.Tensor]] = [[] for _ in frames]
    generated = [threading.Event() for _ in frames]
    for index, (count, sink) in enumerate(zip(frames, sinks, strict=True)):
        stream = PcmStream(sink, worker, PLAN)

        def on_codes(chunk: torch.Tensor, into: list[torch.Tensor] = codes[index], out: PcmStream = stream) -> None:
            into.append(chunk)
            out.send_codes(chunk)

        def on_done(
            reason: Any, message: str | None, out: PcmStream = stream, done: threading.Event = generated[index]
        ) -> None:
            out.close(None if message is None else Failure("INTERNAL", message))
            done.set()

        engine.submit(
            GenerationRequest(
                f"r{index}",
                ["some text to say"],
                sampling=SamplingParams(seed=index),
                max_new_frames=count,
                on_codes=on_codes,
                on_done=on_done,
            )
        )
    engine.start()
    try:
        # The worker starts once every stream's windows wait in its queue, so that windows of different streams
        # share calls however the threads are scheduled (started at once, on a busy 2-core CI runner the worker
        # sometimes kept up with the engine and decoded each window alone).
        assert all(done.wait(timeout=120) for done in generated)
        worker.start()
        assert all(sink.finished.wait(timeout=120) for sink in sinks)
    finally:
        engine.stop()
        worker.stop()
    for count, sink, chunks in zip(frames, sinks, codes, strict=True):
        assert sink.closed == [None]
        whole = codec.decode_chunked(torch.cat(chunks, dim=1), PLAN)
        assert whole.numel() == count * FRAME_SAMPLES
        torch.testing.assert_close(torch.cat(sink.pcm), whole, atol=1e-5, rtol=0)
        # first window renders 4 frames, then 16 per window
        assert sink.pcm[0].numel() == min(count, 4) * FRAME_SAMPLES
        assert all(piece.numel() <= 16 * FRAME_SAMPLES for piece in sink.pcm)
    assert worker.batches < sum(len(sink.pcm) for sink in sinks)  # windows of different streams shared calls


class Recorder:
    """A decoder that renders each window as its number of frames (and can be told to fail)."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.fail_next = False

    def decode_windows(self, windows: Sequence[DecodeWindow]) -> list[torch.Tensor]:
        self.calls.append([w.num_frames - w.context_frames for w in windows])
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("boom")
        return [torch.full(((w.num_frames - w.context_frames) * FRAME_SAMPLES,), float(w.num_frames)) for w in windows]


def _feed(stream: PcmStream, frames: int) -> None:
    stream.send_codes(torch.zeros((10, frames), dtype=torch.int32))


def test_first_windows_go_ahead_and_each_stream_keeps_its_order() -> None:
    decoder = Recorder()
    worker = CodecWorker(decoder, max_batch=2)
    old, new = Sink(), Sink()
    old_stream = PcmStream(old, worker, PLAN)
    _feed(old_stream, 4 + 16 * 3)  # its first window and three more, queued first
    new_stream = PcmStream(new, worker, PLAN)
    _feed(new_stream, 4)  # a first window arriving later
    old_stream.close(None)
    new_stream.close(None)
    while worker.run_pending():
        pass
    # batch 1: both first windows (the newcomer ahead of old's later ones); then two at a time in arrival order
    assert decoder.calls == [[4, 4], [16, 16], [16]]
    assert [p.numel() // FRAME_SAMPLES for p in old.pcm] == [4, 16, 16, 16]
    assert [p.numel() // FRAME_SAMPLES for p in new.pcm] == [4]
    assert old.closed == [None] and new.closed == [None]


def test_the_final_response_follows_the_last_window_and_carries_the_failure() -> None:
    decoder = Recorder()
    worker = CodecWorker(decoder, max_batch=8)
    sink = Sink()
    stream = PcmStream(sink, worker, PLAN)
    _feed(stream, 10)  # first window (4 frames) cut; 6 frames wait for more
    stream.close(Failure("INTERNAL", "decode failed"))  # an engine error: no last window for the 6 frames
    worker.run_pending()
    assert [p.numel() // FRAME_SAMPLES for p in sink.pcm] == [4]
    assert sink.closed == [Failure("INTERNAL", "decode failed")]

    ok = Sink()
    stream = PcmStream(ok, worker, PLAN)
    _feed(stream, 10)
    stream.close(None)  # finished: the remaining 6 frames are rendered as a last, shorter window
    worker.run_pending()
    assert [p.numel() // FRAME_SAMPLES for p in ok.pcm] == [4, 6]
    assert ok.closed == [None]


def test_a_failed_decode_fails_only_the_streams_in_that_batch() -> None:
    decoder = Recorder()
    worker = CodecWorker(decoder, max_batch=1)
    hit, spared = Sink(), Sink()
    hit_stream, spared_stream = PcmStream(hit, worker, PLAN), PcmStream(spared, worker, PLAN)
    _feed(hit_stream, 4 + 16)
    _feed(spared_stream, 4)
    hit_stream.close(None)
    spared_stream.close(None)
    decoder.fail_next = True
    while worker.run_pending():
        pass
    assert hit.pcm == [] and len(hit.closed) == 1
    failure = hit.closed[0]
    assert failure is not None and failure.code == "INTERNAL" and "boom" in failure.message
    assert [p.numel() // FRAME_SAMPLES for p in spared.pcm] == [4] and spared.closed == [None]
    assert decoder.calls == [[4], [4]]  # the failed stream's later window was never decoded


def test_stopping_the_worker_answers_what_is_still_queued() -> None:
    worker = CodecWorker(Recorder(), max_batch=4)
    worker.start()
    worker.stop()
    sink = Sink()
    _feed(PcmStream(sink, worker, PLAN), 4)  # queued after the thread ended: never rendered, still answered
    worker.stop()
    assert sink.pcm == [] and sink.closed == [Failure("INTERNAL", "text2semantic is shutting down")]


def test_windows_are_the_codec_decoder_windows() -> None:
    codes = torch.arange(10 * 30, dtype=torch.int32).reshape(10, 30) % 1000
    seen: list[DecodeWindow] = []

    class Keep(Recorder):
        def decode_windows(self, windows: Sequence[DecodeWindow]) -> list[torch.Tensor]:
            seen.extend(windows)
            return super().decode_windows(windows)

    worker = CodecWorker(Keep(), max_batch=8)
    stream = PcmStream(Sink(), worker, PLAN)
    stream.send_codes(codes[:, :7])
    stream.send_codes(codes[:, 7:])
    stream.close(None)
    worker.run_pending()
    expected = [make_window(codes, 0, 4, PLAN), make_window(codes, 4, 20, PLAN), make_window(codes, 20, 30, PLAN)]
    assert [(w.context_frames, w.num_frames) for w in seen] == [(w.context_frames, w.num_frames) for w in expected]
    assert all(torch.equal(a.codes, b.codes) for a, b in zip(seen, expected, strict=True))


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        CodecWorker(Recorder(), max_batch=0)
