"""Error figures of an exported model against PyTorch, and the thresholds they must meet.

- `max_abs`: the largest absolute difference of any element.
- `snr_db`: 10 log10(sum(reference^2) / sum((candidate - reference)^2)); infinite when they are equal.
- `match`: for integer outputs (codec codes), the fraction of equal elements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Figures:
    max_abs: float
    snr_db: float
    match: float | None = None
    peak: float = 0.0  # largest |reference| element, for thresholds relative to the signal

    def as_json(self) -> dict[str, float | str | None]:
        peak = None if math.isnan(self.peak) else self.peak  # NaN: not computed
        return {"max_abs": self.max_abs, "snr_db": format_db(self.snr_db), "match": self.match, "peak": peak}


@dataclass(frozen=True)
class Tolerance:
    """What a comparison must meet: `max_abs` at most (times the reference's peak when `relative`), `min_snr_db`
    at least, `min_match` at least (codes)."""

    max_abs: float
    min_snr_db: float
    min_match: float | None = None
    relative: bool = False

    def failures(self, figures: Figures) -> list[str]:
        failed = []
        limit = self.max_abs * figures.peak if self.relative else self.max_abs
        if not figures.max_abs <= limit:  # written so that NaN fails
            scale = f" ({self.max_abs:g} x peak {figures.peak:.3g})" if self.relative else ""
            failed.append(f"max abs error {figures.max_abs:.3g} > {limit:.3g}{scale}")
        if not figures.snr_db >= self.min_snr_db:
            failed.append(f"SNR {format_db(figures.snr_db)} dB < {self.min_snr_db:g} dB")
        if self.min_match is not None and not (figures.match is not None and figures.match >= self.min_match):
            failed.append(f"code match {figures.match} < {self.min_match}")
        return failed

    def as_json(self) -> dict[str, float | bool | None]:
        return {
            "max_abs": self.max_abs,
            "relative_to_peak": self.relative,
            "min_snr_db": self.min_snr_db,
            "min_match": self.min_match,
        }


def format_db(value: float) -> float | str:
    """JSON has no infinity: an exact match is written "inf"."""
    return "inf" if math.isinf(value) and value > 0 else round(value, 2)


def compare(reference: np.ndarray, candidate: np.ndarray) -> Figures:
    """Figures of `candidate` against `reference` (same shape required; floats compared in float64)."""
    if reference.shape != candidate.shape:
        raise ValueError(f"shape {list(candidate.shape)} differs from the reference's {list(reference.shape)}")
    ref = reference.astype(np.float64)
    error = candidate.astype(np.float64) - ref
    max_abs = float(np.max(np.abs(error))) if error.size else 0.0
    if np.isnan(error).any():
        max_abs = math.nan
    noise = float(np.sum(error * error))
    signal = float(np.sum(ref * ref))
    if math.isnan(noise):
        snr = -math.inf
    elif noise == 0.0:
        snr = math.inf
    elif signal == 0.0:
        snr = -math.inf
    else:
        snr = 10.0 * math.log10(signal / noise)
    match = None
    if np.issubdtype(reference.dtype, np.integer):
        match = float(np.mean(reference == candidate)) if reference.size else 1.0
    peak = float(np.max(np.abs(ref))) if ref.size else 0.0
    return Figures(max_abs=max_abs, snr_db=snr, match=match, peak=peak)


def worst(figures: list[Figures]) -> Figures:
    """The worst of several comparisons, each figure taken on its own."""
    matches = [f.match for f in figures if f.match is not None]
    return Figures(
        max_abs=max((f.max_abs for f in figures), key=lambda v: math.inf if math.isnan(v) else v),
        snr_db=min(f.snr_db for f in figures),
        match=min(matches) if matches else None,
        peak=max((f.peak for f in figures if not math.isnan(f.peak)), default=math.nan),
    )
