"""Request handling of the `codec_encoder` and `codec_decoder` Triton models, free of Triton types.

The models' `1/model.py` turn each request's tensors into torch tensors, call `encode_requests` /
`decode_requests` with the whole batch, and map each result to a response: a tensor, or an error whose text
starts with `INVALID_INPUT:` (bad request, never retry) or `INTERNAL:`. Invalid requests fail alone; the valid
ones of the same batch still run in one codec call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch

from voicereel.engine.codec import (
    FRAME_SAMPLES,
    NUM_CODEBOOKS,
    SAMPLE_RATE,
    ChunkPlan,
    DecodeWindow,
    validate_codes,
    validate_pcm,
)

ParsedT = TypeVar("ParsedT")


class CodecLike(Protocol):
    """What the request handlers need of a codec: `Codec` (torch) or `onnx_codec.OnnxCodec` (ONNX Runtime)."""

    @property
    def max_encode_samples(self) -> int: ...

    def encode_batch(self, clips: Sequence[Any]) -> list[torch.Tensor]: ...

    def decode_windows(self, windows: Sequence[DecodeWindow]) -> list[torch.Tensor]: ...


class InvalidInput(ValueError):
    """The request itself is wrong; its message is shown to the caller after `INVALID_INPUT: `."""


@dataclass(frozen=True)
class Failure:
    """Per-request error: `code` is INVALID_INPUT or INTERNAL."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


Result = torch.Tensor | Failure


def _one_row(tensor: torch.Tensor | None, name: str) -> torch.Tensor:
    """Strip the batch dimension Triton adds (max_batch_size > 0): each request must carry exactly one item."""
    if tensor is None:
        raise InvalidInput(f"input {name!r} is missing")
    if tensor.ndim == 0 or tensor.shape[0] != 1:
        raise InvalidInput(f"input {name!r} must have batch dimension 1, got shape {list(tensor.shape)}")
    return tensor[0]


def _serve(
    requests: Sequence[Mapping[str, torch.Tensor | None]],
    parse: Callable[[Mapping[str, torch.Tensor | None]], ParsedT],
    run: Callable[[list[ParsedT]], list[torch.Tensor]],
) -> list[Result]:
    results: list[Result] = [Failure("INTERNAL", "not run")] * len(requests)
    valid: list[tuple[int, ParsedT]] = []
    for index, request in enumerate(requests):
        try:
            valid.append((index, parse(request)))
        except ValueError as exc:  # InvalidInput and the codec's own validation errors
            results[index] = Failure("INVALID_INPUT", str(exc))
    if not valid:
        return results
    try:
        outputs: list[Result] = list(run([parsed for _, parsed in valid]))
    except Exception as exc:
        outputs = [Failure("INTERNAL", f"{type(exc).__name__}: {exc}")] * len(valid)
    for (index, _), output in zip(valid, outputs, strict=True):
        results[index] = output
    return results


def encode_requests(
    codec: CodecLike, requests: Sequence[Mapping[str, torch.Tensor | None]], max_input_seconds: float
) -> list[Result]:
    """`pcm` FP32 [1, N] per request -> `codes` INT32 [1, 10, ceil(N / 2048)]; one padded batch for all."""
    limit = min(int(max_input_seconds * SAMPLE_RATE), codec.max_encode_samples)

    def parse(request: Mapping[str, torch.Tensor | None]) -> torch.Tensor:
        pcm = validate_pcm(_one_row(request.get("pcm"), "pcm"))
        if pcm.numel() > limit:
            raise InvalidInput(f"pcm is {pcm.numel() / SAMPLE_RATE:.1f} s; the limit is {limit / SAMPLE_RATE:.1f} s")
        return pcm

    def run(clips: list[torch.Tensor]) -> list[torch.Tensor]:
        return [codes[None].contiguous() for codes in codec.encode_batch(clips)]

    return _serve(requests, parse, run)


def parse_window(request: Mapping[str, torch.Tensor | None], plan: ChunkPlan) -> DecodeWindow:
    """Check one decoder request against the fixed window shape of `plan`."""
    codes = _one_row(request.get("codes"), "codes")
    context = _scalar(request.get("context_frames"), "context_frames")
    frames = _scalar(request.get("num_frames"), "num_frames")
    window = plan.window_frames
    if codes.ndim != 2 or tuple(codes.shape) != (NUM_CODEBOOKS, window):
        raise InvalidInput(
            f"codes must have shape [1, {NUM_CODEBOOKS}, {window}] (context {plan.context_frames} + chunk "
            f"{plan.chunk_frames} frames), got {[1, *codes.shape]}"
        )
    if not 0 <= context <= plan.context_frames:
        raise InvalidInput(f"context_frames must be in 0..{plan.context_frames}, got {context}")
    if not context < frames <= window or frames - context > plan.chunk_frames:
        raise InvalidInput(
            f"num_frames must be in {context + 1}..{context + plan.chunk_frames} "
            f"(context_frames + 1 .. context_frames + chunk), got {frames}"
        )
    valid = validate_codes(codes[:, :frames])  # padding past num_frames is ignored, whatever it holds
    padded = torch.zeros((NUM_CODEBOOKS, window), dtype=torch.int32)
    padded[:, :frames] = valid
    return DecodeWindow(codes=padded, context_frames=context, num_frames=frames)


def _scalar(tensor: torch.Tensor | None, name: str) -> int:
    value = _one_row(tensor, name)
    if value.numel() != 1 or value.is_floating_point():
        raise InvalidInput(f"input {name!r} must be one integer per request, got shape {list(value.shape)}")
    return int(value.reshape(()))


def decode_requests(
    codec: CodecLike, requests: Sequence[Mapping[str, torch.Tensor | None]], plan: ChunkPlan
) -> list[Result]:
    """`codes` [1, 10, W] + `context_frames` [1, 1] + `num_frames` [1, 1] per request -> `pcm` FP32
    [1, (num_frames - context_frames) * 2048]; all valid windows in one decoder call."""

    def run(windows: list[DecodeWindow]) -> list[torch.Tensor]:
        return [pcm.to("cpu")[None].contiguous() for pcm in codec.decode_windows(windows)]

    return _serve(requests, lambda request: parse_window(request, plan), run)


__all__ = ["FRAME_SAMPLES", "Failure", "InvalidInput", "decode_requests", "encode_requests", "parse_window"]
