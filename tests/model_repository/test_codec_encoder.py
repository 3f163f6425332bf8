"""codec_encoder served by a real tritonserver (tiny checkpoint, CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from voicereel.engine.codec import Codec

MODEL = "codec_encoder"


def noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, 0.1, (1, int(seconds * 44_100))), -1, 1).astype(np.float32)


def encode(rpc: Any, client: grpcclient.InferenceServerClient, pcm: np.ndarray) -> np.ndarray:
    codes = client.infer(MODEL, [rpc.tensor("pcm", pcm)]).as_numpy("codes")
    assert codes is not None
    return codes


def test_round_trip_shape_and_same_codes_as_in_process(
    rpc: Any, client: grpcclient.InferenceServerClient, tiny_checkpoint: Path
) -> None:
    pcm = noise(2.0, seed=1)
    codes = encode(rpc, client, pcm)
    assert codes.dtype == np.int32 and codes.shape == (1, 10, 44)  # ceil(88200 / 2048)
    assert codes[0, 0].max() < 4096 and codes[0, 1:].max() < 1024 and codes.min() >= 0
    torch.set_num_threads(1)
    local = Codec.from_checkpoint(tiny_checkpoint).encode(pcm[0])
    assert np.array_equal(codes[0], local.numpy())


def test_concurrent_clips_of_different_lengths_batch(rpc: Any, client: grpcclient.InferenceServerClient) -> None:
    """Ragged batching: clips of different lengths share one execution, each gets its own codes."""
    before = rpc.batch_sizes(client, MODEL)
    clips = [noise(0.3 + 0.1 * i, seed=10 + i) for i in range(8)]
    results = rpc.infer_concurrently(client, MODEL, [[rpc.tensor("pcm", clip)] for clip in clips], "codes")
    for i, clip in enumerate(clips):
        assert results[i].shape == (1, 10, -(-clip.shape[1] // 2048))
        assert np.array_equal(results[i], encode(rpc, client, clip))
    after = rpc.batch_sizes(client, MODEL)
    batched = {size: count - before.get(size, 0) for size, count in after.items() if size > 1}
    assert any(count > 0 for count in batched.values()), f"no execution with batch size > 1: {after}"


@pytest.mark.parametrize(
    ("pcm", "message"),
    [
        (np.zeros((1, 0), np.float32), "pcm is empty"),
        (np.array([[0.0, np.nan]], np.float32), "NaN"),
        (np.array([[0.0, 2.0]], np.float32), "[-1, 1]"),
        (np.zeros((2, 100), np.float32), "batch dimension 1"),
    ],
)
def test_bad_input_is_invalid_input_and_the_model_keeps_serving(
    rpc: Any, client: grpcclient.InferenceServerClient, pcm: np.ndarray, message: str
) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer(MODEL, [rpc.tensor("pcm", pcm)])
    assert caught.value.message().startswith("INVALID_INPUT: "), caught.value.message()
    assert message in caught.value.message()
    assert encode(rpc, client, noise(0.1, seed=0)).shape == (1, 10, 3)


def test_wrong_dtype_is_rejected_by_triton_before_the_model(rpc: Any, client: grpcclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException) as caught:
        client.infer(MODEL, [rpc.tensor("pcm", np.zeros((1, 10), np.int32))])
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "data-type is 'INT32'" in caught.value.message()
    assert encode(rpc, client, noise(0.1, seed=0)).shape == (1, 10, 3)
