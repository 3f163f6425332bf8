"""The one place the worker talks to Triton: `codec_encoder` (speaker registration) and the decoupled streaming
`tts` model (one request per script line, many in flight so that lines batch on the server).

Errors follow the model repository's contract: a message carrying `INVALID_INPUT:` is permanent (never retried,
the job fails with INVALID_INPUT); everything else — UNAVAILABLE, deadline exceeded, connection refused, an
unloaded model — is transient and retried with capped exponential backoff and full jitter (tenacity) until
`triton_retry_deadline_s`, after which the job fails with ENGINE_UNAVAILABLE. Every call has a deadline
(`triton_timeout_s`); a streamed line that broke off is requested again from the start (its seed makes it the
same line), never stitched from pieces. A line abandoned before its final response (an error, the job cancelled)
also sends text2semantic a cancel request naming it: with shared knob pcm_decoding = text2semantic, tts is an
ensemble, and Triton 2.51 does not pass a client's cancellation through it (model_repository/README.md).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import numpy as np
import tenacity
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

from voicereel.engine.control import CANCEL_PARAMETER, TEXT2SEMANTIC
from voicereel.errors import ErrorCode, VoiceReelError
from voicereel.settings import Settings

log = logging.getLogger(__name__)

CODEC_ENCODER = "codec_encoder"
TTS = "tts"
CANCEL_TIMEOUT_S = 10.0  # a cancel request that gets no answer by then is given up (logged)
NUM_CODEBOOKS = 10
_INVALID_INPUT = re.compile(r"INVALID_INPUT:\s*(.*)", re.DOTALL)
T = TypeVar("T")


class EngineError(VoiceReelError):
    """A Triton failure, classified. `transient` ones are worth retrying; the code is what the job fails with."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        code = ErrorCode.INVALID_INPUT if permanent else ErrorCode.ENGINE_UNAVAILABLE
        super().__init__(code, message)
        self.permanent = permanent

    @property
    def transient(self) -> bool:
        return not self.permanent


def classify(exc: BaseException) -> EngineError | None:
    """Map a client-side exception to an EngineError; None for what is not a Triton failure (our own bugs)."""
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, InferenceServerException):
        message = str(exc.message() or exc)
        status = exc.status()
    elif isinstance(exc, grpc.RpcError):
        details = exc.details() if hasattr(exc, "details") else None
        code = exc.code() if hasattr(exc, "code") else None
        message, status = str(details or exc), str(code)
    elif isinstance(exc, TimeoutError | ConnectionError | OSError):
        return EngineError(f"Triton unreachable: {exc.__class__.__name__}: {exc}", permanent=False)
    else:
        return None
    invalid = _INVALID_INPUT.search(message)
    if invalid:
        return EngineError(invalid.group(1).strip() or message, permanent=True)
    prefix = f"{status}: " if status and status not in message else ""
    return EngineError(f"Triton error (transient): {prefix}{message}", permanent=False)


def _retry_policy(settings: Settings) -> dict[str, Any]:
    return {
        "retry": tenacity.retry_if_exception(lambda e: isinstance(e, EngineError) and e.transient),
        "wait": tenacity.wait_random_exponential(multiplier=0.5, max=settings.triton_retry_max_wait_s),
        "stop": tenacity.stop_after_delay(settings.triton_retry_deadline_s),
        "reraise": True,
        "before_sleep": lambda state: log.warning(
            "Triton call failed (attempt %d), retrying: %s",
            state.attempt_number,
            state.outcome.exception() if state.outcome else "?",
        ),
    }


def call_with_retry(settings: Settings, fn: Callable[[], T]) -> T:
    """Run `fn`, classifying its Triton errors and retrying the transient ones (sync callers)."""

    def attempt() -> T:
        try:
            return fn()
        except Exception as exc:
            error = classify(exc)
            if error is None:
                raise
            raise error from exc

    return tenacity.Retrying(**_retry_policy(settings))(attempt)


async def call_with_retry_async(settings: Settings, fn: Callable[[], Any]) -> Any:
    """Async twin of `call_with_retry`; `fn` returns an awaitable."""

    async def attempt() -> Any:
        try:
            return await fn()
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:
            error = classify(exc)
            if error is None:
                raise
            raise error from exc

    return await tenacity.AsyncRetrying(**_retry_policy(settings))(attempt)


def _tensor(name: str, array: np.ndarray, datatype: str, module: Any = grpcclient) -> Any:
    item = module.InferInput(name, list(array.shape), datatype)
    item.set_data_from_numpy(array)
    return item


# --- codec_encoder ------------------------------------------------------------------------------------------


def encode_reference(settings: Settings, pcm: np.ndarray) -> np.ndarray:
    """44.1 kHz mono float PCM in [-1, 1] -> codes `[10, T]` (int32), retried on transient errors."""
    clip = np.ascontiguousarray(pcm, dtype=np.float32)[None, :]

    def once() -> np.ndarray:
        client = grpcclient.InferenceServerClient(settings.triton_grpc_url)
        try:
            result = client.infer(
                CODEC_ENCODER,
                [_tensor("pcm", clip, "FP32")],
                outputs=[grpcclient.InferRequestedOutput("codes")],
                client_timeout=settings.triton_timeout_s,
            )
        finally:
            client.close()
        codes = result.as_numpy("codes")
        if codes is None:
            raise EngineError("codec_encoder returned no codes", permanent=False)
        codes = np.asarray(codes, dtype=np.int32)
        return codes[0] if codes.ndim == 3 else codes

    codes = call_with_retry(settings, once)
    if codes.ndim != 2 or codes.shape[0] != NUM_CODEBOOKS or codes.shape[1] == 0:
        raise EngineError(f"codec_encoder returned codes of shape {codes.shape}", permanent=False)
    return codes


# --- tts ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineRequest:
    """One tts request: the text of (part of) a script line and the voice prompt."""

    request_id: str
    text: str
    reference_text: str | None = None
    reference_codes: np.ndarray | None = None  # int32 [10, T]
    temperature: float | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    max_new_frames: int | None = None

    def inputs(self) -> list[Any]:
        # Texts as UTF-8 bytes (UINT8 `*_utf8` inputs): BYTES inputs are garbled under numpy 2 in Triton 2.51's
        # python backend (model_repository/README.md, text2semantic).
        items = [_tensor("text_utf8", np.frombuffer(self.text.encode(), np.uint8).copy(), "UINT8", aioclient)]
        if self.reference_text is not None and self.reference_codes is not None:
            utf8 = np.frombuffer(self.reference_text.encode(), np.uint8).copy()
            items.append(_tensor("reference_text_utf8", utf8, "UINT8", aioclient))
            items.append(
                _tensor("reference_codes", np.ascontiguousarray(self.reference_codes, np.int32), "INT32", aioclient)
            )
        for name, value, dtype, triton_type in (
            ("temperature", self.temperature, np.float32, "FP32"),
            ("top_p", self.top_p, np.float32, "FP32"),
            ("repetition_penalty", self.repetition_penalty, np.float32, "FP32"),
            ("seed", self.seed, np.int64, "INT64"),
            ("max_new_frames", self.max_new_frames, np.int32, "INT32"),
        ):
            if value is not None:
                items.append(_tensor(name, np.array([value], dtype=dtype), triton_type, aioclient))
        return items


class TtsClient:
    """Streams tts requests over one gRPC channel (one bidirectional stream per request, so a failing line
    never takes its neighbours down), at most `triton_max_in_flight` at once (worker_max_in_flight per GPU)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = aioclient.InferenceServerClient(settings.triton_grpc_url)
        self.slots = asyncio.Semaphore(settings.triton_max_in_flight)

    async def close(self) -> None:
        await self.client.close()

    async def __aenter__(self) -> TtsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _stream_once(self, line: LineRequest, attempt: int) -> np.ndarray:
        finished = asyncio.Event()
        # unique and unguessable (text2semantic's cancel request wants >= 32 characters), readable in logs
        request_id = f"{line.request_id}#{attempt}#{uuid.uuid4().hex}"

        async def requests() -> AsyncIterator[dict[str, Any]]:
            yield {
                "model_name": TTS,
                "inputs": line.inputs(),
                "request_id": request_id,
                "parameters": {"triton_enable_empty_final_response": True},
            }
            await finished.wait()  # keep our half of the stream open until the final response

        chunks: list[np.ndarray] = []
        ended = False
        responses = self.client.stream_infer(requests(), stream_timeout=self.settings.triton_timeout_s)
        try:
            async for result, error in responses:
                if error is not None:
                    raise error
                pcm = result.as_numpy("pcm")
                if pcm is not None and pcm.size:
                    chunks.append(np.asarray(pcm, dtype=np.float32).reshape(-1))
                if result.get_response().parameters["triton_final_response"].bool_param:
                    ended = True
                    break
            else:
                raise EngineError("tts stream ended before its final response", permanent=False)
        finally:
            finished.set()
            responses.cancel()  # no-op after a clean end; cancels the request on Triton otherwise
            if not ended:
                await self._cancel_generation(request_id)
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)

    async def _cancel_generation(self, request_id: str) -> None:
        """Ask text2semantic to end the request ``request_id`` (best effort, bounded by CANCEL_TIMEOUT_S).

        Needed where tts is an ensemble (the request reaches text2semantic under the same id, and the stream's
        cancellation does not); where tts is the BLS model it forwards the cancellation itself and this finds no
        request of that id, a no-op."""

        async def requests() -> AsyncIterator[dict[str, Any]]:
            yield {
                "model_name": TEXT2SEMANTIC,
                "inputs": [],
                "parameters": {CANCEL_PARAMETER: request_id, "triton_enable_empty_final_response": True},
            }

        async def send() -> None:
            async for result, error in self.client.stream_infer(requests(), stream_timeout=CANCEL_TIMEOUT_S):
                if error is not None:
                    raise error
                if result.get_response().parameters["triton_final_response"].bool_param:
                    return

        try:
            await asyncio.shield(asyncio.wait_for(send(), CANCEL_TIMEOUT_S))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the line is already lost; its slot frees when its frames run out
            log.warning("cancelling %s on text2semantic failed: %s", request_id, exc)

    async def synthesize(self, line: LineRequest) -> np.ndarray:
        """The whole PCM of one request (44.1 kHz float32), retried from the start on transient errors."""
        attempts = 0

        async def once() -> np.ndarray:
            nonlocal attempts
            attempts += 1
            async with self.slots:
                return await self._stream_once(line, attempts)

        result: np.ndarray = await call_with_retry_async(self.settings, once)
        return result

    async def synthesize_all(
        self, lines: Sequence[LineRequest], on_done: Callable[[int, np.ndarray], None] | None = None
    ) -> list[np.ndarray]:
        """All requests concurrently (bounded by the semaphore); results in input order. `on_done(i, pcm)` runs
        as each finishes and may raise to abort the rest (cancellation); the first failure cancels the others."""

        async def one(index: int) -> tuple[int, np.ndarray]:
            return index, await self.synthesize(lines[index])

        tasks = [asyncio.create_task(one(i)) for i in range(len(lines))]
        results: list[np.ndarray | None] = [None] * len(lines)
        try:
            for next_done in asyncio.as_completed(tasks):
                index, pcm = await next_done
                results[index] = pcm
                if on_done is not None:
                    on_done(index, pcm)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return [r if r is not None else np.zeros(0, dtype=np.float32) for r in results]


def synthesize_lines(
    settings: Settings,
    lines: Sequence[LineRequest],
    on_done: Callable[[int, np.ndarray], None] | None = None,
) -> list[np.ndarray]:
    """Blocking entry for the job functions: one event loop for the job's requests."""

    async def run() -> list[np.ndarray]:
        async with TtsClient(settings) as client:
            return await client.synthesize_all(lines, on_done)

    return asyncio.run(run())
