"""The codec as two exportable graphs over fish-speech's own DAC modules, and what tracing them needs.

- `EncoderGraph`: `pcm` FP32 `[batch, samples]` (samples a multiple of 2048, as `Codec.encode_batch` pads them) ->
  `codes` INT32 `[batch, 10, samples / 2048]`. It is `DAC.encode` minus the padding and length bookkeeping:
  the DAC's encoder, then its quantizer (semantic codebook, then the nine residual ones).
- `DecoderGraph`: `codes` INT32 `[batch, 10, frames]` -> `pcm` FP32 `[batch, frames * 2048]`: `DAC.decode`,
  i.e. the quantizer's `decode` then the DAC's decoder.

Tracing (the TorchScript exporter) records tensor ops and replays Python arithmetic as constants. Upstream's
causal convolutions compute their right padding with `math.ceil` on the input length
(`get_extra_padding_for_conv1d` in `modded_dac` and in `rvq`), so a trace at one length would pad every other
length wrongly. `traceable_conv_padding()` swaps that helper, for the duration of an export only, for the same
quantity written as integer arithmetic on the traced length, `(kernel - padding - length) mod stride`
(identical for every length: `tests/export/test_codec_graphs.py` checks it against upstream's helper over a
grid, and every export is verified against PyTorch at several lengths). The other Python conditionals the
tracer records as constants have the same outcome at every length: the asserts of `pad1d`/`unpad1d` and
`ResidualUnit`'s `if pad > 0` (causal convolutions keep the length, so the pad is always 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from voicereel.engine.checkpoints import load_codec
from voicereel.engine.codec import FRAME_SAMPLES, NUM_CODEBOOKS, SAMPLE_RATE, fold_weight_norms


def traced_extra_padding(x: torch.Tensor, kernel_size: int, stride: int, padding_total: int = 0) -> Any:
    """Right padding that makes a causal convolution's last window complete; traceable form of upstream's
    `get_extra_padding_for_conv1d` (same value for every length, without going through a Python float)."""
    return (kernel_size - padding_total - x.shape[-1]) % stride


@contextmanager
def traceable_conv_padding() -> Iterator[None]:
    """Swap upstream's float-based padding helper for `traced_extra_padding` while an export traces."""
    from fish_speech.models.dac import modded_dac, rvq

    modules = (modded_dac, rvq)
    originals = [module.get_extra_padding_for_conv1d for module in modules]
    for module in modules:
        module.get_extra_padding_for_conv1d = traced_extra_padding
    try:
        yield
    finally:
        for module, original in zip(modules, originals, strict=True):
            module.get_extra_padding_for_conv1d = original


def load_export_codec(ckpt_dir: Path | str) -> Any:
    """The checkpoint's DAC in float32 with weight norms folded (one weight per conv instead of g and v)."""
    dac = load_codec(ckpt_dir, "cpu", torch.float32)
    fold_weight_norms(dac)
    return dac


def max_encode_samples(dac: Any) -> int:
    """Longest clip the encoder's attention tables (RoPE, masks: `block_size`) hold, as `Codec` computes it."""
    hop = 1
    for rate in dac.encoder_rates:
        hop *= int(rate)
    limits = [m.config.block_size * hop for m in dac.encoder.modules() if hasattr(m, "causal_mask")]
    limits.append(dac.quantizer.pre_module.config.block_size * FRAME_SAMPLES)
    return min(limits)


def codec_metadata(dac: Any) -> dict[str, str]:
    """Facts an ONNX runner needs without the checkpoint (stored as ONNX metadata)."""
    if dac.sample_rate != SAMPLE_RATE or dac.frame_length != FRAME_SAMPLES:
        raise ValueError(f"codec runs at {dac.sample_rate} Hz / {dac.frame_length} samples per frame")
    return {
        "sample_rate": str(SAMPLE_RATE),
        "frame_samples": str(FRAME_SAMPLES),
        "num_codebooks": str(NUM_CODEBOOKS),
        "max_encode_samples": str(max_encode_samples(dac)),
    }


class EncoderGraph(torch.nn.Module):
    """`pcm` `[batch, samples]` (a multiple of 2048) -> `codes` int32 `[batch, 10, samples / 2048]`."""

    def __init__(self, dac: Any) -> None:
        super().__init__()
        self.dac = dac

    def forward(self, pcm: torch.Tensor) -> torch.Tensor:
        latent = self.dac.encoder(pcm[:, None, :])
        return self.dac.quantizer(latent).codes.to(torch.int32)


class DecoderGraph(torch.nn.Module):
    """`codes` int32 `[batch, 10, frames]` -> `pcm` float32 `[batch, frames * 2048]`."""

    def __init__(self, dac: Any) -> None:
        super().__init__()
        self.dac = dac

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        latent = self.dac.quantizer.decode(codes.to(torch.int64))
        return self.dac.decoder(latent)[:, 0, :]
