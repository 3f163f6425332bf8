"""tritonservers for the model tests, each serving only the models its tests need (tiny checkpoint, CPU).

- `codec_triton_url`: the codec models alone, for the codec model tests.
- `speech_triton`: text2semantic, codec_decoder and tts, with text2semantic sized small (3 slots, short
  streaming chunks) so that tests can fill every slot and see requests wait, join and leave.

Kept local (rather than the suite's `triton` fixture, which serves every model with default knobs); the lead may
switch them to the shared fixture once all models are in.
"""

from __future__ import annotations

import importlib.util
import queue
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from voicereel.modelrepo import build_repository
from voicereel.stack import Supervisor, TritonPorts, triton_service


def _load_helper_module(name: str) -> ModuleType:
    """Register a sibling helper module under its own name, so test modules can `from <name> import ...`.

    With --import-mode=importlib pytest puts no test folder on sys.path.
    """
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


SpeechServer = _load_helper_module("speech_client").SpeechServer

CODEC_MODELS = ["codec_encoder", "codec_decoder"]
SPEECH_MODELS = ["text2semantic", "codec_decoder", "tts"]
SPEECH_KNOBS = {
    "text2semantic": {"max_slots": 3, "slot_capacity": 1024, "kv_block": 64, "stream_frames": 4},
    "shared": {"trace_requests": True},  # first-chunk trace lines in the log (test_tts)
}


@pytest.fixture(scope="session")
def codec_triton_url(supervisor: Supervisor, run_dir: Path, tiny_checkpoint: Path) -> str:
    repository = build_repository(run_dir / "codec_repository", tiny_checkpoint, None, models=CODEC_MODELS)
    ports = TritonPorts.free()
    supervisor.start(triton_service(repository, ports, run_dir / "codec_triton", run_dir / "logs"))
    return f"127.0.0.1:{ports.grpc}"


@pytest.fixture(scope="session")
def speech_triton(supervisor: Supervisor, run_dir: Path, tiny_checkpoint: Path) -> Any:
    repository = build_repository(run_dir / "speech_repository", tiny_checkpoint, SPEECH_KNOBS, models=SPEECH_MODELS)
    ports = TritonPorts.free()
    supervisor.start(triton_service(repository, ports, run_dir / "speech_triton", run_dir / "logs"))
    return SpeechServer(f"127.0.0.1:{ports.grpc}", repository)


@pytest.fixture
def client(codec_triton_url: str) -> Iterator[grpcclient.InferenceServerClient]:
    with grpcclient.InferenceServerClient(codec_triton_url) as client:
        yield client


class Rpc:
    """tritonclient helpers for the codec model tests (a fixture: with --import-mode=importlib test modules
    cannot import a sibling helper module)."""

    @staticmethod
    def tensor(name: str, array: np.ndarray) -> grpcclient.InferInput:
        dtype = {np.dtype(np.float32): "FP32", np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64"}[array.dtype]
        item = grpcclient.InferInput(name, list(array.shape), dtype)
        item.set_data_from_numpy(array)
        return item

    @staticmethod
    def window_inputs(codes: np.ndarray, context: int, frames: int) -> list[grpcclient.InferInput]:
        """codec_decoder inputs for one window `codes [10, W]` (the batch dimension is added here)."""
        return [
            Rpc.tensor("codes", codes[None]),
            Rpc.tensor("context_frames", np.array([[context]], dtype=np.int32)),
            Rpc.tensor("num_frames", np.array([[frames]], dtype=np.int32)),
        ]

    @staticmethod
    def batch_sizes(client: grpcclient.InferenceServerClient, model: str) -> dict[int, int]:
        """Executions per batch size so far, from Triton's own model statistics."""
        stats: Any = client.get_inference_statistics(model, as_json=True)
        entries = stats["model_stats"][0].get("batch_stats", [])
        return {int(e["batch_size"]): int(e["compute_infer"]["count"]) for e in entries}

    @staticmethod
    def infer_concurrently(
        client: grpcclient.InferenceServerClient, model: str, requests: list[list[grpcclient.InferInput]], output: str
    ) -> list[np.ndarray]:
        """Send all requests at once (async) and wait for every answer; raises the first error."""
        done: queue.Queue[tuple[int, Any, Any]] = queue.Queue()
        for index, inputs in enumerate(requests):

            def callback(result: Any, error: Any, index: int = index) -> None:
                done.put((index, result, error))

            client.async_infer(model, inputs, callback)
        answers: dict[int, np.ndarray] = {}
        for _ in requests:
            index, result, error = done.get(timeout=120)
            if error is not None:
                raise error
            answers[index] = result.as_numpy(output)
        return [answers[i] for i in range(len(requests))]


@pytest.fixture
def rpc() -> type[Rpc]:
    return Rpc
