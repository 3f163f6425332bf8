"""text2semantic served by a real tritonserver (tiny checkpoint, CPU), over gRPC streaming.

Requests batched inside Triton equal the same requests served alone and the in-process engine; bad input is
answered `INVALID_INPUT: …` and the model keeps serving; a cancelled stream frees its slot for waiting requests.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from speech_client import Call, SpeechServer, run, speech_inputs, tensor

from voicereel.engine.codec_serving import Failure
from voicereel.engine.t2s_serving import ServingConfig, Text2SemanticService, load_engine

MODEL = "text2semantic"


def model_parameters(config_path: Path) -> dict[str, str]:
    """The `parameters` of a generated config.pbtxt (one `{ key: ..., value: ... }` entry per line)."""
    pattern = re.compile(r'\{ key: "(\w+)", value: \{ string_value: "([^"]*)" \} \}')
    return dict(pattern.findall(config_path.read_text()))


def reference_codes(frames: int, seed: int) -> np.ndarray:
    generator = np.random.default_rng(seed)
    semantic = generator.integers(0, 4096, (1, frames))
    return np.concatenate([semantic, generator.integers(0, 1024, (9, frames))]).astype(np.int32)


class Collect:
    """The engine's response stream for in-process runs: keeps the codes and how it was closed."""

    def __init__(self) -> None:
        self.codes: list[torch.Tensor] = []
        self.closed: list[Failure | None] = []

    def send_codes(self, codes: torch.Tensor) -> None:
        self.codes.append(codes)

    def close(self, failure: Failure | None) -> None:
        self.closed.append(failure)

    def is_cancelled(self) -> bool:
        return False


@pytest.fixture(scope="module")
def local(speech_triton: SpeechServer) -> Text2SemanticService:
    """The same engine configuration as the server's, in this process (its loop stepped by hand)."""
    torch.set_num_threads(1)
    config = ServingConfig.from_parameters(model_parameters(speech_triton.repository / MODEL / "config.pbtxt"), False)
    return Text2SemanticService(load_engine(config, torch.device("cpu")), config)


def generate_locally(service: Text2SemanticService, spec: dict[str, Any]) -> np.ndarray:
    texts = {"text": spec["text"], "reference_text": spec.get("reference_text")}
    tensors: dict[str, torch.Tensor | None] = {name: None for name in ("reference_codes", "temperature", "top_p")}
    tensors["reference_codes"] = None if "reference_codes" not in spec else torch.from_numpy(spec["reference_codes"])
    for name, dtype in (
        ("temperature", torch.float32),
        ("top_p", torch.float32),
        ("repetition_penalty", torch.float32),
        ("seed", torch.int64),
        ("max_new_frames", torch.int32),
    ):
        tensors[name] = None if name not in spec else torch.tensor([spec[name]], dtype=dtype)
    stream = Collect()
    service.handle("local", texts, tensors, {}, stream)
    while service.engine.step():
        pass
    assert stream.closed == [None]
    return torch.cat(stream.codes, dim=1).numpy()


SPECS: list[dict[str, Any]] = [
    {"text": "Hello there, how are you?", "seed": 1, "max_new_frames": 30, "temperature": 0.0},
    {"text": "안녕하세요. 반갑습니다.", "seed": 2, "max_new_frames": 41, "temperature": 0.9, "top_p": 0.95},
    {
        "text": "こんにちは。",
        "seed": 3,
        "max_new_frames": 25,
        "reference_text": "reference words",
        "reference_codes": reference_codes(30, 0),
    },
    {"text": "A fourth request waits for a free slot.", "seed": 4, "max_new_frames": 33, "repetition_penalty": 1.3},
]


def test_batched_requests_equal_each_alone_and_the_engine(
    speech_triton: SpeechServer, local: Text2SemanticService
) -> None:
    calls = []
    for spec in SPECS:  # 4 requests, 3 slots: they join at different steps and one waits for a slot
        calls.append(Call(speech_triton.url, MODEL, "codes").start(speech_inputs(**spec)))
        time.sleep(0.1)
    together = [call.wait() for call in calls]
    for spec, call in zip(SPECS, together, strict=True):
        assert call.error is None, call.message
        codes = call.joined(axis=1)
        assert codes.shape == (10, spec["max_new_frames"]) and codes.dtype == np.int32
        assert all(chunk.shape[1] <= 4 for chunk in call.chunks)  # stream_frames of this server
        alone = run(speech_triton.url, MODEL, speech_inputs(**spec))
        np.testing.assert_array_equal(codes, alone.joined(axis=1))
        np.testing.assert_array_equal(codes, generate_locally(local, spec))
    assert not np.array_equal(together[0].joined(1)[:, :20], together[3].joined(1)[:, :20])


def test_utf8_text_inputs_equal_bytes_inputs(speech_triton: SpeechServer) -> None:
    spec = SPECS[2]  # with a reference text
    as_bytes = run(speech_triton.url, MODEL, speech_inputs(**spec)).joined(axis=1)
    as_utf8 = run(speech_triton.url, MODEL, speech_inputs(**spec, utf8=True)).joined(axis=1)
    np.testing.assert_array_equal(as_bytes, as_utf8)


def _invalid(**changes: Any) -> dict[str, Any]:
    return {"text": "valid text", "seed": 1, "max_new_frames": 8, **changes}


BAD_INPUTS: list[tuple[list[Any], dict[str, Any] | None, str]] = [
    (speech_inputs(None, max_new_frames=8), None, "'text' is required"),
    (speech_inputs("   "), None, "text is empty"),
    (speech_inputs("a" * 2001), None, "limit is 2000"),
    (speech_inputs(b"\xff\xfe bad utf-8"), None, "not valid UTF-8"),
    (speech_inputs(b"\xff\xfe bad utf-8", utf8=True), None, "'text_utf8' is not valid UTF-8"),
    ([*speech_inputs("one"), *speech_inputs("two", utf8=True)], None, "not both"),
    ([tensor("text", np.array([b"one", b"two"], dtype=np.object_))], None, "one string"),
    (speech_inputs(**_invalid(reference_codes=reference_codes(5, 1)[:9])), None, "shape [10, n>0]"),
    (speech_inputs(**_invalid(reference_codes=np.full((10, 4), 4096, np.int32))), None, "semantic codes"),
    (speech_inputs(**_invalid(reference_codes=np.full((10, 4), 1024, np.int32))), None, "residual codes"),
    (speech_inputs(**_invalid(reference_text="no codes")), None, "reference_text needs reference_codes"),
    (speech_inputs(**_invalid(temperature=5.0)), None, "temperature"),
    (speech_inputs(**_invalid(top_p=0.0)), None, "top_p"),
    (speech_inputs(**_invalid(repetition_penalty=2.5)), None, "repetition_penalty"),
    (speech_inputs(**_invalid(seed=-3)), None, "seed"),
    (speech_inputs(**_invalid(max_new_frames=0)), None, "max_new_frames"),
    ([*speech_inputs("x"), tensor("temperature", np.array([0.5, 0.7], np.float32))], None, "one value"),
    (speech_inputs("x"), {"mystery": 1}, "unknown request parameters ['mystery']"),
    ([], {"cancel_request_id": "short"}, "at least 32 characters"),
    (speech_inputs("a" * 1500), None, "slot capacity"),
]


@pytest.mark.parametrize(("inputs", "parameters", "message"), BAD_INPUTS)
def test_bad_input_is_invalid_input_and_the_model_keeps_serving(
    speech_triton: SpeechServer, inputs: list[Any], parameters: dict[str, Any] | None, message: str
) -> None:
    call = run(speech_triton.url, MODEL, inputs, parameters=parameters)
    assert call.message.startswith("INVALID_INPUT: "), call.message
    assert message in call.message
    assert call.chunks == []
    ok = run(speech_triton.url, MODEL, speech_inputs("still serving", seed=5, max_new_frames=6))
    assert ok.error is None and ok.joined(axis=1).shape == (10, 6)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (tensor("temperature", np.array([0.5], np.float64)), "data-type is 'FP64'"),
        (tensor("reference_codes", np.zeros((10, 4, 1), np.int32)), "unexpected shape"),
    ],
)
def test_wrong_dtype_or_rank_is_refused_by_triton_and_the_model_keeps_serving(
    speech_triton: SpeechServer, bad: Any, message: str
) -> None:
    """Triton checks declared dtypes and ranks before the model runs, so the refusal is Triton's own message
    (any shape of the declared rank reaches the model and gets INVALID_INPUT)."""
    call = run(speech_triton.url, MODEL, [*speech_inputs("x"), bad])
    assert call.error is not None and message in call.message
    assert run(speech_triton.url, MODEL, speech_inputs("after", seed=1, max_new_frames=4)).error is None


def test_cancelled_stream_frees_its_slot(speech_triton: SpeechServer) -> None:
    """3 slots held by long requests; a 4th waits. Cancelling one long request lets the 4th run at once."""
    long_requests = [
        Call(speech_triton.url, MODEL, "codes").start(speech_inputs("long " * 20, seed=i, max_new_frames=900))
        for i in range(3)
    ]
    for call in long_requests:  # all three decoding
        call.wait_first_chunk()
    waiting = Call(speech_triton.url, MODEL, "codes").start(speech_inputs("short one", seed=9, max_new_frames=8))
    assert waiting.pump(1.0) is False  # no free slot
    long_requests[0].cancel()
    assert waiting.pump(60), "the waiting request never got the cancelled request's slot"
    waiting.close()
    assert waiting.error is None and waiting.joined(axis=1).shape == (10, 8)
    for call in long_requests[1:]:
        assert call.finished_at is None and not call.pump(0.1)  # still generating: the slot came from the cancel
        call.cancel()
        call.close()
    long_requests[0].close()
