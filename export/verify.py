"""Stages 2 and 4: run an exported model (ONNX Runtime, or a TensorRT plan) and PyTorch on the same inputs.

The PyTorch reference is the serving path itself, not the traced module: the codec as `voicereel.engine.codec.Codec`
runs it (weight norms unfolded, exactly as the python-backend models load it), and the decode step as the engine's
`BatchedDualAR.decode_slow` / `fast_forward` with its in-place caches.

Inputs, per graph, "fixed" (the same every run, at the shapes serving uses) and "random" (seeded, random batch
sizes and lengths, so a dynamic axis that was traced as a constant shows up):
- codec_encoder: a 3 s chirp at batch 1; the chirp and two quieter ones at batch 3; random noise clips.
  Compared: the codes (fraction equal), and the audio those codes decode to (max abs, SNR), because one flipped
  code is better judged by what it sounds like than by its index.
- codec_decoder: the serving window (context + chunk frames) of the chirp's codes at batch 1 and 4; random
  codes of random lengths.
- t2s_slow_step: cache lengths 16, 128 and 512 (fewer if max_seq_len is smaller), rows at the first, middle and
  last position, then random positions; a text token in one row (its code embeddings must be ignored).
- t2s_fast_step: every codebook position (cache lengths 1..C) at batch 2, then random positions and batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from export.graphs import ExportSources, random_codes
from export.metrics import Figures, Tolerance, compare, worst
from export.names import CODEC_DECODER, CODEC_ENCODER, T2S_FAST_STEP, T2S_SLOW_STEP
from voicereel.engine.batched import FastCache, SlowCache
from voicereel.engine.codec import FRAME_SAMPLES, SAMPLE_RATE, ChunkPlan, Codec

Arrays = dict[str, np.ndarray]
Runner = Callable[[Arrays], Arrays]

FULL = "float32"  # ONNX Runtime and fp32 plans
REDUCED = "reduced"  # fp16 / bf16 plans

# Thresholds, by graph, compared output and precision class. Stated in export/README.md; keep them equal.
TOLERANCES: dict[str, dict[str, dict[str, Tolerance]]] = {
    CODEC_ENCODER: {
        "codes": {
            FULL: Tolerance(max_abs=math.inf, min_snr_db=-math.inf, min_match=0.999),
            REDUCED: Tolerance(max_abs=math.inf, min_snr_db=-math.inf, min_match=0.95),
        },
        "pcm_of_codes": {
            FULL: Tolerance(max_abs=0.1, min_snr_db=30.0),
            REDUCED: Tolerance(max_abs=1.0, min_snr_db=15.0),
        },
    },
    CODEC_DECODER: {
        "pcm": {FULL: Tolerance(max_abs=1e-4, min_snr_db=60.0), REDUCED: Tolerance(max_abs=2e-2, min_snr_db=30.0)},
    },
    T2S_SLOW_STEP: {
        "slow_hidden": {FULL: Tolerance(max_abs=1e-4, min_snr_db=60.0, relative=True)},
        "logits": {FULL: Tolerance(max_abs=1e-4, min_snr_db=60.0, relative=True)},
        "k_cache_out": {FULL: Tolerance(max_abs=1e-5, min_snr_db=80.0, relative=True)},
        "v_cache_out": {FULL: Tolerance(max_abs=1e-5, min_snr_db=80.0, relative=True)},
    },
    T2S_FAST_STEP: {
        "logits": {FULL: Tolerance(max_abs=1e-4, min_snr_db=60.0, relative=True)},
        "k_cache_out": {FULL: Tolerance(max_abs=1e-5, min_snr_db=80.0, relative=True)},
        "v_cache_out": {FULL: Tolerance(max_abs=1e-5, min_snr_db=80.0, relative=True)},
    },
}


@dataclass(frozen=True)
class Case:
    label: str
    kind: str  # fixed | random
    inputs: Arrays


@dataclass(frozen=True)
class ShapeLimits:
    """Largest batch and length (frames for the codec) a runner accepts; a TensorRT plan's profile MAX."""

    max_batch: int = 4
    max_frames: int = 160
    min_frames: int = 1


@dataclass
class Verification:
    graph: str
    precision: str
    cases: list[dict[str, Any]] = field(default_factory=list)
    worst: dict[str, Figures] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures and bool(self.cases)

    def as_json(self) -> dict[str, Any]:
        tolerances = TOLERANCES[self.graph]
        return {
            "passed": self.passed,
            "precision": self.precision,
            "worst": {name: figures.as_json() for name, figures in self.worst.items()},
            "tolerances": {name: tolerances[name][self.precision].as_json() for name in self.worst},
            "failures": self.failures,
            "cases": self.cases,
        }

    def summary(self) -> str:
        parts = []
        for name, figures in self.worst.items():
            if figures.match is not None:  # integer codes: the fraction equal is the figure that means something
                parts.append(f"{name}: match {figures.match:.4f}")
            else:
                parts.append(f"{name}: max abs {figures.max_abs:.3g}, SNR {_db(figures.snr_db)}")
        state = "ok" if self.passed else "FAILED"
        return f"{self.graph} [{self.precision}] {state} over {len(self.cases)} cases: " + "; ".join(parts)


def _db(value: float) -> str:
    return "inf dB" if math.isinf(value) and value > 0 else f"{value:.1f} dB"


def verify_graph(
    sources: ExportSources,
    name: str,
    runner: Runner,
    precision: str = FULL,
    seed: int = 0,
    limits: ShapeLimits | None = None,
    kinds: tuple[str, ...] = ("fixed", "random"),
) -> Verification:
    """Compare `runner` with the PyTorch serving path on every case of graph `name`."""
    limits = limits or ShapeLimits()
    result = Verification(name, precision)
    per_output: dict[str, list[Figures]] = {}
    rng = np.random.default_rng(seed)
    for case in _cases(sources, name, rng, limits):
        if case.kind not in kinds:
            continue
        reference = _reference(sources, name, case.inputs)
        candidate = runner(case.inputs)
        figures = _compare_case(sources, name, reference, candidate)
        record: dict[str, Any] = {"label": case.label, "kind": case.kind}
        for output, fig in figures.items():
            per_output.setdefault(output, []).append(fig)
            record[output] = fig.as_json()
            tolerance = TOLERANCES[name][output][precision]
            result.failures.extend(f"{case.label}: {output}: {problem}" for problem in tolerance.failures(fig))
        result.cases.append(record)
    result.worst = {output: worst(figs) for output, figs in per_output.items()}
    return result


def _compare_case(sources: ExportSources, name: str, reference: Arrays, candidate: Arrays) -> dict[str, Figures]:
    missing = sorted(set(reference) - set(candidate))
    if missing:
        raise ValueError(f"{name}: the exported model did not return {missing}")
    figures = {output: compare(reference[output], candidate[output]) for output in reference}
    if name == CODEC_ENCODER:
        if np.array_equal(reference["codes"], candidate["codes"]):
            # same codes through the same decoder: the same audio, no need to decode it twice to know
            figures["pcm_of_codes"] = Figures(max_abs=0.0, snr_db=math.inf, peak=math.nan)
        else:
            codec = Codec(sources.reference_dac)
            ref_pcm = codec.decode_codes(torch.from_numpy(reference["codes"])).numpy()
            cand_codes = np.clip(candidate["codes"], 0, None)  # decode what came out, whatever it is
            figures["pcm_of_codes"] = compare(ref_pcm, codec.decode_codes(torch.from_numpy(cand_codes)).numpy())
    return figures


# --- PyTorch references ---------------------------------------------------------------------------------------


@torch.inference_mode()
def _reference(sources: ExportSources, name: str, inputs: Arrays) -> Arrays:
    tensors = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in inputs.items()}
    if name == CODEC_ENCODER:
        codes = Codec(sources.reference_dac).encode_batch(list(tensors["pcm"]))
        return {"codes": torch.stack(codes).numpy()}
    if name == CODEC_DECODER:
        return {"pcm": Codec(sources.reference_dac).decode_codes(tensors["codes"]).numpy()}
    engine = sources.engine
    if name == T2S_SLOW_STEP:
        cache = SlowCache(tensors["k_cache"].clone(), tensors["v_cache"].clone())
        batch = tensors["frame"].shape[0]
        hidden = engine.decode_slow(
            cache, tensors["frame"], tensors["position"], torch.arange(batch), int(cache.k.shape[3])
        )
        return {
            "slow_hidden": hidden.numpy(),
            "logits": engine.slow_logits(hidden).numpy(),
            "k_cache_out": cache.k.numpy(),
            "v_cache_out": cache.v.numpy(),
        }
    if name == T2S_FAST_STEP:
        fast = FastCache(tensors["k_cache"].clone(), tensors["v_cache"].clone())
        index = int(tensors["codebook_index"])
        if index == 0:
            x = engine.fast_input(tensors["slow_hidden"])
        else:
            x = engine.fast_code_input(tensors["previous_code"])
        logits, after = engine.fast_forward(fast, x, index)
        return {
            "logits": logits.numpy(),
            "k_cache_out": after.k.numpy(),
            "v_cache_out": after.v.numpy(),
        }
    raise KeyError(name)


# --- inputs ---------------------------------------------------------------------------------------------------


def chirp(seconds: float = 3.0) -> np.ndarray:
    """A deterministic test signal: a 100 Hz -> 8 kHz exponential sweep at half scale, float32."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0, f1 = 100.0, 8000.0
    phase = 2 * np.pi * f0 * seconds / np.log(f1 / f0) * (np.exp(t / seconds * np.log(f1 / f0)) - 1)
    return (0.5 * np.sin(phase)).astype(np.float32)


def _frames_padded(signal: np.ndarray) -> np.ndarray:
    frames = math.ceil(signal.size / FRAME_SAMPLES)
    padded = np.zeros(frames * FRAME_SAMPLES, dtype=np.float32)
    padded[: signal.size] = signal
    return padded


def _cases(sources: ExportSources, name: str, rng: np.random.Generator, limits: ShapeLimits) -> Iterator[Case]:
    if name == CODEC_ENCODER:
        yield from _encoder_cases(rng, limits)
    elif name == CODEC_DECODER:
        yield from _decoder_cases(sources, rng, limits)
    elif name == T2S_SLOW_STEP:
        yield from _slow_cases(sources, rng)
    elif name == T2S_FAST_STEP:
        yield from _fast_cases(sources, rng)
    else:
        raise KeyError(name)


def _encoder_cases(rng: np.random.Generator, limits: ShapeLimits) -> Iterator[Case]:
    frames = min(limits.max_frames, math.ceil(3.0 * SAMPLE_RATE / FRAME_SAMPLES))
    signal = _frames_padded(chirp())[: frames * FRAME_SAMPLES]
    yield Case(f"chirp {frames} frames, batch 1", "fixed", {"pcm": signal[None]})
    if limits.max_batch >= 3:
        # not digital silence: with a random checkpoint's zero biases it encodes to a latent of exactly 0, which
        # is equally far from every codebook entry, so rounding alone picks the index (any answer is right)
        batch = np.stack([signal, 0.3 * signal, 0.01 * signal[::-1]])
        yield Case(f"chirp, quiet chirp, reversed chirp at -46 dB; {frames} frames, batch 3", "fixed", {"pcm": batch})
    for _ in range(3):
        batch = int(rng.integers(1, min(limits.max_batch, 3) + 1))
        count = int(rng.integers(limits.min_frames, min(limits.max_frames, 48) + 1))
        amplitude = float(rng.uniform(0.05, 0.9))
        noise = rng.uniform(-amplitude, amplitude, size=(batch, count * FRAME_SAMPLES)).astype(np.float32)
        yield Case(f"noise x{amplitude:.2f}, {count} frames, batch {batch}", "random", {"pcm": noise})


def _decoder_cases(sources: ExportSources, rng: np.random.Generator, limits: ShapeLimits) -> Iterator[Case]:
    window = min(limits.max_frames, ChunkPlan().window_frames)
    with torch.inference_mode():
        codes = Codec(sources.reference_dac).encode(torch.from_numpy(chirp())).numpy()
    reps = math.ceil((window + 3 * limits.max_batch) / codes.shape[1])
    long = np.tile(codes, (1, reps))
    yield Case(f"chirp codes, serving window {window} frames, batch 1", "fixed", {"codes": long[None, :, :window]})
    batch = min(4, limits.max_batch)
    shifted = np.stack([long[:, 3 * i : 3 * i + window] for i in range(batch)])
    yield Case(f"chirp codes, serving window {window} frames, batch {batch}", "fixed", {"codes": shifted})
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**31)))
    for _ in range(3):
        batch = int(rng.integers(1, limits.max_batch + 1))
        count = int(rng.integers(limits.min_frames, limits.max_frames + 1))
        yield Case(
            f"random codes, {count} frames, batch {batch}",
            "random",
            {"codes": random_codes(batch, count, generator).numpy()},
        )


def _slow_cases(sources: ExportSources, rng: np.random.Generator) -> Iterator[Case]:
    engine = sources.engine
    config = engine.config
    begin, semantic = engine.tokens.semantic_begin_id, engine.tokens.num_semantic

    def case(label: str, kind: str, positions: np.ndarray, cache_len: int, text_row: bool) -> Case:
        batch = positions.size
        frame = np.zeros((batch, engine.num_codebooks + 1), dtype=np.int64)
        frame[:, 0] = begin + rng.integers(0, semantic, size=batch)
        frame[:, 1:] = rng.integers(0, engine.residual_size, size=(batch, engine.num_codebooks))
        if text_row:
            frame[0, 0] = int(rng.integers(0, 256))  # a byte token: its codes must not count
        shape = (config.n_layer, batch, config.n_local_heads, cache_len, config.head_dim)
        k = rng.standard_normal(shape).astype(np.float32)
        v = rng.standard_normal(shape).astype(np.float32)
        inputs: Arrays = {"frame": frame, "position": positions.astype(np.int64), "k_cache": k, "v_cache": v}
        return Case(label, kind, inputs)

    for cache_len in [n for n in (16, 128, 512) if n <= config.max_seq_len]:
        fixed = np.array([0, cache_len // 2, cache_len - 1])
        yield case(f"cache {cache_len}, positions {fixed.tolist()}", "fixed", fixed, cache_len, text_row=True)
        batch = int(rng.integers(1, 5))
        positions = rng.integers(0, cache_len, size=batch)
        yield case(f"cache {cache_len}, positions {positions.tolist()}", "random", positions, cache_len, False)


def _fast_cases(sources: ExportSources, rng: np.random.Generator) -> Iterator[Case]:
    engine = sources.engine
    config = engine.config

    def case(label: str, kind: str, index: int, batch: int) -> Case:
        shape = (config.n_fast_layer, batch, config.fast_n_local_heads, engine.num_codebooks, config.fast_head_dim)
        inputs: Arrays = {
            "slow_hidden": rng.standard_normal((batch, config.dim)).astype(np.float32),
            "previous_code": rng.integers(0, engine.residual_size, size=batch).astype(np.int64),
            "codebook_index": np.array(index, dtype=np.int64),
            "k_cache": rng.standard_normal(shape).astype(np.float32),
            "v_cache": rng.standard_normal(shape).astype(np.float32),
        }
        return Case(label, kind, inputs)

    for index in range(engine.num_codebooks):
        yield case(f"codebook position {index}, batch 2", "fixed", index, 2)
    for _ in range(3):
        index, batch = int(rng.integers(0, engine.num_codebooks)), int(rng.integers(1, 6))
        yield case(f"codebook position {index}, batch {batch}", "random", index, batch)


def onnxruntime_runner(path: Any, threads: int = 1) -> Runner:
    """Run an ONNX file on ONNX Runtime's CPU provider."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]

    def run(inputs: Mapping[str, np.ndarray]) -> Arrays:
        return dict(zip(names, session.run(names, dict(inputs)), strict=True))

    return run
