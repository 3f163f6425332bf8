"""OnnxCodec (exported codec on ONNX Runtime) against Codec (PyTorch), call for call, on the tiny checkpoint.

Stated tolerance (voicereel/engine/onnx_codec.py, export/README.md): decoded PCM within 1e-4 absolute and 60 dB
SNR; codes equal (at least 99.9 %). Measured on the tiny checkpoint: codes identical, PCM within about 1e-7.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime
import pytest
import torch

from export.graphs import ExportSources
from export.metrics import compare
from export.onnx_export import export_graph
from export.verify import chirp
from voicereel.engine.codec import FRAME_SAMPLES, ChunkPlan, Codec, make_window
from voicereel.engine.onnx_codec import OnnxCodec, OnnxCodecError, onnx_codec_for_model

PCM_MAX_ABS = 1e-4
PCM_MIN_SNR_DB = 60.0


@pytest.fixture(scope="module")
def exported(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("onnx_codec")
    sources = ExportSources(tiny_checkpoint)
    paths = {name: out / f"{name}.onnx" for name in ("codec_encoder", "codec_decoder")}
    for name, path in paths.items():
        export_graph(sources, name, path, "tiny")
    return paths


@pytest.fixture(scope="module")
def codecs(exported: dict[str, Path], tiny_checkpoint: Path) -> tuple[Codec, OnnxCodec]:
    return Codec.from_checkpoint(tiny_checkpoint), OnnxCodec(exported["codec_encoder"], exported["codec_decoder"])


def _assert_pcm_close(reference: torch.Tensor, candidate: torch.Tensor) -> None:
    assert candidate.dtype == torch.float32 and candidate.shape == reference.shape
    figures = compare(reference.numpy(), candidate.numpy())
    assert figures.max_abs <= PCM_MAX_ABS and figures.snr_db >= PCM_MIN_SNR_DB, figures


def test_encode_batch_of_ragged_clips_gives_the_same_codes(codecs: tuple[Codec, OnnxCodec]) -> None:
    torch_codec, onnx_codec = codecs
    signal = torch.from_numpy(chirp(2.0))
    # (no all-zero clip: with the random checkpoint's zero biases it is equally near every code; see export/verify.py)
    clips = [signal, signal[:5000] * 0.5, signal[: FRAME_SAMPLES * 7], signal[1000:1001]]
    expected = torch_codec.encode_batch(clips)
    got = onnx_codec.encode_batch(clips)
    assert [c.shape for c in got] == [c.shape for c in expected] == [(10, 44), (10, 3), (10, 7), (10, 1)]
    for reference, candidate in zip(expected, got, strict=True):
        assert candidate.dtype == torch.int32
        assert torch.equal(reference, candidate)
    assert onnx_codec.max_encode_samples == torch_codec.max_encode_samples


def test_decode_windows_and_chunked_decode_match_pytorch(codecs: tuple[Codec, OnnxCodec]) -> None:
    torch_codec, onnx_codec = codecs
    codes = torch_codec.encode(torch.from_numpy(chirp(3.0)))
    plan = ChunkPlan(chunk_frames=16, context_frames=8)
    windows = [make_window(codes, 0, 16, plan), make_window(codes, 16, 32, plan), make_window(codes, 56, 65, plan)]
    for reference, candidate in zip(
        torch_codec.decode_windows(windows), onnx_codec.decode_windows(windows), strict=True
    ):
        _assert_pcm_close(reference, candidate)
    _assert_pcm_close(torch_codec.decode_chunked(codes, plan, 4), onnx_codec.decode_chunked(codes, plan, 4))
    _assert_pcm_close(torch_codec.decode(codes), onnx_codec.decode(codes))


def test_validation_is_the_pytorch_codecs(codecs: tuple[Codec, OnnxCodec]) -> None:
    _, onnx_codec = codecs
    with pytest.raises(ValueError, match=r"must lie in \[-1, 1\]"):
        onnx_codec.encode(torch.full((100,), 1.5))
    with pytest.raises(ValueError, match=r"semantic codebook 0 must be in 0\.\.4095"):
        onnx_codec.decode(torch.full((10, 3), 4096))
    too_long = torch.zeros(onnx_codec.max_encode_samples + 1)
    with pytest.raises(ValueError, match="exceeds the encoder's"):
        onnx_codec.encode(too_long)


def test_files_are_checked_at_load(exported: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(OnnxCodecError, match="holds graph 'codec_decoder', expected 'codec_encoder'"):
        OnnxCodec(encoder=exported["codec_decoder"])
    with pytest.raises(OnnxCodecError, match="does not exist; `make export`"):
        OnnxCodec(decoder=tmp_path / "model.onnx")
    decoder_only = OnnxCodec(decoder=exported["codec_decoder"])
    with pytest.raises(OnnxCodecError, match="without a encoder file"):
        decoder_only.encode(torch.zeros(10))


def test_model_glue_reads_the_version_folder_and_refuses_settings_it_cannot_honour(
    exported: dict[str, Path], tmp_path: Path
) -> None:
    version = tmp_path / "codec_decoder" / "1"
    version.mkdir(parents=True)
    (version / "model.onnx").write_bytes(exported["codec_decoder"].read_bytes())
    args = {"model_repository": str(tmp_path / "codec_decoder"), "model_version": "1"}
    params = {"dtype": "float32", "compile_decoder": "false"}
    codec = onnx_codec_for_model(args, params, "decoder", torch.device("cpu"))
    assert codec.decode(torch.zeros((10, 2), dtype=torch.int32)).shape == (2 * FRAME_SAMPLES,)
    auto = onnx_codec_for_model(args, {**params, "dtype": "auto"}, "decoder", torch.device("cpu"))  # the default
    assert auto.decode(torch.zeros((10, 2), dtype=torch.int32)).shape == (2 * FRAME_SAMPLES,)
    with pytest.raises(OnnxCodecError, match="float32 export; dtype is 'bfloat16'"):
        onnx_codec_for_model(args, {**params, "dtype": "bfloat16"}, "decoder", torch.device("cpu"))
    for knob in ("compile_decoder", "cuda_graphs"):  # both for the PyTorch codec on a GPU only: ignored here
        torch_only = onnx_codec_for_model(args, {**params, knob: "true"}, "decoder", torch.device("cpu"))
        assert torch_only.decode(torch.zeros((10, 2), dtype=torch.int32)).shape == (2 * FRAME_SAMPLES,)
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(OnnxCodecError, match="no CUDA provider"):
            onnx_codec_for_model(args, params, "decoder", torch.device("cuda", 0))
