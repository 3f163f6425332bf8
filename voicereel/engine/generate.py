"""What one generation request is: its inputs, its limits, how it reports back.

A request carries the target text already split into chunks, the voice prompt (reference turns),
sampling parameters and two callbacks: ``on_codes`` receives code chunks ``[num_codebooks, n]`` (int32,
CPU) as frames are produced, ``on_done`` is called exactly once with the reason generation stopped.
Callbacks run on the engine's thread; they must be quick (hand off, do not block).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import torch

from voicereel.engine.prompt import VoiceTurn

# Upstream fish-speech's defaults.
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.8
DEFAULT_REPETITION_PENALTY = 1.1


class FinishReason(StrEnum):
    end = "end"  # the model emitted <|im_end|> on the last chunk
    length = "length"  # a frame budget ran out (per chunk or the request's cap)
    cancelled = "cancelled"
    error = "error"


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling; ``temperature == 0`` is greedy. ``seed`` None draws a random one."""

    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY
    seed: int | None = None

    def validated(self) -> SamplingParams:
        """Range-check (upstream's ranges, plus greedy); fills a random seed. Raises ValueError."""
        if not (math.isfinite(self.temperature) and 0 <= self.temperature < 2):
            raise ValueError("temperature must be in [0, 2)")
        if not (math.isfinite(self.top_p) and 0 < self.top_p <= 1):
            raise ValueError("top_p must be in (0, 1]")
        if not (math.isfinite(self.repetition_penalty) and 0 < self.repetition_penalty < 2):
            raise ValueError("repetition_penalty must be in (0, 2)")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise ValueError("seed must be in [0, 2**63)")
        seed = secrets.randbits(63) if self.seed is None else self.seed
        return SamplingParams(self.temperature, self.top_p, self.repetition_penalty, seed)


def chunk_seed(seed: int, chunk_index: int) -> int:
    """Seed of a request's chunk: the request seed for chunk 0, a derived one after (distinct streams)."""
    if chunk_index == 0:
        return seed
    return (seed ^ (chunk_index * 0x9E3779B97F4A7C15)) & (2**63 - 1)


@dataclass(frozen=True)
class FrameBudget:
    """How many frames a chunk of text may take: ``min_frames + frames_per_char * chars``, capped.

    Speech runs at 21.5 frames/s; a generous per-character rate only stops a sequence that never ends.
    """

    frames_per_char: float = 6.0
    min_frames: int = 43
    max_frames: int = 2048

    def for_text(self, text: str) -> int:
        chars = sum(1 for ch in text if not ch.isspace())
        return min(self.max_frames, math.ceil(self.min_frames + self.frames_per_char * chars))


CodesCallback = Callable[[torch.Tensor], None]
DoneCallback = Callable[[FinishReason, str | None], None]


def _ignore_codes(codes: torch.Tensor) -> None:
    del codes


def _ignore_done(reason: FinishReason, message: str | None) -> None:
    del reason, message


@dataclass
class GenerationRequest:
    """One request: text chunks, voice prompt, sampling, frame cap and callbacks."""

    request_id: str
    chunks: list[str]
    references: list[VoiceTurn] = field(default_factory=list)
    sampling: SamplingParams = field(default_factory=SamplingParams)
    max_new_frames: int | None = None  # cap over all chunks; None: only the per-chunk budgets
    on_codes: CodesCallback = _ignore_codes
    on_done: DoneCallback = _ignore_done
    is_cancelled: Callable[[], bool] | None = None  # polled by the engine (e.g. Triton's sender.is_cancelled)
    received: float | None = None  # wall clock when the serving layer got it: the trace's "received" milestone
