"""codec_decoder served by a real tritonserver (tiny checkpoint, CPU): windows, batching, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from voicereel.engine.codec import FRAME_SAMPLES, ChunkPlan, Codec, plan_windows, validate_codes

MODEL = "codec_decoder"
PLAN = ChunkPlan()  # the shipped defaults: 64 frames rendered + 64 frames of context = windows of 128 frames


def random_codes(frames: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return validate_codes(
        torch.cat(
            [torch.randint(0, 4096, (1, frames), generator=gen), torch.randint(0, 1024, (9, frames), generator=gen)]
        )
    )


def decode(
    rpc: Any, client: grpcclient.InferenceServerClient, codes: np.ndarray, context: int, frames: int
) -> np.ndarray:
    pcm = client.infer(MODEL, rpc.window_inputs(codes, context, frames)).as_numpy("pcm")
    assert pcm is not None
    return pcm


def test_windows_decode_to_the_chunked_decoding_of_the_engine(
    rpc: Any, client: grpcclient.InferenceServerClient, tiny_checkpoint: Path
) -> None:
    codes = random_codes(150, seed=1)
    windows = plan_windows(codes, PLAN)
    pieces = [decode(rpc, client, w.codes.numpy(), w.context_frames, w.num_frames) for w in windows]
    assert [p.shape for p in pieces] == [(1, 64 * FRAME_SAMPLES), (1, 64 * FRAME_SAMPLES), (1, 22 * FRAME_SAMPLES)]
    assert all(p.dtype == np.float32 for p in pieces)
    torch.set_num_threads(1)
    local = Codec.from_checkpoint(tiny_checkpoint).decode_chunked(codes, PLAN).numpy()
    assert np.abs(np.concatenate([p[0] for p in pieces]) - local).max() < 1e-5


def test_concurrent_windows_batch(rpc: Any, client: grpcclient.InferenceServerClient) -> None:
    """Windows from many streams, all of the fixed shape: Triton's statistics show executions of batch > 1."""
    before = rpc.batch_sizes(client, MODEL)
    windows = [plan_windows(random_codes(64, seed=s), PLAN)[0] for s in range(8)]
    requests = [rpc.window_inputs(w.codes.numpy(), w.context_frames, w.num_frames) for w in windows]
    results = rpc.infer_concurrently(client, MODEL, requests, "pcm")
    alone = decode(rpc, client, windows[3].codes.numpy(), 0, 64)
    assert np.abs(results[3] - alone).max() < 1e-5  # batched output equals the window decoded alone
    after = rpc.batch_sizes(client, MODEL)
    batched = {size: count - before.get(size, 0) for size, count in after.items() if size > 1}
    assert any(count > 0 for count in batched.values()), f"no execution with batch size > 1: {after}"


@pytest.mark.parametrize(
    ("shape", "context", "frames", "fill", "message"),
    [
        ((10, 100), 0, 10, 0, "codes must have shape [1, 10, 128]"),
        ((10, 128), 0, 10, 4096, "semantic codebook 0 must be in 0..4095"),
        ((10, 128), 0, 10, -3, "must be in 0..4095, got values in -3..-3"),
        ((10, 128), 65, 70, 0, "context_frames must be in 0..64"),
        ((10, 128), 10, 10, 0, "num_frames must be in 11..74"),
    ],
)
def test_bad_input_is_invalid_input_and_the_model_keeps_serving(
    rpc: Any,
    client: grpcclient.InferenceServerClient,
    shape: tuple[int, int],
    context: int,
    frames: int,
    fill: int,
    message: str,
) -> None:
    codes = np.full(shape, fill, dtype=np.int32)
    with pytest.raises(InferenceServerException) as caught:
        client.infer(MODEL, rpc.window_inputs(codes, context, frames))
    assert caught.value.message().startswith("INVALID_INPUT: "), caught.value.message()
    assert message in caught.value.message()
    assert decode(rpc, client, np.zeros((10, 128), np.int32), 0, 3).shape == (1, 3 * FRAME_SAMPLES)


def test_wrong_dtype_is_rejected_by_triton_before_the_model(rpc: Any, client: grpcclient.InferenceServerClient) -> None:
    inputs = rpc.window_inputs(np.zeros((10, 128), np.int32), 0, 3)
    inputs[0] = rpc.tensor("codes", np.zeros((1, 10, 128), np.float32))
    with pytest.raises(InferenceServerException) as caught:
        client.infer(MODEL, inputs)
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "data-type is 'FP32'" in caught.value.message()
    assert decode(rpc, client, np.zeros((10, 128), np.int32), 0, 3).shape == (1, 3 * FRAME_SAMPLES)
