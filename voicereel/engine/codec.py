"""The codec: 44.1 kHz mono PCM <-> codes `[10, T]`, with decoding in fixed-shape windows so requests batch.

fish-speech's DAC is causal end to end (causal convolutions, causal transposed convolutions, causal windowed
attention), so the audio of frame t depends on codes <= t only. Two consequences drive this module:

- Right padding never changes earlier output. Encoding a batch of clips padded to the longest gives each clip
  the codes it gets alone, and a decode window can be left-aligned and padded on the right to a fixed shape.
- A chunk needs left context only. Its audio is exact once the context covers the codec's receptive field: the
  convolutions reach back under 6 frames (measured in tests; the tiny codec keeps the real kernels, strides
  and dilations, so this holds for the real one), the quantizer's causal attention 128 frames per layer (8
  layers in the real codec). The default context of 64 frames covers the convolutions ten times over and half an
  attention window; the attention tail beyond it is the approximation, measured in tests/engine/test_codec.py
  and README (tolerance stated there). Chunks are concatenated after trimming the context: no crossfade is
  needed because the overlap is only ever input, never two outputs to blend.

Decoding a window costs almost nothing but its waveform decoder (the conv stack from the quantizer's latent to
44.1 kHz: ~98 % of the time; the quantizer's code lookup and causal transformer are the rest). The transformer needs
the long context; the waveform decoder only its own receptive field (the latent of under 5 frames, measured). So
a window's latent is computed over the whole window and the waveform decoder runs on the rendered frames plus
`DECODER_MARGIN_FRAMES` before them: the same audio (to float rounding) for a little over half the work of decoding
64 + 64 frames. Windows are also cut after their last real frame (right padding never changes earlier output).

Window layout (what `codec_decoder` receives): `codes[10, context + chunk]`, left-aligned: `context_frames`
frames of context, then up to `chunk` frames to render, then padding. The first chunk of an utterance has no
context, i.e. it is decoded exactly as the whole utterance starts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voicereel.engine.checkpoints import load_codec
from voicereel.engine.codec_graphs import ShapeGraphs
from voicereel.engine.compile_limits import allow_graphs_per_function

SAMPLE_RATE = 44_100
FRAME_SAMPLES = 2048  # samples per code frame: 44100 / 2048 = 21.53 frames per second
NUM_CODEBOOKS = 10
SEMANTIC_CODEBOOK_SIZE = 4096  # codebook 0
RESIDUAL_CODEBOOK_SIZE = 1024  # codebooks 1..9
# Latent frames the waveform decoder runs on before the first frame it renders. Its receptive field is under 5
# frames (tests/engine/test_codec.py measures it on the tiny codec, which keeps the real kernels and strides).
DECODER_MARGIN_FRAMES = 8


@dataclass(frozen=True)
class ChunkPlan:
    """Fixed decode-window shape: `context_frames` of left context + `chunk_frames` rendered per window."""

    chunk_frames: int = 64
    context_frames: int = 64
    # The utterance's first chunk may be shorter (same window shape, fewer frames rendered): its audio can
    # start as soon as these frames exist. 0 = chunk_frames.
    first_chunk_frames: int = 0

    def __post_init__(self) -> None:
        if self.chunk_frames < 1 or self.context_frames < 0:
            raise ValueError(f"bad chunk plan {self}: chunk_frames >= 1 and context_frames >= 0 required")
        if not 0 <= self.first_chunk_frames <= self.chunk_frames:
            raise ValueError(f"bad chunk plan {self}: first_chunk_frames must be in 0..chunk_frames")

    def chunk_end(self, start: int) -> int:
        """Where the chunk that starts at frame ``start`` ends (before clipping to the utterance)."""
        if start == 0 and self.first_chunk_frames:
            return self.first_chunk_frames
        return start + self.chunk_frames

    @property
    def window_frames(self) -> int:
        return self.context_frames + self.chunk_frames


@dataclass(frozen=True)
class DecodeWindow:
    """One fixed-shape decode request: render frames [context_frames, num_frames) of `codes`."""

    codes: torch.Tensor  # int32 [10, plan.window_frames], left-aligned, padded on the right
    context_frames: int
    num_frames: int


def validate_pcm(pcm: Any) -> torch.Tensor:
    """Mono float PCM in [-1, 1] as a float32 tensor [N]; ValueError with a clear message otherwise."""
    tensor = torch.as_tensor(pcm)
    if tensor.ndim != 1:
        raise ValueError(f"pcm must be mono with shape [samples], got shape {list(tensor.shape)}")
    if tensor.numel() == 0:
        raise ValueError("pcm is empty")
    if not tensor.is_floating_point():
        raise ValueError(f"pcm must be float samples in [-1, 1], got dtype {tensor.dtype}")
    tensor = tensor.to(torch.float32)
    if not torch.isfinite(tensor).all():
        raise ValueError("pcm contains NaN or infinite samples")
    peak = float(tensor.abs().max())
    if peak > 1.0:
        raise ValueError(f"pcm must lie in [-1, 1] (peak {peak:.3f}); normalise before encoding")
    return tensor


def validate_codes(codes: Any, frames: int | None = None) -> torch.Tensor:
    """Codes `[10, T]` with codebook 0 in 0..4095 and 1..9 in 0..1023, as int64; ValueError otherwise."""
    tensor = torch.as_tensor(codes)
    if tensor.ndim != 2 or tensor.shape[0] != NUM_CODEBOOKS:
        raise ValueError(f"codes must have shape [{NUM_CODEBOOKS}, frames], got {list(tensor.shape)}")
    if tensor.shape[1] == 0:
        raise ValueError("codes are empty (0 frames)")
    if frames is not None and tensor.shape[1] != frames:
        raise ValueError(f"codes must have exactly {frames} frames, got {tensor.shape[1]}")
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise ValueError(f"codes must be integers, got dtype {tensor.dtype}")
    tensor = tensor.to(torch.int64)
    for rows, size, name in (
        (slice(0, 1), SEMANTIC_CODEBOOK_SIZE, "semantic codebook 0"),
        (slice(1, None), RESIDUAL_CODEBOOK_SIZE, "residual codebooks 1..9"),
    ):
        part = tensor[rows]
        low, high = int(part.min()), int(part.max())
        if low < 0 or high >= size:
            raise ValueError(f"{name} must be in 0..{size - 1}, got values in {low}..{high}")
    return tensor


def frames_for_samples(num_samples: int) -> int:
    return math.ceil(num_samples / FRAME_SAMPLES)


def plan_windows(codes: torch.Tensor, plan: ChunkPlan) -> list[DecodeWindow]:
    """Cut validated codes `[10, T]` into fixed-shape windows, one per chunk of `plan.chunk_frames` frames."""
    total = codes.shape[1]
    windows = []
    start = 0
    while start < total:
        end = min(plan.chunk_end(start), total)
        windows.append(make_window(codes, start, end, plan))
        start = end
    return windows


def make_window(codes: torch.Tensor, start: int, end: int, plan: ChunkPlan) -> DecodeWindow:
    """The window that renders frames [start, end) of `codes` (a prefix of the utterance is enough)."""
    if not 0 <= start < end <= codes.shape[1] or end - start > plan.chunk_frames:
        raise ValueError(f"chunk [{start}, {end}) does not fit {codes.shape[1]} frames and {plan}")
    first = max(0, start - plan.context_frames)
    window = torch.zeros((NUM_CODEBOOKS, plan.window_frames), dtype=torch.int32)
    window[:, : end - first] = codes[:, first:end]
    return DecodeWindow(codes=window, context_frames=start - first, num_frames=end - first)


def decoder_skip(context_frames: int) -> int:
    """Frames of context the waveform decoder may leave out: all but its margin."""
    return max(0, context_frames - DECODER_MARGIN_FRAMES)


def window_spans(plan: ChunkPlan) -> tuple[int, ...]:
    """The waveform decoder lengths (frames) a compiled codec keeps, shortest first: the first chunk (when shorter
    than the rest), the chunk plus its margin, the whole window."""
    skip = decoder_skip(plan.context_frames)
    spans = {plan.window_frames - skip, plan.window_frames}
    if 0 < plan.first_chunk_frames < plan.window_frames - skip:
        spans.add(plan.first_chunk_frames)
    return tuple(sorted(spans))


def bucket_sizes(max_batch: int) -> tuple[int, ...]:
    """1, 2, 4, 8, then every multiple of 8 below `max_batch`, then `max_batch` itself.

    Multiples of 8 rather than powers of two past 8: a batch of 17 padded to 32 would nearly double the work
    (seen on the H200 at 32 streams); padded to 24 it costs at most 7 extra windows.
    """
    sizes = [size for size in (1, 2, 4) if size < max_batch]
    sizes += list(range(8, max_batch, 8))
    return (*sizes, max_batch)


def fold_weight_norms(model: torch.nn.Module) -> int:
    """Replace weight-normed convolutions' (g, v) by the weight they compute, once, instead of on every call.

    Inference only (same maths; the weights are no longer trainable in g/v form). Covers both forms the codec
    uses: torch.nn.utils.parametrizations (fish-speech's causal convs) and the older hook (descript's WNConv1d).
    Returns how many were folded.
    """
    from torch.nn.utils import parametrize, remove_weight_norm

    folded = 0
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            folded += 1
        elif hasattr(module, "weight_g") and hasattr(module, "weight_v"):
            remove_weight_norm(module)
            folded += 1
    return folded


class _PhasedDilatedConv(torch.nn.Module):
    """A dilated Conv1d (stride 1, no padding of its own) computed as an undilated one over the input's ``dilation``
    interleaved phases, batched: output ``t = j * d + r`` is the undilated conv of phase ``r`` (samples ``r, r + d,
    ...``) at ``j``. The same sums of the same products (``phase_dilated_convs``)."""

    def __init__(self, conv: torch.nn.Conv1d) -> None:
        super().__init__()
        self.conv = conv
        self.dilation = int(conv.dilation[0])
        self.reach = self.dilation * (int(conv.kernel_size[0]) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, length = x.shape
        d = self.dilation
        padded = -(-length // d) * d
        if padded != length:
            x = torch.nn.functional.pad(x, (0, padded - length))
        steps = padded // d
        phases = x.reshape(batch, channels, steps, d).permute(0, 3, 1, 2).reshape(batch * d, channels, steps)
        conv = self.conv
        y = torch.nn.functional.conv1d(phases, conv.weight, conv.bias, groups=conv.groups)
        out = y.view(batch, d, y.shape[1], y.shape[2]).permute(0, 2, 3, 1).reshape(batch, y.shape[1], -1)
        return out[:, :, : length - self.reach]


def phase_dilated_convs(model: torch.nn.Module) -> int:
    """Compute every dilated Conv1d of ``model`` as an undilated one over interleaved phases (``_PhasedDilatedConv``).
    cuDNN has no fast bf16 kernel for some dilated shapes: on the H200 the waveform decoder's 384-channel conv with
    dilation 9 took 41.5 ms of a 199 ms decode of 32 windows, the same conv undilated about 4 ms. Call after
    ``fold_weight_norms`` (a weight-normed conv is left alone). Returns how many were replaced."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not torch.nn.Conv1d or child.dilation[0] == 1:
                continue
            if child.stride[0] != 1 or child.padding not in ((0,), 0) or child.padding_mode != "zeros":
                continue
            setattr(parent, name, _PhasedDilatedConv(child))
            replaced += 1
    return replaced


class WindowedDecoding:
    """Whole, windowed and chunked decoding, built on the subclass's batched `decode_span([B, 10, T], skip)`.

    Shared by the PyTorch `Codec` and the ONNX Runtime codec, so both cut and trim windows the same way.
    """

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Decode a batch of equally long code sequences `[B, 10, T]`: float32 PCM `[B, T * 2048]`."""
        raise NotImplementedError

    def decode_span(self, codes: torch.Tensor, skip: int) -> torch.Tensor:
        """PCM `[B, (T - skip) * 2048]` of frames `[skip, T)` of codes `[B, 10, T]`, exact for frames at or past
        `skip + DECODER_MARGIN_FRAMES`. This default decodes everything and cuts; `Codec` skips the work."""
        return self.decode_codes(codes)[:, skip * FRAME_SAMPLES :]

    def window_skip(self, window: DecodeWindow) -> int:
        """Frames of `window` the waveform decoder may leave out: the context before its margin."""
        return decoder_skip(window.context_frames)

    def window_call(self, window: DecodeWindow) -> tuple[int, int]:
        """`(skip, end)` of the `decode_span` call that renders `window`; windows with equal pairs share a call.
        Here `end` is 0: the call runs up to the last real frame of its longest window."""
        return self.window_skip(window), 0

    def decode(self, codes: Any) -> torch.Tensor:
        """Whole-sequence decode of codes `[10, T]`: float32 PCM `[T * 2048]`."""
        return self.decode_codes(validate_codes(codes)[None])[0]

    def decode_windows(self, windows: Sequence[DecodeWindow]) -> list[torch.Tensor]:
        """Decode equally shaped windows; returns each window's rendered PCM (context trimmed), in order.

        Windows whose calls match (`window_call`: an utterance's first windows have no context to skip, later ones
        skip most of theirs) share one: at most a few calls, the no-context (first) windows first.
        """
        groups: dict[tuple[int, int], list[int]] = {}
        for index, window in enumerate(windows):
            groups.setdefault(self.window_call(window), []).append(index)
        pcm: list[torch.Tensor] = [torch.empty(0)] * len(windows)
        for (skip, fixed_end), indices in sorted(groups.items()):
            members = [windows[index] for index in indices]
            end = fixed_end or max(w.num_frames for w in members)
            audio = self.decode_span(torch.stack([w.codes[:, :end] for w in members]), skip)
            for row, (index, w) in enumerate(zip(indices, members, strict=True)):
                pcm[index] = audio[
                    row, (w.context_frames - skip) * FRAME_SAMPLES : (w.num_frames - skip) * FRAME_SAMPLES
                ]
        return pcm

    def decode_chunked(self, codes: Any, plan: ChunkPlan, batch_size: int = 16) -> torch.Tensor:
        """Decode `[10, T]` as fixed-shape windows, `batch_size` per call, and concatenate: float32 `[T * 2048]`."""
        windows = plan_windows(validate_codes(codes), plan)
        pieces: list[torch.Tensor] = []
        for first in range(0, len(windows), batch_size):
            pieces.extend(self.decode_windows(windows[first : first + batch_size]))
        return torch.cat(pieces)


class Codec(WindowedDecoding):
    """fish-speech's DAC behind validated, batched encode and decode calls."""

    def __init__(self, dac: Any, device: torch.device | str = "cpu") -> None:
        self.dac = dac
        self.device = torch.device(device)
        self.dtype = next(dac.parameters()).dtype
        # Set by fix_shapes: decode batches are padded up to these sizes, and the waveform decoder sees
        # these lengths only (frames), skipping none of a window or `fixed_skip` frames.
        self.batch_buckets: tuple[int, ...] = ()
        self.fixed_spans: tuple[int, ...] = ()
        self.fixed_skip = 0
        self.graphs: ShapeGraphs | None = None  # the waveform decoder's, set by capture_graphs
        self.decoder: Callable[[torch.Tensor], torch.Tensor] = dac.decoder  # the waveform decoder, compiled or not
        self._eager_decoder: Any = None  # set by compile_decoder: the decoder before compiling
        if dac.sample_rate != SAMPLE_RATE or dac.frame_length != FRAME_SAMPLES:
            raise ValueError(f"codec runs at {dac.sample_rate} Hz / {dac.frame_length} samples per frame")

    def compile_decoder(self, max_batch: int, plan: ChunkPlan, backend: str | Callable[..., Any] = "inductor") -> None:
        """torch.compile the waveform decoder: one graph per decoder length, the batch a dynamic size.

        Inductor fuses the snake activations, causal pads, copies and residual adds around cuDNN's convolutions:
        compiled with static shapes, with CUDA graphs, bf16, 32 windows of the default plan a call on an H100,
        180.5 -> 88.9 ms (527 -> 1,070 s of audio a second; perf/results, sixteenth session). This dynamic-batch
        form failed to compile on the GPU (see ``options``), so codec_decoder's knob is off.

        Batches are padded up to a bucket size as without compiling (``bucket_sizes``, less its 1: a lone window
        decodes as two, so every bucket shares the graph of a dynamic batch instead of a size-1 graph of its own), and
        the decoder sees at most three lengths (``window_spans``), each static: an utterance's short first chunk, the
        rendered chunk plus margin (full-context windows skip the rest of their context; a second window, whose context
        is the first chunk, fits it too), and the whole window. A first window of 8 frames thus decodes 8 frames, not
        the 128 of a whole window. ``warm_up`` compiles the three graphs. ``backend``: torch.compile's (tests count the
        graphs compiled with one of their own).
        """
        import torch._dynamo

        self._eager_decoder = eager = self.decoder
        # Inductor's tiling analysis raised a malformed CantSplit on this decoder with a dynamic batch (torch 2.11,
        # H100, sixteenth session: "CantSplit.__init__() missing 2 required positional arguments", the twelfth
        # session's error too). In torch 2.11's simd.py that bare raise sits in a branch only three-dimensional tilings
        # reach, and inductor tiles in three dimensions only with this analysis on: off, it tiles in at most two. Not
        # yet run on a GPU.
        options: dict[str, str | int | bool | Callable[..., Any]] | None = None
        if backend == "inductor":
            options = {"triton.coalesce_tiling_analysis": False}
        compiled = torch.compile(eager, dynamic=None, backend=backend, options=options)

        def decoder(latent: torch.Tensor) -> torch.Tensor:
            torch._dynamo.maybe_mark_dynamic(latent, 0)  # every bucket: they start at 2 (a size 1 would specialise)
            torch._dynamo.mark_static(latent, 2)  # one graph per length, not a dynamic length after the second
            return compiled(latent)

        self.decoder = decoder
        allow_graphs_per_function()
        self.fix_shapes(max_batch, plan)

    def fix_shapes(self, max_batch: int, plan: ChunkPlan) -> None:
        """Pad decode batches up to `bucket_sizes(max_batch)` and run the waveform decoder at the lengths of
        `window_spans(plan)` only, from frame 0 or `decoder_skip(context)` (what compiled code and graphs need).
        A compiled decoder's buckets start at 2: its graphs take the batch as a dynamic size, which 1 would specialise
        (a lone window decodes as two)."""
        sizes = bucket_sizes(max_batch)
        if self._eager_decoder is not None:
            sizes = tuple(size for size in sizes if size > 1) or sizes
        self.batch_buckets = sizes
        self.fixed_spans = window_spans(plan)
        self.fixed_skip = decoder_skip(plan.context_frames)

    def planned_spans(self, plan: ChunkPlan) -> tuple[int, ...]:
        """The decoder lengths (of `fixed_spans`) that windows cut by `plan`, whole or streamed, reach: for the
        default plan (64, 64, 8) the first chunk's 8 and the chunk plus margin's 72, never the whole window's 128
        (which a window of another plan, sent to codec_decoder directly, may still need). Shapes must be fixed."""
        if not self.fixed_spans:
            raise ValueError("planned_spans needs fixed shapes (fix_shapes)")
        # Windows repeat once the context is full: every utterance length up to a few chunks past that shows them all.
        longest = plan.first_chunk_frames + plan.context_frames + 2 * plan.chunk_frames
        spans = set()
        for frames in range(1, longest + 1):
            for window in plan_windows(torch.zeros((NUM_CODEBOOKS, frames), dtype=torch.int64), plan):
                skip, end = self.window_call(window)
                spans.add(end - skip)
        return tuple(sorted(spans))

    def capture_graphs(self, max_batch: int, plan: ChunkPlan) -> int:
        """Capture the waveform decoder at every batch bucket and every decoder length `plan` reaches
        (`planned_spans`) as CUDA graphs, each after a real run (so a compiled decoder compiles here); later calls
        of those shapes replay them, any other shape runs directly. Returns how many were captured. Shapes are
        fixed first (`fix_shapes`) unless `compile_decoder` did."""
        if self.device.type != "cuda":
            raise ValueError("CUDA graphs need the codec on a CUDA device")
        if not self.fixed_spans:
            self.fix_shapes(max_batch, plan)
        graphs = ShapeGraphs(self._waveform)
        spans = self.planned_spans(plan)
        with torch.inference_mode():
            for bucket in self.batch_buckets:
                for span in spans:
                    codes = torch.zeros((bucket, NUM_CODEBOOKS, span), dtype=torch.int64, device=self.device)
                    graphs.capture(self.dac.quantizer.decode(codes))
        torch.cuda.empty_cache()  # the warm-up runs' memory, cached outside the graphs' pool, back to the driver
        self.graphs = graphs
        return len(graphs)

    def window_call(self, window: DecodeWindow) -> tuple[int, int]:
        if not self.fixed_spans:
            return super().window_call(window)
        # compiled: the full skip or none, and the decoder's length padded up to the next of `fixed_spans`
        skip = self.fixed_skip if self.window_skip(window) >= self.fixed_skip else 0
        end = next(
            skip + span
            for span in self.fixed_spans
            if skip + span >= window.num_frames and skip + span <= window.codes.shape[1]
        )
        return skip, end

    def warm_up(self, plan: ChunkPlan) -> bool:
        """Decode one dummy batch per bucket size and decoder length so compilation happens now, not on a request.
        If that fails with a compiled decoder (inductor has failed on the real codec's shapes: torch 2.11 on an H100,
        twelfth and sixteenth sessions), the eager decoder and the batch bucket of 1 are put back, the failure logged,
        and False returned."""
        dummy = torch.zeros((NUM_CODEBOOKS, plan.window_frames), dtype=torch.int32)
        try:
            for size in self.batch_buckets or (1,):
                for span in self.fixed_spans or (plan.window_frames,):
                    self.decode_span(dummy[None, :, :span].expand(size, -1, -1), 0)
        except Exception:
            if self._eager_decoder is None:
                raise
            logging.getLogger(__name__).exception("compiled waveform decoder failed at warm-up; serving it eagerly")
            self.decoder, self._eager_decoder = self._eager_decoder, None
            self.fix_shapes(self.batch_buckets[-1], plan)  # eager again: the bucket of 1 back
            return False
        return True

    @classmethod
    def from_checkpoint(
        cls,
        ckpt_dir: Path | str,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        fold_weight_norm: bool = False,
        phase_dilations: bool = False,
    ) -> Codec:
        """``fold_weight_norm`` and ``phase_dilations``: the same network computed faster (``fold_weight_norms``,
        ``phase_dilated_convs``); serving turns both on (``for_serving``)."""
        dac = load_codec(ckpt_dir, device, dtype)
        if fold_weight_norm:
            fold_weight_norms(dac)
        if phase_dilations:
            phase_dilated_convs(dac.decoder)
        return cls(dac, device)

    @classmethod
    def for_serving(cls, ckpt_dir: Path | str, device: torch.device | str, dtype: torch.dtype) -> Codec:
        """The codec as codec_decoder, codec_encoder and text2semantic's renderer serve it: weight norms folded,
        dilated convs phased (H200, bf16, 32 windows a call: 196 -> 164 ms; perf/results, eighth session)."""
        return cls.from_checkpoint(ckpt_dir, device, dtype, fold_weight_norm=True, phase_dilations=True)

    @property
    def max_encode_samples(self) -> int:
        """Longest clip the encoder's attention tables (RoPE, causal mask: `block_size`) can hold."""
        hop = int(np.prod(self.dac.encoder_rates))
        limits = [m.config.block_size * hop for m in self.dac.encoder.modules() if hasattr(m, "causal_mask")]
        limits.append(self.dac.quantizer.pre_module.config.block_size * FRAME_SAMPLES)
        return min(limits)

    @torch.inference_mode()
    def encode_batch(self, clips: Sequence[Any]) -> list[torch.Tensor]:
        """Encode clips of any lengths in one call (right-padded: exact, the encoder is causal).

        Returns int32 codes `[10, ceil(samples / 2048)]` per clip, on the CPU.
        """
        if not clips:
            return []
        tensors = [validate_pcm(clip) for clip in clips]
        longest = max(t.numel() for t in tensors)
        if longest > self.max_encode_samples:
            raise ValueError(
                f"clip of {longest / SAMPLE_RATE:.1f} s exceeds the encoder's "
                f"{self.max_encode_samples / SAMPLE_RATE:.1f} s"
            )
        padded = frames_for_samples(longest) * FRAME_SAMPLES
        batch = torch.zeros((len(tensors), 1, padded), dtype=self.dtype, device=self.device)
        for row, tensor in enumerate(tensors):
            batch[row, 0, : tensor.numel()] = tensor.to(self.device, self.dtype)
        codes, _ = self.dac.encode(batch)
        return [codes[row, :, : frames_for_samples(t.numel())].to("cpu", torch.int32) for row, t in enumerate(tensors)]

    def encode(self, pcm: Any) -> torch.Tensor:
        """Codes int32 `[10, T]` of one mono 44.1 kHz clip."""
        return self.encode_batch([pcm])[0]

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Decode a batch of equally long code sequences `[B, 10, T]` in one call: float32 PCM `[B, T * 2048]`."""
        return self.decode_span(codes, 0)

    @torch.inference_mode()
    def decode_span(self, codes: torch.Tensor, skip: int) -> torch.Tensor:
        """`DAC.decode` in its two stages: the latent of all `T` frames (the quantizer's lookup, causal
        transformer and upsampling), then the waveform decoder on the latent from frame `skip` on."""
        codes = codes.to(self.device, torch.int64)
        batch = codes.shape[0]
        bucket = next((size for size in self.batch_buckets if size >= batch), batch)
        if bucket > batch:  # padding rows are decoded and dropped: batch items do not interact
            codes = torch.cat([codes, codes[:1].expand(bucket - batch, -1, -1)])
        latent = self.dac.quantizer.decode(codes)
        per_frame = latent.shape[-1] // codes.shape[2]
        # contiguous: a compiled decoder is specialised on strides too, and a slice of a longer latent has others
        # than the latent of a window that starts there (each would compile apart, at its first use)
        latent = latent[..., skip * per_frame :].contiguous()
        audio = self.graphs(latent) if self.graphs is not None else self._waveform(latent)
        return audio[:batch]

    def _waveform(self, latent: torch.Tensor) -> torch.Tensor:
        """The waveform decoder: latent `[B, C, L]` -> float32 PCM `[B, samples]`."""
        return self.decoder(latent)[:, 0].to(torch.float32)
