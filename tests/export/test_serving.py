"""The repository `python -m export` installs, served by a real tritonserver (tiny checkpoint, CPU).

Its codec models run the exported ONNX files through ONNX Runtime (knob `runtime: onnxruntime`), so this is the
exported artifacts end to end: tts (text2semantic -> codec_decoder over BLS) streams PCM equal to the PyTorch
codec decoding the same codes, within the stated tolerance (max abs 1e-4, SNR >= 60 dB); codec_encoder returns
the codes the PyTorch codec computes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
import tritonclient.grpc as grpcclient

from export.metrics import compare
from export.verify import chirp
from voicereel.engine.codec import ChunkPlan, Codec
from voicereel.stack import REPO_ROOT, Supervisor, TritonPorts, triton_service

PCM_MAX_ABS = 1e-4
PCM_MIN_SNR_DB = 60.0


def _speech_client() -> ModuleType:
    """The streaming helpers of tests/model_repository (registered once under their own name)."""
    if "speech_client" not in sys.modules:
        path = REPO_ROOT / "tests" / "model_repository" / "speech_client.py"
        spec = importlib.util.spec_from_file_location("speech_client", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["speech_client"] = module
        spec.loader.exec_module(module)
    return sys.modules["speech_client"]


@pytest.fixture(scope="module")
def onnx_triton(export_run: Any, supervisor: Supervisor, run_dir: Path) -> str:
    ports = TritonPorts.free()
    supervisor.start(triton_service(export_run.repository, ports, run_dir / "export_triton", run_dir / "logs"))
    return f"127.0.0.1:{ports.grpc}"


def test_installed_codec_models_select_onnxruntime(export_run: Any) -> None:
    for model in ("codec_encoder", "codec_decoder"):
        config = (export_run.repository / model / "config.pbtxt").read_text()
        assert 'key: "runtime"\n    value: { string_value: "onnxruntime" }' in config
        installed = export_run.repository / model / "1" / "model.onnx"
        assert installed.read_bytes() == export_run.onnx(model).read_bytes()


def test_tts_with_the_onnx_codec_equals_the_pytorch_codec(onnx_triton: str, tiny_checkpoint: Path) -> None:
    client = _speech_client()
    spec: dict[str, Any] = {"text": "Exported codec, end to end.", "seed": 5, "max_new_frames": 100}
    streamed = client.run(onnx_triton, "tts", client.speech_inputs(**spec))
    assert streamed.error is None, streamed.message
    codes = client.run(onnx_triton, "text2semantic", client.speech_inputs(**spec))
    assert codes.error is None, codes.message
    all_codes = codes.joined(axis=1)
    assert all_codes.shape == (10, 100)

    torch.set_num_threads(1)
    reference = Codec.from_checkpoint(tiny_checkpoint).decode_chunked(torch.from_numpy(all_codes), ChunkPlan())
    figures = compare(reference.numpy(), streamed.joined(axis=0))
    print(f"tts (ONNX codec) vs PyTorch codec: max abs {figures.max_abs:.3g}, SNR {figures.snr_db:.1f} dB")
    assert figures.max_abs <= PCM_MAX_ABS and figures.snr_db >= PCM_MIN_SNR_DB, figures


def test_codec_encoder_with_onnx_returns_the_pytorch_codes(onnx_triton: str, tiny_checkpoint: Path) -> None:
    pcm = chirp(2.0)
    item = grpcclient.InferInput("pcm", [1, pcm.size], "FP32")
    item.set_data_from_numpy(pcm[None])
    with grpcclient.InferenceServerClient(onnx_triton) as triton:
        codes = triton.infer("codec_encoder", [item]).as_numpy("codes")
    torch.set_num_threads(1)
    expected = Codec.from_checkpoint(tiny_checkpoint).encode(torch.from_numpy(pcm)).numpy()
    np.testing.assert_array_equal(codes[0], expected)
