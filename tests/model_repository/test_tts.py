"""tts (BLS) served by a real tritonserver with text2semantic and codec_decoder (tiny checkpoint, CPU).

The PCM stream concatenated equals decoding, in one go, the codes text2semantic gives for the same inputs;
errors of text2semantic reach the tts client unchanged; a client that cancels its tts stream frees the
text2semantic slot behind it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from speech_client import (
    CHUNKS_OF_150_FRAMES,
    Call,
    SpeechServer,
    assert_the_cancel_freed_the_slot,
    hold_slots,
    run,
    speech_inputs,
)

from voicereel.engine.codec import FRAME_SAMPLES, ChunkPlan, Codec
from voicereel.engine.trace import SEGMENTS, first_chunk_segments, parse_traces

MODEL = "tts"
# The shipped window knobs: 64 frames rendered per window, 64 of context, the first window renders 8.
PLAN = ChunkPlan(first_chunk_frames=8)


def test_stream_equals_decoding_all_codes_at_once(speech_triton: SpeechServer, tiny_checkpoint: Path) -> None:
    spec: dict[str, Any] = {"text": "Streaming speech, window by window.", "seed": 11, "max_new_frames": 150}
    streamed = run(speech_triton.url, MODEL, speech_inputs(**spec))
    assert streamed.error is None, streamed.message
    assert [chunk.shape for chunk in streamed.chunks] == CHUNKS_OF_150_FRAMES
    assert all(chunk.dtype == np.float32 for chunk in streamed.chunks)

    codes = run(speech_triton.url, "text2semantic", speech_inputs(**spec)).joined(axis=1)
    assert codes.shape == (10, 150)
    torch.set_num_threads(1)
    whole = Codec.from_checkpoint(tiny_checkpoint).decode_chunked(torch.from_numpy(codes), PLAN).numpy()
    np.testing.assert_allclose(streamed.joined(axis=0), whole, atol=1e-5, rtol=0)


def test_first_chunk_trace_splits_the_latency(speech_triton: SpeechServer, run_dir: Path) -> None:
    """With the shared knob trace_requests (on in this server) tts and text2semantic each log a trace line for the
    request and codec_decoder one per execution; joined (voicereel.engine.trace), every segment of its first-chunk
    latency is there, none negative, and they add up to the total; the codec execution splits the first codec call."""
    call = Call(speech_triton.url, MODEL, "pcm", request_id="traced-7").start(speech_inputs("Traced words.", seed=7))
    assert call.wait().error is None, call.message
    log = run_dir / "logs" / "triton.log"
    deadline = time.monotonic() + 20
    while True:  # the stubs' log lines reach Triton's log asynchronously
        segments = first_chunk_segments(parse_traces(log.read_text(errors="replace").splitlines())).get("traced")
        if (segments is not None and "codec_run" in segments) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert segments is not None, "no joined trace lines for request traced-7 in Triton's log"
    assert segments["requests"] == 1 and segments["pass_rows"] >= 1
    parts = [name for name, _, _ in SEGMENTS if name != "total"]
    assert all(segments[name] >= 0 for name in parts), segments
    assert sum(segments[name] for name in parts) == pytest.approx(segments["total"], abs=1e-3)
    assert segments["total"] > 0
    codec = [segments[name] for name in ("codec_queue", "codec_run", "codec_return")]
    assert segments["codec_rows"] >= 1 and all(part >= 0 for part in codec), segments
    assert sum(codec) == pytest.approx(segments["first_codec"], abs=1e-3)


@pytest.mark.parametrize(
    ("inputs", "parameters", "message"),
    [
        (speech_inputs("  "), None, "text is empty"),
        (speech_inputs("x", reference_codes=np.full((10, 3), 5000, np.int32)), None, "semantic codes"),
        (speech_inputs("x", top_p=1.5), None, "top_p"),
        (speech_inputs("x"), {"mystery": True}, "unknown request parameters ['mystery']"),
    ],
)
def test_bad_input_is_invalid_input_and_tts_keeps_serving(
    speech_triton: SpeechServer, inputs: list[Any], parameters: dict[str, Any] | None, message: str
) -> None:
    call = run(speech_triton.url, MODEL, inputs, parameters=parameters)
    assert call.message.startswith("INVALID_INPUT: ") and message in call.message, call.message
    assert call.chunks == []
    ok = run(speech_triton.url, MODEL, speech_inputs("ok", seed=2, max_new_frames=3))
    assert ok.error is None and ok.joined(axis=0).shape == (3 * FRAME_SAMPLES,)


def test_cancelled_tts_stream_frees_its_text2semantic_slot(speech_triton: SpeechServer) -> None:
    """tts holds one of text2semantic's 3 slots, two long requests the others; a short request waits.

    Cancelling the tts stream must free its slot (tts forwards the cancel), so the short request runs at once.
    """
    speech = Call(speech_triton.url, MODEL, "pcm").start(speech_inputs("spoken " * 20, seed=1, max_new_frames=900))
    speech.wait_first_chunk()  # 64 frames generated and decoded: its slot is in use
    long_requests = hold_slots(speech_triton.url)
    waiting = Call(speech_triton.url, "text2semantic", "codes").start(speech_inputs("short", seed=4, max_new_frames=8))
    assert waiting.pump(1.0) is False  # every slot is taken
    speech.cancel()
    assert_the_cancel_freed_the_slot(waiting, long_requests, "the cancelled tts stream")
    speech.close()
