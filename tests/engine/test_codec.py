"""Codec: encode shapes and validation, causality, receptive field, and chunked decoding against whole decoding.

Stated tolerance (also in model_repository/README.md): decoding in fixed windows of `ChunkPlan()` (64 frames
rendered + 64 frames of left context) differs from decoding the whole sequence by at most 1e-3 of full scale
(-60 dBFS) in any sample. Measured on the tiny codec: 3e-6 as initialised, 2.5e-4 with its attention made 100x
stronger (LayerScale 1.0 instead of 0.01), which is the case where the attention tail past the context matters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from voicereel.engine.codec import (
    DECODER_MARGIN_FRAMES,
    FRAME_SAMPLES,
    NUM_CODEBOOKS,
    SAMPLE_RATE,
    ChunkPlan,
    Codec,
    DecodeWindow,
    bucket_sizes,
    make_window,
    plan_windows,
    validate_codes,
    window_spans,
)

CHUNKED_TOLERANCE = 1e-3  # max abs sample error, full scale 1.0


def random_codes(frames: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    semantic = torch.randint(0, 4096, (1, frames), generator=gen)
    residual = torch.randint(0, 1024, (9, frames), generator=gen)
    return torch.cat([semantic, residual]).to(torch.int32)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0, 0.1, int(seconds * SAMPLE_RATE)), -1, 1).astype(np.float32)


def test_encode_30_seconds_shape_dtype_and_ranges(codec: Codec) -> None:
    codes = codec.encode(noise(30.0))
    assert codes.dtype == torch.int32
    assert codes.shape == (NUM_CODEBOOKS, 646)  # ceil(30 * 44100 / 2048): 21.53 frames per second
    assert int(codes[0].min()) >= 0 and int(codes[0].max()) < 4096
    assert int(codes[1:].min()) >= 0 and int(codes[1:].max()) < 1024
    assert len(torch.unique(codes[0])) > 50  # random audio spreads over the semantic codebook


def test_encode_batch_of_mixed_lengths_equals_encoding_each_alone(codec: Codec) -> None:
    """Right padding is exact because the encoder is causal: batched requests get the codes they get alone."""
    clips = [noise(3.0, seed=1), noise(1.2, seed=2), noise(0.01, seed=3)]
    batched = codec.encode_batch(clips)
    assert [c.shape[1] for c in batched] == [65, 26, 1]
    for clip, codes in zip(clips, batched, strict=True):
        assert torch.equal(codes, codec.encode(clip))


@pytest.mark.parametrize(
    ("pcm", "message"),
    [
        (np.zeros((2, 100), np.float32), r"mono with shape \[samples\]"),
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.0, np.nan], np.float32), "NaN"),
        (np.array([0.0, np.inf], np.float32), "infinite"),
        (np.array([0.5, 1.5], np.float32), r"\[-1, 1\]"),
        (np.array([1, 2], np.int16), "float samples"),
    ],
)
def test_encode_rejects_bad_pcm(codec: Codec, pcm: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        codec.encode(pcm)


def test_encode_rejects_clips_past_the_attention_tables(codec: Codec) -> None:
    assert codec.max_encode_samples == 16384 * 512  # 190 s: the encoder transformer's block_size
    with pytest.raises(ValueError, match="exceeds the encoder"):
        codec.encode(np.zeros(codec.max_encode_samples + 1, np.float32))


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        (torch.zeros(9, 4, dtype=torch.int32), r"shape \[10, frames\]"),
        (torch.zeros(10, dtype=torch.int32), r"shape \[10, frames\]"),
        (torch.zeros(10, 0, dtype=torch.int32), "empty"),
        (torch.zeros(10, 4, dtype=torch.float32), "integers"),
        (torch.full((10, 4), 4096, dtype=torch.int32), "semantic codebook 0 must be in 0..4095"),
        (torch.cat([torch.zeros(1, 4), torch.full((9, 4), 1024)]).int(), "residual codebooks 1..9 must be in 0..1023"),
        (torch.full((10, 4), -1, dtype=torch.int32), "0..4095, got values in -1..-1"),
    ],
)
def test_bad_codes_are_rejected(codec: Codec, codes: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        codec.decode(codes)


def test_decode_length_and_range(codec: Codec) -> None:
    pcm = codec.decode(random_codes(40))
    assert pcm.shape == (40 * FRAME_SAMPLES,) and pcm.dtype == torch.float32
    assert float(pcm.abs().max()) <= 1.0  # the decoder ends in tanh
    assert float(pcm.std()) > 1e-3


def test_decoder_is_causal_and_its_convolutions_reach_under_6_frames(codec: Codec, tiny_checkpoint: Path) -> None:
    """Change the codes of frame 20: nothing before frame 20 moves (causal), and with the attention switched off
    (LayerScale 0) nothing past frame 26 moves: the convolutional receptive field. The tiny codec keeps the real
    codec's kernels, strides and dilations, so this figure is the real codec's too."""
    conv_only = Codec.from_checkpoint(tiny_checkpoint)
    for module in conv_only.dac.modules():
        if type(module).__name__ == "LayerScale":
            module.gamma.data.zero_()
    codes = random_codes(60, seed=5)
    changed = codes.clone()
    changed[:, 20] = (changed[:, 20] + 7) % 1024
    for model, reach in ((codec, 60), (conv_only, 26)):
        diff = (model.decode(codes) - model.decode(changed)).abs()
        moved = torch.nonzero(diff > 1e-6).flatten()
        assert int(moved.min()) >= 20 * FRAME_SAMPLES, "output before the changed frame moved: not causal"
        assert int(moved.max()) < reach * FRAME_SAMPLES


def test_waveform_decoder_reaches_back_under_the_margin(codec: Codec) -> None:
    """The waveform decoder run on the latent from frame s on renders frames past s + margin exactly as the whole
    latent does; with too little margin it does not (so the margin is what buys exactness)."""
    codes = random_codes(48, seed=6).long()[None]
    with torch.inference_mode():
        latent = codec.dac.quantizer.decode(codes)
        per_frame = latent.shape[-1] // 48
        whole = codec.dac.decoder(latent)[0, 0]
        errors = {}
        for margin in (0, 2, DECODER_MARGIN_FRAMES):
            start = 32 - margin
            part = codec.dac.decoder(latent[..., start * per_frame :])[0, 0]
            errors[margin] = float((part[margin * FRAME_SAMPLES :] - whole[32 * FRAME_SAMPLES :]).abs().max())
    print(f"max abs error of the rendered frames by margin: {errors}")
    assert errors[DECODER_MARGIN_FRAMES] < 1e-6
    assert errors[0] > 1e-3 and errors[2] > 1e-6


def reference_windows(codec: Codec, windows: list[DecodeWindow]) -> list[torch.Tensor]:
    """Each window decoded whole, alone, and cut to its rendered frames: what the trimmed decode must equal."""
    return [
        codec.decode_codes(w.codes[None])[0, w.context_frames * FRAME_SAMPLES : w.num_frames * FRAME_SAMPLES]
        for w in windows
    ]


@contextmanager
def shapes_restored(codec: Codec) -> Iterator[Codec]:
    """The module's shared codec, its fixed shapes (`fix_shapes`, or set by hand) undone afterwards."""
    try:
        yield codec
    finally:
        codec.batch_buckets, codec.fixed_spans, codec.fixed_skip = (), (), 0


class DecoderLengths:
    """Records (batch, latent length) of every waveform-decoder call, through a forward pre-hook."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.lengths: list[tuple[int, int]] = []

    def __enter__(self) -> DecoderLengths:
        def record(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            self.lengths.append((args[0].shape[0], args[0].shape[-1]))

        self.handle = self.codec.dac.decoder.register_forward_pre_hook(record)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def mixed_windows(plan: ChunkPlan) -> list[DecodeWindow]:
    """An utterance's first, second, steady and last windows, and another utterance's first, interleaved."""
    one = plan_windows(validate_codes(random_codes(200, seed=7)), plan)
    other = plan_windows(validate_codes(random_codes(30, seed=8)), plan)
    return [one[2], one[0], other[0], one[-1], one[1]]


def test_windows_decode_only_their_frames_plus_margin_and_equal_whole_windows(codec: Codec) -> None:
    plan = ChunkPlan(chunk_frames=64, context_frames=64, first_chunk_frames=8)
    windows = mixed_windows(plan)
    assert [(w.context_frames, w.num_frames) for w in windows] == [(64, 128), (0, 8), (0, 8), (64, 128), (8, 72)]
    expected = reference_windows(codec, windows)
    with DecoderLengths(codec) as seen:
        got = codec.decode_windows(windows)
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape and float((a - b).abs().max()) < 1e-5
    per_frame = 4  # latent steps per code frame (the quantizer upsamples twice by 2)
    # no-context windows (cut after frame 72), then full-context ones from 56 = 64 - margin on: 72 of 128 frames
    assert seen.lengths == [(3, 72 * per_frame), (2, (128 - 64 + DECODER_MARGIN_FRAMES) * per_frame)]


def test_compiled_decoders_see_three_lengths_and_first_windows_decode_only_their_frames(codec: Codec) -> None:
    """compile_decoder keeps the waveform decoder at the lengths of `window_spans` (first chunk, chunk + margin,
    whole window) so compiled shapes stay few, and a first window decodes its 8 frames, not a whole window; set
    here without compiling (the lengths, not the compiler, are under test)."""
    plan = ChunkPlan(chunk_frames=64, context_frames=64, first_chunk_frames=8)
    windows = mixed_windows(plan)
    expected = reference_windows(codec, windows)
    with shapes_restored(codec):
        codec.fixed_spans, codec.fixed_skip = window_spans(plan), plan.context_frames - DECODER_MARGIN_FRAMES
        with DecoderLengths(codec) as seen:
            got = codec.decode_windows(windows)
        assert [codec.window_call(w) for w in windows] == [(56, 128), (0, 8), (0, 8), (56, 128), (0, 72)]
        short = plan_windows(validate_codes(random_codes(30, seed=9)), plan)  # (0, 8), (8, 30)
        assert [codec.window_call(w) for w in short] == [(0, 8), (0, 72)]
        codec.batch_buckets = (1, 2)
        with DecoderLengths(codec) as warmed:
            codec.warm_up(plan)
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape and float((a - b).abs().max()) < 1e-5
    # first windows first, then the second window (context 8: no skip, 72 frames), then the full-context ones
    assert seen.lengths == [(2, 8 * 4), (1, 72 * 4), (2, 72 * 4)]
    # the warm-up compiles every (bucket, length) a call can use
    assert warmed.lengths == [(size, span * 4) for size in (1, 2) for span in (8, 72, 128)]


@pytest.mark.parametrize(
    ("plan", "spans"),
    [
        (ChunkPlan(64, 64, 8), (8, 72, 128)),
        (ChunkPlan(64, 64, 0), (72, 128)),
        (ChunkPlan(64, 64, 64), (64, 72, 128)),
        (ChunkPlan(64, 4, 8), (8, 68)),  # context under the margin: nothing to skip, chunk + context is the window
    ],
)
def test_window_spans(plan: ChunkPlan, spans: tuple[int, ...]) -> None:
    assert window_spans(plan) == spans


def test_windows_are_left_aligned_and_the_first_has_no_context() -> None:
    codes = validate_codes(random_codes(150))
    plan = ChunkPlan(chunk_frames=64, context_frames=48)
    windows = plan_windows(codes, plan)
    assert [(w.context_frames, w.num_frames) for w in windows] == [(0, 64), (48, 112), (48, 70)]
    assert all(w.codes.shape == (10, 112) and w.codes.dtype == torch.int32 for w in windows)
    assert torch.equal(windows[1].codes, codes[:, 16:128].int())
    assert torch.equal(windows[2].codes[:, :70], codes[:, 80:150].int())
    assert int(windows[2].codes[:, 70:].abs().sum()) == 0
    with pytest.raises(ValueError, match="does not fit"):
        make_window(codes, 0, 65, plan)


def test_windows_in_one_batch_equal_windows_alone(codec: Codec) -> None:
    windows = plan_windows(validate_codes(random_codes(150, seed=2)), ChunkPlan())
    together = codec.decode_windows(windows)
    assert [p.numel() for p in together] == [64 * FRAME_SAMPLES, 64 * FRAME_SAMPLES, 22 * FRAME_SAMPLES]
    for window, pcm in zip(windows, together, strict=True):
        alone = codec.decode_windows([window])[0]
        assert float((alone - pcm).abs().max()) < 1e-5


@pytest.mark.parametrize("attention_scale", [None, 1.0], ids=["as-initialised", "attention-x100"])
def test_chunked_decoding_equals_whole_decoding_within_tolerance(
    codec: Codec, tiny_checkpoint: Path, attention_scale: float | None
) -> None:
    model = codec
    if attention_scale is not None:
        model = Codec.from_checkpoint(tiny_checkpoint)
        for module in model.dac.modules():
            if type(module).__name__ == "LayerScale":
                module.gamma.data.fill_(attention_scale)
    codes = random_codes(400, seed=3)  # 18.6 s: seven windows, several past one attention window (128)
    whole = model.decode(codes)
    chunked = model.decode_chunked(codes, ChunkPlan(), batch_size=4)
    assert chunked.shape == whole.shape
    error = float((chunked - whole).abs().max())
    print(f"max abs chunked-vs-whole error ({attention_scale=}): {error:.2e}")
    assert error <= CHUNKED_TOLERANCE
    # and the context is what buys it: without context the joins are audibly wrong
    no_context = model.decode_chunked(codes, ChunkPlan(chunk_frames=64, context_frames=0))
    assert float((no_context - whole).abs().max()) > 10 * CHUNKED_TOLERANCE


def test_after_the_warm_up_no_served_window_compiles_the_decoder(tiny_checkpoint: Path) -> None:
    """Every (batch, length, strides) the waveform decoder sees while serving was compiled by `warm_up`: no request
    pays for a compile. One graph per length serves every batch (a dynamic size; a lone window is padded to two).
    (A slice of a longer latent has other strides than a window's own latent; the compiled decoder is specialised on
    strides, so each such input compiled apart at its first use on the GPU.)"""
    import torch._dynamo

    torch._dynamo.reset()
    compiled: list[tuple[int, ...]] = []

    def counting(graph: torch.fx.GraphModule, inputs: list[Any]) -> object:
        # the latent: the first input that is a tensor but not a parameter (the batch size, a symbol, comes first)
        latent = next(x for x in inputs if isinstance(x, torch.Tensor) and not isinstance(x, torch.nn.Parameter))
        assert isinstance(inputs[0], torch.SymInt)  # the batch is a dynamic size
        compiled.append(tuple(latent.shape))
        return graph.forward

    plan = ChunkPlan(chunk_frames=64, context_frames=64, first_chunk_frames=8)
    served = Codec.from_checkpoint(tiny_checkpoint)
    served.compile_decoder(max_batch=4, plan=plan, backend=counting)
    served.warm_up(plan)
    assert served.batch_buckets == (2, 4)
    assert [shape[2] for shape in compiled] == [8 * 4, 72 * 4, 128 * 4]  # first chunk, chunk + margin, whole window
    warmed = len(compiled)
    windows = [*mixed_windows(plan), *plan_windows(validate_codes(random_codes(30, seed=10)), plan)]
    expected = reference_windows(served, windows)
    got = [pcm for size in (1, 2, 3, 4) for pcm in served.decode_windows(windows[:size])]
    got += served.decode_windows(windows[4:])
    torch._dynamo.reset()
    assert compiled[warmed:] == []
    order = [index for size in (1, 2, 3, 4) for index in range(size)] + list(range(4, len(windows)))
    for a, b in zip(got, [expected[index] for index in order], strict=True):
        assert a.shape == b.shape and float((a - b).abs().max()) < 1e-5


def test_bucket_padding_does_not_change_the_windows(codec: Codec) -> None:
    """compile_decoder pads batches up to bucket sizes; the padding rows must not leak into real ones."""
    assert bucket_sizes(32) == (1, 2, 4, 8, 16, 24, 32)
    assert bucket_sizes(12) == (1, 2, 4, 8, 12)
    assert bucket_sizes(20) == (1, 2, 4, 8, 16, 20)
    assert bucket_sizes(3) == (1, 2, 3)
    assert bucket_sizes(1) == (1,)
    windows = plan_windows(validate_codes(random_codes(192, seed=4)), ChunkPlan())
    plain = codec.decode_windows(windows)
    codec.batch_buckets = (4,)
    try:
        padded = codec.decode_windows(windows)
    finally:
        codec.batch_buckets = ()
    for a, b in zip(plain, padded, strict=True):
        assert a.shape == b.shape and float((a - b).abs().max()) < 1e-5


def test_the_served_codec_decodes_the_same(codec: Codec, tiny_checkpoint: Path) -> None:
    """Weight norms folded and dilated convs phased (Codec.for_serving): the same PCM, within float rounding."""
    served = Codec.for_serving(tiny_checkpoint, "cpu", torch.float32)
    modules = list(served.dac.modules())
    assert not any(hasattr(m, "parametrizations") or hasattr(m, "weight_g") for m in modules)  # all folded
    dilated = [m for m in served.dac.decoder.modules() if type(m) is torch.nn.Conv1d and m.dilation[0] > 1]
    wrapped = [m.conv for m in modules if type(m).__name__ == "_PhasedDilatedConv"]
    assert len(dilated) > 0 and all(any(conv is w for w in wrapped) for conv in dilated)  # every one phased
    codes = torch.stack([torch.randint(0, 4096, (24,)), *torch.randint(0, 1024, (9, 24))])
    torch.testing.assert_close(served.decode(codes), codec.decode(codes), atol=1e-5, rtol=0)


@pytest.mark.parametrize("length", [64, 61, 55])
@pytest.mark.parametrize("dilation", [3, 9])
def test_a_phased_dilated_conv_equals_the_dilated_conv(length: int, dilation: int) -> None:
    from voicereel.engine.codec import phase_dilated_convs

    torch.manual_seed(length * dilation)
    holder = torch.nn.Sequential(torch.nn.Conv1d(6, 5, 7, dilation=dilation))
    x = torch.randn(3, length, 6).transpose(1, 2)  # not contiguous
    expected = holder(x)
    assert phase_dilated_convs(holder) == 1 and type(holder[0]) is not torch.nn.Conv1d
    torch.testing.assert_close(holder(x), expected, atol=1e-5, rtol=0)


def test_a_decoder_that_fails_to_compile_falls_back_to_eager(
    tiny_checkpoint: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A compile error at the warm-up (inductor failed on the real codec's shapes on an H100) must not stop
    codec_decoder from loading: the eager decoder serves, the failure is logged, and the output is unchanged."""
    import torch._dynamo

    torch._dynamo.reset()

    def failing(graph: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> object:
        raise TypeError("inductor could not split this loop")

    plan = ChunkPlan(chunk_frames=64, context_frames=64, first_chunk_frames=8)
    served = Codec.from_checkpoint(tiny_checkpoint)
    eager = served.decoder
    served.compile_decoder(max_batch=2, plan=plan, backend=failing)
    assert served.decoder is not eager and served.batch_buckets == (2,)
    with caplog.at_level("ERROR", logger="voicereel.engine.codec"):
        assert served.warm_up(plan) is False
    torch._dynamo.reset()
    assert served.decoder is eager
    assert served.batch_buckets == (1, 2)  # eager again, a lone window decodes alone
    assert "compiled waveform decoder failed at warm-up" in caplog.text
    windows = mixed_windows(plan)
    for a, b in zip(served.decode_windows(windows), reference_windows(served, windows), strict=True):
        assert a.shape == b.shape and float((a - b).abs().max()) < 1e-5


def test_a_warm_up_failure_without_a_compiled_decoder_is_raised(codec: Codec, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(codes: torch.Tensor, skip: int) -> torch.Tensor:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(codec, "decode_span", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        codec.warm_up(ChunkPlan())


def test_inductor_compiles_the_decoder_without_its_tiling_analysis(
    tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the analysis on, torch 2.11's inductor failed on the real codec's decoder on an H100 (a malformed
    CantSplit, twelfth and sixteenth sessions); compile_decoder turns it off for inductor, and only there."""
    seen: list[dict[str, Any]] = []

    def recording(model: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return model

    monkeypatch.setattr(torch, "compile", recording)
    plan = ChunkPlan(chunk_frames=64, context_frames=64, first_chunk_frames=8)
    Codec.from_checkpoint(tiny_checkpoint).compile_decoder(max_batch=2, plan=plan)
    Codec.from_checkpoint(tiny_checkpoint).compile_decoder(max_batch=2, plan=plan, backend="aot_eager")
    assert seen[0]["backend"] == "inductor" and seen[0]["options"] == {"triton.coalesce_tiling_analysis": False}
    assert seen[1]["backend"] == "aot_eager" and seen[1]["options"] is None
