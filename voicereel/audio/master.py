"""Mastering: gain to an integrated-loudness target, with a look-ahead true-peak limiter under a ceiling.

Speech at -16 LUFS often has peaks above -1 dBTP, so plain gain cannot meet both numbers. The limiter reduces
gain only around peaks: the gain each sample needs (from the 4x oversampled peaks) goes through a moving minimum
then a moving average of the same window. Each averaged value is a mean of minima over windows that all contain
that sample, so the smooth gain never exceeds what any sample needs, and it ramps over the window (no clicks,
no delay). Limiting lowers loudness a little, so make-up gain and limiting repeat until loudness is on target.

Oversampling is linear, so the peaks are computed once and scaled by each trial gain; the loudness of each trial
comes from the once-filtered signal (`KWeighted`). Only the final signal is measured from scratch (pyloudnorm and
a fresh true-peak pass), and corrected once more if that exact measurement disagrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from voicereel.audio.loudness import KWeighted, from_db, integrated_lufs, oversampled_peaks, to_db, true_peak

LIMITER_WINDOW_S = 0.005  # attack = release ramp of the limiter
_HEADROOM_DB = 0.1  # the limiter aims this far under the ceiling, for the interpolation it cannot see
_LOUDNESS_TOLERANCE_LU = 0.05
_MAX_TRIALS = 8
_MAX_RENDERS = 3  # exact measurements of a candidate master (each costs a true-peak pass and a meter pass)
# Make-up gain beyond plain normalisation is capped: past this much limiting a signal (e.g. a clip far shorter
# than a 400 ms loudness block) cannot reach the target without being destroyed.
MAX_LIMITING_DB = 20.0


@dataclass(frozen=True)
class MasterReport:
    input_lufs: float
    output_lufs: float
    gain_db: float
    true_peak_dbtp: float
    max_reduction_db: float  # deepest limiter gain reduction (0 when nothing was limited)

    def as_dict(self) -> dict[str, float | None]:
        def clean(value: float) -> float | None:
            return round(value, 3) if math.isfinite(value) else None

        return {
            "input_lufs": clean(self.input_lufs),
            "output_lufs": clean(self.output_lufs),
            "gain_db": clean(self.gain_db),
            "true_peak_dbtp": clean(self.true_peak_dbtp),
            "max_reduction_db": clean(self.max_reduction_db),
        }


def limiter_gain(peaks: np.ndarray, rate: int, ceiling_dbtp: float) -> np.ndarray | None:
    """Smooth per-sample gain keeping `peaks` under the ceiling (less headroom), or None if none is needed."""
    ceiling = from_db(ceiling_dbtp - _HEADROOM_DB)
    if peaks.size == 0 or float(peaks.max()) <= ceiling:
        return None
    needed = np.minimum(np.float32(1.0), np.float32(ceiling) / np.maximum(peaks, np.float32(1e-12)))
    window = max(3, round(rate * LIMITER_WINDOW_S) | 1)  # odd, so both filters are centred alike
    gain = uniform_filter1d(minimum_filter1d(needed, window, mode="nearest"), window, mode="nearest")
    return np.minimum(gain, needed)  # float rounding of the average must not exceed the need


def limit_true_peak(pcm: np.ndarray, rate: int, ceiling_dbtp: float) -> tuple[np.ndarray, float]:
    """Apply the limiter to a signal; returns it and the deepest gain reduction in dB."""
    gain = limiter_gain(oversampled_peaks(pcm, rate), rate, ceiling_dbtp)
    if gain is None:
        return pcm, 0.0
    return (pcm * gain).astype(np.float32), -to_db(float(gain.min()))


def _fit_gain(
    weighted: KWeighted, peaks: np.ndarray, rate: int, target_lufs: float, ceiling_dbtp: float, gain_db: float
) -> tuple[float, np.ndarray | None]:
    """Make-up gain (dB) whose limited result has the target loudness, and the limiter gain curve."""
    curve: np.ndarray | None = None
    max_gain_db = target_lufs - weighted.lufs() + MAX_LIMITING_DB
    for _ in range(_MAX_TRIALS):
        scale = from_db(gain_db)
        curve = limiter_gain(peaks * np.float32(scale), rate, ceiling_dbtp)
        lufs = weighted.lufs(scale if curve is None else curve * np.float32(scale))
        miss = target_lufs - lufs
        if abs(miss) <= _LOUDNESS_TOLERANCE_LU / 2 or (miss > 0 and gain_db >= max_gain_db):
            break
        gain_db = min(gain_db + miss, max_gain_db)
    return gain_db, curve


@dataclass(frozen=True)
class _Rendered:
    signal: np.ndarray
    gain_db: float
    curve: np.ndarray | None
    peak: float
    lufs: float


def _render(
    x: np.ndarray,
    weighted: KWeighted,
    peaks: np.ndarray,
    rate: int,
    aim_lufs: float,
    ceiling_dbtp: float,
    gain_db: float,
) -> _Rendered:
    gain_db, curve = _fit_gain(weighted, peaks, rate, aim_lufs, ceiling_dbtp, gain_db)
    scale = np.float32(from_db(gain_db))
    y = (x * scale if curve is None else x * (curve * scale)).astype(np.float32)
    peak = true_peak(y, rate)
    ceiling = from_db(ceiling_dbtp)
    if peak > ceiling:  # the ceiling is the hard constraint: trim what the limiter's estimate missed
        y = (y * np.float32(ceiling / peak)).astype(np.float32)
        peak = ceiling
    return _Rendered(y, gain_db, curve, peak, integrated_lufs(y, rate))


def master(pcm: np.ndarray, rate: int, *, target_lufs: float, ceiling_dbtp: float) -> tuple[np.ndarray, MasterReport]:
    """Return the mastered signal (float32) and what was done. Silence passes through unchanged."""
    x = np.asarray(pcm, dtype=np.float32)
    weighted = KWeighted(x, rate)
    input_lufs = weighted.lufs()
    if not math.isfinite(input_lufs):
        return x, MasterReport(input_lufs, input_lufs, 0.0, to_db(true_peak(x, rate)), 0.0)

    peaks = oversampled_peaks(x, rate)
    aim = target_lufs
    out = _render(x, weighted, peaks, rate, aim, ceiling_dbtp, target_lufs - input_lufs)
    for _ in range(_MAX_RENDERS - 1):  # the fast estimate disagreed with the meter: aim it further
        miss = target_lufs - out.lufs
        if abs(miss) <= _LOUDNESS_TOLERANCE_LU:
            break
        aim += miss
        out = _render(x, weighted, peaks, rate, aim, ceiling_dbtp, out.gain_db + miss)
    reduction = 0.0 if out.curve is None else -to_db(float(out.curve.min()))
    return out.signal, MasterReport(input_lufs, out.lufs, out.gain_db, to_db(out.peak), reduction)
