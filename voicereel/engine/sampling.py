"""Batched token sampling with per-row parameters and a counter-based random stream.

Every row of a batch has its own temperature, top-p, repetition penalty and seed. The random numbers of
a row are a pure function of ``(seed, frame index, stream, vocabulary index)`` (a 32-bit integer hash),
so what a request samples never depends on which other requests share the batch, and nothing here
synchronises with the host: the whole function can live inside a CUDA graph.

Semantics follow upstream fish-speech's sampler: repetition penalty on the recent window (divide positive
logits, multiply negative ones), then top-p on the penalised logits (a token is dropped once the
cumulative probability before temperature exceeds ``top_p``; the best token always stays), then
temperature, then a draw. ``temperature <= 0`` means greedy (argmax of the penalised logits).
The draw is the exponential race (``argmax(p / E)``, ``E ~ Exp(1)``), which samples exactly from ``p``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """``x * constant mod 2**32`` for int64 ``x`` in [0, 2**32) without int64 overflow."""
    lo, hi = constant & 0xFFFF, constant >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _MASK32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser (xor-shift-multiply, "lowbias32" constants) on int64 tensors."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def row_keys(seed: torch.Tensor, counter: torch.Tensor, stream: int | torch.Tensor) -> torch.Tensor:
    """One 32-bit key per row for (seed, counter, stream); ``seed``/``counter`` are int64 ``[B]``."""
    key = mix32(counter * 64 + stream + 0x9E3779B9)
    key = mix32(key ^ ((seed >> 32) & _MASK32))
    return mix32(key ^ (seed & _MASK32))


def uniform_noise(keys: torch.Tensor, index_hash: torch.Tensor) -> torch.Tensor:
    """Uniform floats in (0, 1), ``[B, V]``, from row keys ``[B]`` and hashed vocabulary indices ``[V]``."""
    bits = mix32(keys[:, None] ^ index_hash[None, :]) >> 8
    return (bits.to(torch.float32) + 0.5) * (1.0 / (1 << 24))


def index_hash(size: int, device: torch.device) -> torch.Tensor:
    """Hashed vocabulary indices; constant per vocabulary size, so callers compute it once."""
    return mix32(torch.arange(size, device=device, dtype=torch.int64) * 2 + 1)


@dataclass
class SamplingRows:
    """Per-row sampling parameters, all ``[B]`` tensors on the model's device."""

    temperature: torch.Tensor  # float32; <= 0 means greedy
    top_p: torch.Tensor  # float32 in (0, 1]
    repetition_penalty: torch.Tensor  # float32 > 0; 1 disables
    seed: torch.Tensor  # int64

    def narrow(self, start: int, stop: int) -> SamplingRows:
        """Rows ``[start, stop)`` as views (writes go to this object's tensors)."""
        return SamplingRows(
            self.temperature[start:stop],
            self.top_p[start:stop],
            self.repetition_penalty[start:stop],
            self.seed[start:stop],
        )


def penalize(
    logits: torch.Tensor, window: torch.Tensor, window_valid: torch.Tensor, penalty: torch.Tensor
) -> torch.Tensor:
    """Apply the repetition penalty to tokens seen in ``window`` (``[B, W]`` ids; invalid entries ignored).

    Seen tokens by comparison with the window's few ids (no scatter: compiled, one kernel with the penalty)."""
    vocab = torch.arange(logits.shape[-1], device=logits.device)
    seen = ((window[:, :, None] == vocab) & window_valid[:, :, None]).any(dim=1)
    factor = penalty[:, None]
    penalized = torch.where(logits < 0, logits * factor, logits / factor)
    return torch.where(seen, penalized, logits)


def top_p_filter(logits: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Mask (to -inf) the tail beyond cumulative probability ``top_p`` per row; the best token stays."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative > top_p[:, None]
    drop_sorted[:, 0] = False
    drop = torch.zeros_like(drop_sorted).scatter_(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def probabilities(
    logits: torch.Tensor, rows: SamplingRows, window: torch.Tensor, window_valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampling distribution ``[B, V]`` (penalty, top-p, temperature) and the penalised logits."""
    penalized = penalize(logits.float(), window, window_valid, rows.repetition_penalty)
    filtered = top_p_filter(penalized, rows.top_p)
    probs = torch.softmax(filtered / rows.temperature.clamp(min=1e-5)[:, None], dim=-1)
    return probs, penalized


def sample(
    logits: torch.Tensor,
    rows: SamplingRows,
    window: torch.Tensor,
    window_valid: torch.Tensor,
    counter: torch.Tensor,
    stream: int | torch.Tensor,
    vocab_hash: torch.Tensor,
) -> torch.Tensor:
    """Draw one token per row from ``logits`` ``[B, V]``; returns int64 ``[B]``.

    ``counter`` (int64 ``[B]``) and ``stream`` select the random numbers: callers pass the row's frame
    index and which head of the frame is being sampled, so no two draws of a request share noise.
    """
    return sample_tensors(
        logits,
        rows.temperature,
        rows.top_p,
        rows.repetition_penalty,
        rows.seed,
        window,
        window_valid,
        counter,
        stream,
        vocab_hash,
    )


def sample_tensors(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    repetition_penalty: torch.Tensor,
    seed: torch.Tensor,
    window: torch.Tensor,
    window_valid: torch.Tensor,
    counter: torch.Tensor,
    stream: int | torch.Tensor,
    vocab_hash: torch.Tensor,
) -> torch.Tensor:
    """``sample`` over plain tensors (what ``torch.compile`` gets; ``stream`` may be a 0-dim int64 tensor)."""
    rows = SamplingRows(temperature, top_p, repetition_penalty, seed)
    probs, penalized = probabilities(logits, rows, window, window_valid)
    exponential = -torch.log(uniform_noise(row_keys(seed, counter, stream), vocab_hash))
    drawn = (probs / exponential).argmax(dim=-1)
    return torch.where(temperature > 0, drawn, penalized.argmax(dim=-1))
