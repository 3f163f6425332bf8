"""Shared knob pcm_decoding = text2semantic, served by a real tritonserver (tiny checkpoint, CPU): text2semantic
decodes the audio in its own process and tts is an ensemble forwarding its pcm stream, with no codec_decoder model.

The PCM must be what the default path gives: the codes text2semantic streams for the same inputs, decoded in the
same fixed windows. A server with the default setting refuses a request for text2semantic's pcm.
"""

from __future__ import annotations

import contextlib
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
from voicereel.modelrepo import build_repository
from voicereel.stack import Supervisor, TritonPorts, triton_service

PLAN = ChunkPlan(first_chunk_frames=8)  # the shipped window knobs
SPEC: dict[str, Any] = {"text": "Decoded beside the language model.", "seed": 5, "max_new_frames": 150}


@pytest.fixture(scope="module")
def colocated_url(supervisor: Supervisor, run_dir: Path, tiny_checkpoint: Path) -> str:
    knobs = {
        "text2semantic": {"max_slots": 3, "slot_capacity": 1024, "kv_block": 64, "stream_frames": 4},
        "shared": {"pcm_decoding": "text2semantic"},
    }
    repository = build_repository(
        run_dir / "colocated_repository", tiny_checkpoint, knobs, models=["text2semantic", "tts"]
    )
    ports = TritonPorts.free()
    supervisor.start(triton_service(repository, ports, run_dir / "colocated_triton", run_dir / "logs"))
    return f"127.0.0.1:{ports.grpc}"


def test_tts_streams_text2semantic_pcm_equal_to_decoding_its_codes(colocated_url: str, tiny_checkpoint: Path) -> None:
    streamed = run(colocated_url, "tts", speech_inputs(**SPEC))
    assert streamed.error is None, streamed.message
    assert [chunk.shape for chunk in streamed.chunks] == CHUNKS_OF_150_FRAMES
    codes = run(colocated_url, "text2semantic", speech_inputs(**SPEC)).joined(axis=1)  # no output named: codes
    assert codes.shape == (10, 150)
    torch.set_num_threads(1)
    whole = Codec.from_checkpoint(tiny_checkpoint).decode_chunked(torch.from_numpy(codes), PLAN).numpy()
    np.testing.assert_allclose(streamed.joined(axis=0), whole, atol=1e-5, rtol=0)

    direct = Call(colocated_url, "text2semantic", "pcm", ask_output=True).start(speech_inputs(**SPEC)).wait()
    assert direct.error is None, direct.message
    np.testing.assert_array_equal(direct.joined(axis=0), streamed.joined(axis=0))


def test_errors_and_short_requests_keep_their_form(colocated_url: str) -> None:
    from tritonclient.utils import InferenceServerException

    from voicereel.errors import ErrorCode
    from voicereel.triton_client import classify

    bad = run(colocated_url, "tts", speech_inputs("x", top_p=1.5))
    # Triton prefixes the ensemble's name; the worker's client still reads it as the customer's mistake
    assert "INVALID_INPUT: " in bad.message and "top_p" in bad.message, bad.message
    engine_error = classify(InferenceServerException(bad.message))
    assert engine_error is not None and engine_error.permanent and engine_error.code == ErrorCode.INVALID_INPUT
    short = run(colocated_url, "tts", speech_inputs("ok", seed=2, max_new_frames=3))
    assert short.error is None and [c.shape for c in short.chunks] == [(3 * FRAME_SAMPLES,)]


def test_default_server_refuses_text2semantic_pcm(speech_triton: SpeechServer) -> None:
    call = Call(speech_triton.url, "text2semantic", "pcm", ask_output=True).start(speech_inputs("x")).wait()
    assert call.message.startswith("INVALID_INPUT: ") and "pcm_decoding=text2semantic" in call.message, call.message


def test_knobs_reach_text2semantic_and_tts_becomes_its_ensemble(tmp_path: Path, tiny_checkpoint: Path) -> None:
    import re

    from voicereel.engine.t2s_serving import ServingConfig

    knobs = {
        "text2semantic": {"codec_max_batch": 7},
        "shared": {"pcm_decoding": "text2semantic", "codec_first_chunk_frames": 4, "codec_chunk_frames": 32},
    }
    repository = build_repository(tmp_path / "repo", tiny_checkpoint, knobs, models=["text2semantic", "tts"])
    entry = re.compile(r'\{ key: "(\w+)", value: \{ string_value: "([^"]*)" \} \}')
    t2s = dict(entry.findall((repository / "text2semantic" / "config.pbtxt").read_text()))
    config = ServingConfig.from_parameters(t2s, on_gpu=False)
    assert config.render_pcm and config.codec_max_batch == 7
    assert config.codec_plan == ChunkPlan(chunk_frames=32, context_frames=64, first_chunk_frames=4)
    tts = (repository / "tts" / "config.pbtxt").read_text()
    names = re.compile(r'name: "(\w+)"')
    inputs = names.findall(tts[tts.index("input [") : tts.index("output [")])
    t2s_text = (repository / "text2semantic" / "config.pbtxt").read_text()
    assert 'platform: "ensemble"' in tts and list((repository / "tts" / "1").iterdir()) == []
    assert inputs == names.findall(t2s_text[t2s_text.index("input [") : t2s_text.index("output [")])
    assert names.findall(tts[tts.index("output [") : tts.index("ensemble_scheduling")]) == ["pcm"]
    default = build_repository(tmp_path / "default", tiny_checkpoint, None, models=["text2semantic"])
    t2s = dict(entry.findall((default / "text2semantic" / "config.pbtxt").read_text()))
    assert not ServingConfig.from_parameters(t2s, on_gpu=False).render_pcm


def test_a_cancel_naming_the_tts_request_frees_its_text2semantic_slot(colocated_url: str) -> None:
    """Three slots: tts holds one, two long text2semantic requests the others; a short request waits until a cancel
    request to text2semantic names the tts request's id (an ensemble's step keeps the caller's request id).

    This is the route to cancel with pcm_decoding = text2semantic: Triton 2.51's ensemble does not pass a client's
    stream cancellation on to text2semantic (measured: the slot stayed taken until the request ended)."""
    request_id = "cancel-me-" + "0123456789abcdef" * 2
    speech = Call(colocated_url, "tts", "pcm", request_id=request_id)
    speech.start(speech_inputs("spoken " * 20, seed=1, max_new_frames=900)).wait_first_chunk()
    long_requests = hold_slots(colocated_url)
    waiting = Call(colocated_url, "text2semantic", "codes").start(speech_inputs("short", seed=4, max_new_frames=8))
    assert waiting.pump(1.0) is False  # every slot is taken
    cancel = run(colocated_url, "text2semantic", [], parameters={"cancel_request_id": request_id})
    assert cancel.error is None, cancel.message
    assert_the_cancel_freed_the_slot(waiting, long_requests, "the cancelled tts request")
    assert speech.pump(60) and speech.error is None  # the tts stream ends (cut short), not hangs
    speech.close()


def test_the_workers_client_frees_the_slot_of_a_line_it_abandons(colocated_url: str) -> None:
    """The worker's TtsClient, its line task cancelled (the job was cancelled) while the line generates: the line's
    text2semantic slot frees at once, because the client also sends text2semantic a cancel request naming it."""
    import asyncio

    from voicereel.settings import Settings
    from voicereel.triton_client import LineRequest, TtsClient

    long_requests = hold_slots(colocated_url)
    line = LineRequest(request_id="job-1:0:0", text="spoken " * 20, seed=1, max_new_frames=900)
    waiting = Call(colocated_url, "text2semantic", "codes")

    async def scenario() -> bool:
        async with TtsClient(Settings(_env_file=None, triton_grpc_url=colocated_url)) as client:
            task = asyncio.create_task(client.synthesize(line))
            await asyncio.sleep(2.0)  # admitted and generating: it holds the third slot
            waiting.start(speech_inputs("short", seed=4, max_new_frames=8))
            blocked = not await asyncio.to_thread(waiting.pump, 1.0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return blocked

    assert asyncio.run(scenario()), "the waiting request ran while the line should have held the last slot"
    assert_the_cancel_freed_the_slot(waiting, long_requests, "the abandoned line")
