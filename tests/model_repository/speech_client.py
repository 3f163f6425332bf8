"""gRPC streaming helpers for the decoupled text2semantic and tts model tests."""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient

DTYPES = {
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(np.int32): "INT32",
    np.dtype(np.int64): "INT64",
    np.dtype(np.object_): "BYTES",
}


@dataclass(frozen=True)
class SpeechServer:
    """A tritonserver serving text2semantic, codec_decoder and tts: its gRPC url and built repository."""

    url: str
    repository: Path


FRAME_SAMPLES = 2048
# PCM chunks of a 150-frame tts stream under the shipped window knobs: the first window renders 8 frames, then 64.
CHUNKS_OF_150_FRAMES = [(8 * FRAME_SAMPLES,), (64 * FRAME_SAMPLES,), (64 * FRAME_SAMPLES,), (14 * FRAME_SAMPLES,)]


def tensor(name: str, array: np.ndarray) -> grpcclient.InferInput:
    item = grpcclient.InferInput(name, list(array.shape), DTYPES[array.dtype])
    item.set_data_from_numpy(array)
    return item


def speech_inputs(
    text: str | bytes | None,
    *,
    seed: int | None = None,
    max_new_frames: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    repetition_penalty: float | None = None,
    reference_text: str | None = None,
    reference_codes: np.ndarray | None = None,
    utf8: bool = False,
) -> list[grpcclient.InferInput]:
    """The inputs of one request; `utf8` sends the texts as UINT8 UTF-8 bytes (`text_utf8`, ...)."""
    inputs = []
    for name, value in (("text", text), ("reference_text", reference_text)):
        if value is None:
            continue
        raw = value if isinstance(value, bytes) else value.encode()
        if utf8:
            inputs.append(tensor(f"{name}_utf8", np.frombuffer(raw, dtype=np.uint8).copy()))
        else:
            inputs.append(tensor(name, np.array([raw], dtype=np.object_)))
    if reference_codes is not None:
        inputs.append(tensor("reference_codes", reference_codes.astype(np.int32)))
    scalars: tuple[tuple[str, float | int | None, type], ...] = (
        ("seed", seed, np.int64),
        ("max_new_frames", max_new_frames, np.int32),
        ("temperature", temperature, np.float32),
        ("top_p", top_p, np.float32),
        ("repetition_penalty", repetition_penalty, np.float32),
    )
    for name, scalar, dtype in scalars:
        if scalar is not None:
            inputs.append(tensor(name, np.array([scalar], dtype=dtype)))
    return inputs


@dataclass
class Call:
    """One streaming request on its own gRPC stream: its responses, error and timing."""

    url: str
    model: str
    output: str
    ask_output: bool = False  # name `output` as the one requested output (else the model's defaults: all of them)
    request_id: str = "test"
    chunks: list[np.ndarray] = field(default_factory=list)
    error: Any = None
    finished_at: float | None = None
    _queue: queue.Queue[tuple[Any, Any]] = field(default_factory=queue.Queue)
    _client: grpcclient.InferenceServerClient | None = None

    def start(self, inputs: list[grpcclient.InferInput], parameters: dict[str, Any] | None = None) -> Call:
        self._client = grpcclient.InferenceServerClient(self.url)
        self._client.start_stream(callback=lambda result, error: self._queue.put((result, error)))
        outputs = [grpcclient.InferRequestedOutput(self.output)] if self.ask_output else None
        self._client.async_stream_infer(
            self.model,
            inputs,
            outputs=outputs,
            enable_empty_final_response=True,
            parameters=parameters,
            request_id=self.request_id,
        )
        return self

    def pump(self, timeout: float) -> bool:
        """Take responses for up to `timeout` seconds; True once the final response (or an error) arrived."""
        deadline = time.monotonic() + timeout
        while self.finished_at is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                result, error = self._queue.get(timeout=left)
            except queue.Empty:
                return False
            if error is not None:
                self.error = error
                self.finished_at = time.monotonic()
                break
            array = result.as_numpy(self.output)
            if array is not None:
                self.chunks.append(array)
            if result.get_response().parameters["triton_final_response"].bool_param:
                self.finished_at = time.monotonic()
        return True

    def wait_first_chunk(self, timeout: float = 60) -> None:
        """Pump until a first output arrived; fails if the request ended or nothing came in time."""
        deadline = time.monotonic() + timeout
        while not self.chunks:
            assert time.monotonic() < deadline, f"{self.model}: no output within {timeout} s"
            assert not self.pump(0.2), f"{self.model} ended without output: {self.message}"

    def wait(self, timeout: float = 120) -> Call:
        assert self.pump(timeout), f"{self.model} did not finish within {timeout} s"
        self.close()
        return self

    def cancel(self) -> None:
        assert self._client is not None
        self._client.stop_stream(cancel_requests=True)

    def close(self) -> None:
        if self._client is not None:
            self._client.stop_stream()
            self._client.close()
            self._client = None

    @property
    def message(self) -> str:
        return "" if self.error is None else str(self.error.message())

    def joined(self, axis: int) -> np.ndarray:
        return np.concatenate(self.chunks, axis=axis)


def run(url: str, model: str, inputs: list[grpcclient.InferInput], **kwargs: Any) -> Call:
    output = "codes" if model == "text2semantic" else "pcm"
    return Call(url, model, output).start(inputs, **kwargs).wait()


def hold_slots(url: str, seeds: tuple[int, ...] = (2, 3)) -> list[Call]:
    """Long text2semantic requests, one per seed, each generating (its first chunk arrived): they hold slots."""
    calls = [
        Call(url, "text2semantic", "codes").start(speech_inputs("long " * 20, seed=seed, max_new_frames=900))
        for seed in seeds
    ]
    for call in calls:
        call.wait_first_chunk()
    return calls


def assert_the_cancel_freed_the_slot(waiting: Call, holders: list[Call], what: str) -> None:
    """``waiting`` (an 8-frame request that found every slot taken) runs now, while ``holders`` still generate: so
    its slot came from the cancel of ``what``, not from a request that ended. Then the holders are cancelled."""
    assert waiting.pump(60), f"the waiting request never got the slot of {what}"
    waiting.close()
    assert waiting.error is None and waiting.joined(axis=1).shape == (10, 8)
    for call in holders:
        assert call.finished_at is None and not call.pump(0.1)  # still running: the slot came from the cancel
        call.cancel()
        call.close()
