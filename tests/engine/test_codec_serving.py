"""Request handling of the codec models without Triton: per-request validation, batching, error codes."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from voicereel.engine.codec import FRAME_SAMPLES, ChunkPlan, Codec, plan_windows, validate_codes
from voicereel.engine.codec_serving import Failure, decode_requests, encode_requests, parse_window

PLAN = ChunkPlan(chunk_frames=16, context_frames=8)


def pcm(seconds: float, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(np.clip(rng.normal(0, 0.1, (1, int(seconds * 44_100))), -1, 1).astype(np.float32))


def window_request(codes: torch.Tensor, context: int, frames: int) -> dict[str, torch.Tensor | None]:
    return {
        "codes": codes[None],
        "context_frames": torch.tensor([[context]], dtype=torch.int32),
        "num_frames": torch.tensor([[frames]], dtype=torch.int32),
    }


def test_encoder_batch_with_a_bad_request_in_the_middle(codec: Codec) -> None:
    requests = [{"pcm": pcm(0.5, 1)}, {"pcm": torch.full((1, 100), float("nan"))}, {"pcm": pcm(0.2, 2)}]
    results = encode_requests(codec, requests, max_input_seconds=10)
    assert isinstance(results[1], Failure) and str(results[1]).startswith("INVALID_INPUT: ")
    assert "NaN" in results[1].message
    first, third = results[0], results[2]
    assert isinstance(first, torch.Tensor) and isinstance(third, torch.Tensor)
    assert first.shape == (1, 10, 11) and third.shape == (1, 10, 5)
    assert first.dtype == torch.int32
    assert torch.equal(first[0], codec.encode(pcm(0.5, 1)[0]))


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({}, "input 'pcm' is missing"),
        ({"pcm": torch.zeros(2, 100)}, "batch dimension 1"),
        ({"pcm": torch.zeros(1, 0)}, "empty"),
        ({"pcm": torch.zeros(1, 44_100 * 3)}, "limit is 2.0 s"),
    ],
)
def test_encoder_rejects(codec: Codec, request_: dict[str, torch.Tensor | None], message: str) -> None:
    [result] = encode_requests(codec, [request_], max_input_seconds=2.0)
    assert isinstance(result, Failure) and result.code == "INVALID_INPUT"
    assert message in result.message


def test_decoder_batch_matches_chunked_decoding(codec: Codec) -> None:
    codes = validate_codes(torch.randint(0, 1024, (10, 40), generator=torch.Generator().manual_seed(0)))
    windows = plan_windows(codes, PLAN)
    requests = [window_request(w.codes, w.context_frames, w.num_frames) for w in windows]
    results = decode_requests(codec, requests, PLAN)
    pieces = [r[0] for r in results if isinstance(r, torch.Tensor)]
    assert len(pieces) == 3 and [p.numel() for p in pieces] == [
        16 * FRAME_SAMPLES,
        16 * FRAME_SAMPLES,
        8 * FRAME_SAMPLES,
    ]
    assert torch.equal(torch.cat(pieces), codec.decode_chunked(codes, PLAN, batch_size=3).cpu())


def test_decoder_ignores_whatever_is_in_the_padding(codec: Codec) -> None:
    window = torch.zeros(10, 24, dtype=torch.int32)
    window[:, :5] = 3
    garbage = window.clone()
    garbage[:, 5:] = 99_999  # out of range, but past num_frames
    assert torch.equal(parse_window(window_request(garbage, 0, 5), PLAN).codes, window)


@pytest.mark.parametrize(
    ("codes_shape", "context", "frames", "message"),
    [
        ((10, 23), 0, 5, r"shape \[1, 10, 24\]"),
        ((9, 24), 0, 5, r"shape \[1, 10, 24\]"),
        ((10, 24), 9, 12, "context_frames must be in 0..8"),
        ((10, 24), -1, 5, "context_frames must be in 0..8"),
        ((10, 24), 4, 4, "num_frames must be in 5..20"),
        ((10, 24), 2, 19, "num_frames must be in 3..18"),
        ((10, 24), 0, 25, "num_frames must be in 1..16"),
    ],
)
def test_decoder_rejects_bad_windows(
    codec: Codec, codes_shape: tuple[int, int], context: int, frames: int, message: str
) -> None:
    request = window_request(torch.zeros(codes_shape, dtype=torch.int32), context, frames)
    [result] = decode_requests(codec, [request], PLAN)
    assert isinstance(result, Failure) and result.code == "INVALID_INPUT"
    assert re.search(message, result.message), result.message


def test_decoder_rejects_out_of_range_codes_and_missing_inputs(codec: Codec) -> None:
    bad = torch.zeros(10, 24, dtype=torch.int32)
    bad[3, 2] = 1024
    [result] = decode_requests(codec, [window_request(bad, 0, 5)], PLAN)
    assert isinstance(result, Failure) and "residual codebooks 1..9 must be in 0..1023" in result.message
    [missing] = decode_requests(codec, [{"codes": bad[None], "context_frames": None, "num_frames": None}], PLAN)
    assert isinstance(missing, Failure) and "'context_frames' is missing" in missing.message


def test_an_engine_failure_is_internal_and_per_batch(codec: Codec) -> None:
    class Broken(Codec):
        def decode_windows(self, windows):  # type: ignore[no-untyped-def]
            raise RuntimeError("device lost")

    broken = Broken(codec.dac)
    ok = window_request(torch.zeros(10, 24, dtype=torch.int32), 0, 5)
    bad = window_request(torch.zeros(10, 3, dtype=torch.int32), 0, 5)
    results = decode_requests(broken, [ok, bad], PLAN)
    assert str(results[0]) == "INTERNAL: RuntimeError: device lost"
    assert isinstance(results[1], Failure) and results[1].code == "INVALID_INPUT"
