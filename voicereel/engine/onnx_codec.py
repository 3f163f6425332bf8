"""The codec served from exported ONNX models (`python -m export`) through ONNX Runtime.

`OnnxCodec` has the calls of `voicereel.engine.codec.Codec` that the codec Triton models and their request
handling (`voicereel.engine.codec_serving`) use: `encode_batch`, `encode`, `max_encode_samples`, `decode_codes`,
`decode`, `decode_windows`, `decode_chunked`, with the same validation, padding and trimming (the functions of
`voicereel.engine.codec`), so swapping it in changes the arithmetic backend and nothing else. The python-backend
models select it with their `runtime` knob (`onnxruntime`), reading `<model dir>/1/model.onnx`.

The exported graphs (export/codec_graphs.py): the encoder takes `pcm` `[batch, samples]` with samples a multiple of
2048 and returns `codes` int32 `[batch, 10, frames]`; the decoder takes `codes` int32 `[batch, 10, frames]` and
returns `pcm` `[batch, frames * 2048]`. Their metadata (`voicereel.*`) says which graph a file is and the codec's
rates; a file of the wrong graph or rate is refused at load. Tolerance against the PyTorch codec: decoded PCM
within 1e-4 absolute and 60 dB SNR, codes 99.9 % equal (checked by the export's stage 2, and end to end through
Triton by tests/export/test_serving.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voicereel.engine.codec import (
    FRAME_SAMPLES,
    NUM_CODEBOOKS,
    SAMPLE_RATE,
    Codec,
    WindowedDecoding,
    frames_for_samples,
    validate_pcm,
)

METADATA_PREFIX = "voicereel."


class OnnxCodecError(RuntimeError):
    """An ONNX file is missing, of the wrong graph, or the requested device has no ONNX Runtime provider."""


def _session(path: Path, graph: str, device: torch.device, threads: int) -> tuple[Any, dict[str, str]]:
    import onnxruntime

    if not path.is_file():
        raise OnnxCodecError(f"{path} does not exist; `make export` (python -m export) installs it")
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise OnnxCodecError(
                "this onnxruntime has no CUDA provider; serve the ONNX codec on CPU instances (instance_kind cpu) "
                "or install onnxruntime-gpu"
            )
        providers: list[Any] = [("CUDAExecutionProvider", {"device_id": device.index or 0})]
    else:
        providers = ["CPUExecutionProvider"]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=providers)
    raw = session.get_modelmeta().custom_metadata_map
    metadata = {k.removeprefix(METADATA_PREFIX): v for k, v in raw.items() if k.startswith(METADATA_PREFIX)}
    if metadata.get("graph") != graph:
        raise OnnxCodecError(f"{path} holds graph {metadata.get('graph')!r}, expected {graph!r}")
    rates = (metadata.get("sample_rate"), metadata.get("frame_samples"), metadata.get("num_codebooks"))
    if rates != (str(SAMPLE_RATE), str(FRAME_SAMPLES), str(NUM_CODEBOOKS)):
        raise OnnxCodecError(
            f"{path}: codec rates {rates} are not {SAMPLE_RATE} Hz / {FRAME_SAMPLES} / {NUM_CODEBOOKS}"
        )
    return session, metadata


class OnnxCodec(WindowedDecoding):
    """Codec calls over ONNX Runtime sessions; either side may be absent (a model serves one of them)."""

    def __init__(
        self,
        encoder: Path | str | None = None,
        decoder: Path | str | None = None,
        device: torch.device | str = "cpu",
        threads: int = 1,
    ) -> None:
        if encoder is None and decoder is None:
            raise ValueError("OnnxCodec needs an encoder file, a decoder file or both")
        self.device = torch.device(device)
        self._encoder: Any = None
        self._decoder: Any = None
        self._max_encode_samples = 0
        if encoder is not None:
            self._encoder, metadata = _session(Path(encoder), "codec_encoder", self.device, threads)
            self._max_encode_samples = int(metadata["max_encode_samples"])
        if decoder is not None:
            self._decoder, _ = _session(Path(decoder), "codec_decoder", self.device, threads)

    @property
    def max_encode_samples(self) -> int:
        """Longest clip the exported encoder's attention tables hold (recorded at export)."""
        self._need(self._encoder, "encoder")
        return self._max_encode_samples

    @staticmethod
    def _need(session: Any, side: str) -> None:
        if session is None:
            raise OnnxCodecError(f"this OnnxCodec was made without a {side} file")

    def encode_batch(self, clips: Sequence[Any]) -> list[torch.Tensor]:
        """Encode clips of any lengths in one call (right-padded to the longest, exact: the encoder is causal).

        Returns int32 codes `[10, ceil(samples / 2048)]` per clip, on the CPU (as `Codec.encode_batch`).
        """
        self._need(self._encoder, "encoder")
        if not clips:
            return []
        tensors = [validate_pcm(clip) for clip in clips]
        longest = max(t.numel() for t in tensors)
        if longest > self._max_encode_samples:
            raise ValueError(
                f"clip of {longest / SAMPLE_RATE:.1f} s exceeds the encoder's "
                f"{self._max_encode_samples / SAMPLE_RATE:.1f} s"
            )
        batch = np.zeros((len(tensors), frames_for_samples(longest) * FRAME_SAMPLES), dtype=np.float32)
        for row, tensor in enumerate(tensors):
            batch[row, : tensor.numel()] = tensor.numpy()
        (codes,) = self._encoder.run(["codes"], {"pcm": batch})
        codes = torch.from_numpy(codes)
        return [codes[row, :, : frames_for_samples(t.numel())].clone() for row, t in enumerate(tensors)]

    def encode(self, pcm: Any) -> torch.Tensor:
        """Codes int32 `[10, T]` of one mono 44.1 kHz clip."""
        return self.encode_batch([pcm])[0]

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Decode equally long code sequences `[B, 10, T]` in one call: float32 PCM `[B, T * 2048]` on the CPU."""
        self._need(self._decoder, "decoder")
        array = np.ascontiguousarray(codes.to("cpu", torch.int32).numpy())
        (pcm,) = self._decoder.run(["pcm"], {"codes": array})
        return torch.from_numpy(pcm)


def model_onnx_path(args: dict[str, str]) -> Path:
    """`<model dir>/<version>/model.onnx` of a python-backend model, from the `args` Triton gives `initialize`."""
    return Path(args["model_repository"]) / args["model_version"] / "model.onnx"


def onnx_codec_for_model(args: dict[str, str], params: dict[str, str], side: str, device: torch.device) -> OnnxCodec:
    """The `OnnxCodec` of a codec python-backend model whose knob `runtime` is `onnxruntime`.

    Reads `<model dir>/<version>/model.onnx` (installed by `python -m export`, stage 5). The export is float32
    (what dtype `auto` means here), so another dtype is refused rather than silently ignored. Knobs `compile_decoder`
    and `cuda_graphs` apply to the PyTorch codec on a GPU only; elsewhere they are ignored (as text2semantic's
    `compile_step` and `cuda_graphs`), so their defaults do not stop this runtime from loading.
    """
    if params.get("dtype", "float32") not in ("float32", "auto"):  # auto: the export's own dtype
        raise OnnxCodecError(f"runtime onnxruntime serves the float32 export; dtype is {params['dtype']!r}")
    path = model_onnx_path(args)
    if side == "encoder":
        return OnnxCodec(encoder=path, device=device)
    if side == "decoder":
        return OnnxCodec(decoder=path, device=device)
    raise ValueError(f"side must be encoder or decoder, got {side!r}")


def codec_for_instance(
    args: dict[str, str], params: dict[str, str], side: str, device: torch.device
) -> Codec | OnnxCodec:
    """The codec a codec_encoder/codec_decoder instance serves: the exported ONNX model (knob `runtime` =
    onnxruntime) or the checkpoint's codec in PyTorch. CPU instances use one thread: Triton runs them side by side."""
    from voicereel.engine.triton_glue import dtype_from_name

    if device.type == "cpu":
        torch.set_num_threads(1)
    if params["runtime"] == "onnxruntime":
        return onnx_codec_for_model(args, params, side, device)
    return Codec.for_serving(params["checkpoint_dir"], device, dtype_from_name(params["dtype"], device))
