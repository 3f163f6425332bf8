"""Quality report of a reference recording, stored on the speaker.

Frame levels (20 ms frames, 10 ms hop) drive the speech/silence split: the speech level is the 95th percentile
of frame levels, the noise floor the 10th percentile; a frame is silence when it is below the higher of
(speech - 40 dB) and the midpoint of floor and speech. The SNR estimate is mean speech-frame power over mean
silence-frame power (the noise floor percentile when a recording has no silent frames).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from voicereel.audio.loudness import integrated_lufs, to_db

FRAME_S = 0.020
HOP_S = 0.010
CLIP_LEVEL = 0.999  # |x| at or above this (of full scale) counts as clipped
_FLOOR_DB = -100.0

# Thresholds behind the warnings (documented in the report so a caller can see why).
MAX_CLIPPED_FRACTION = 0.001
MIN_SNR_DB = 20.0
MIN_LOUDNESS_LUFS = -40.0
MAX_SILENCE_RATIO = 0.5


@dataclass(frozen=True)
class FrameLevels:
    levels_db: np.ndarray  # per frame, dBFS of mean power
    silent: np.ndarray  # bool per frame
    hop: int  # samples
    frame: int  # samples


def frame_levels(pcm: np.ndarray, rate: int) -> FrameLevels:
    frame, hop = round(FRAME_S * rate), round(HOP_S * rate)
    x = np.asarray(pcm, dtype=np.float64)
    if x.size < frame:
        x = np.pad(x, (0, frame - x.size))
    count = 1 + (x.size - frame) // hop
    csum = np.concatenate(([0.0], np.cumsum(x * x)))
    starts = np.arange(count) * hop
    power = (csum[starts + frame] - csum[starts]) / frame
    with np.errstate(divide="ignore"):
        levels = np.maximum(10.0 * np.log10(power), _FLOOR_DB)
    speech_db = float(np.percentile(levels, 95))
    floor_db = float(np.percentile(levels, 10))
    threshold = max(speech_db - 40.0, (speech_db + floor_db) / 2.0)
    return FrameLevels(levels, levels < threshold, hop, frame)


@dataclass(frozen=True)
class QualityReport:
    duration_s: float
    sample_rate: int
    peak_dbfs: float | None
    clipped_fraction: float
    loudness_lufs: float | None
    silence_ratio: float
    snr_db: float | None
    warnings: list[str]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _finite(value: float, digits: int = 2) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def quality_report(pcm: np.ndarray, rate: int) -> QualityReport:
    x = np.asarray(pcm, dtype=np.float32)
    magnitude = np.abs(x)
    peak = float(magnitude.max()) if x.size else 0.0
    clipped = float(np.count_nonzero(magnitude >= CLIP_LEVEL) / x.size) if x.size else 0.0
    loudness = integrated_lufs(x, rate) if x.size else -math.inf
    levels = frame_levels(x, rate)
    power = 10.0 ** (levels.levels_db / 10.0)
    silent_ratio = float(levels.silent.mean()) if levels.silent.size else 1.0
    speech_power = power[~levels.silent]
    if levels.silent.any():
        noise_power = power[levels.silent]
    else:  # no pause at all: the quietest frames stand in for the noise floor
        noise_power = np.array([10.0 ** (float(np.percentile(levels.levels_db, 10)) / 10.0)])
    if speech_power.size:
        snr = 10.0 * math.log10(float(speech_power.mean()) / max(float(noise_power.mean()), 1e-10))
    else:
        snr = 0.0

    warnings = []
    if clipped > MAX_CLIPPED_FRACTION:
        warnings.append(f"clipping: {clipped:.2%} of samples at full scale")
    if snr < MIN_SNR_DB:
        warnings.append(f"noisy: estimated SNR {snr:.1f} dB is under {MIN_SNR_DB:.0f} dB")
    if not math.isfinite(loudness) or loudness < MIN_LOUDNESS_LUFS:
        warnings.append(f"quiet: loudness under {MIN_LOUDNESS_LUFS:.0f} LUFS")
    if silent_ratio > MAX_SILENCE_RATIO:
        warnings.append(f"mostly silence: {silent_ratio:.0%} of the recording")
    return QualityReport(
        duration_s=round(x.size / rate, 3),
        sample_rate=rate,
        peak_dbfs=_finite(to_db(peak)),
        clipped_fraction=round(clipped, 6),
        loudness_lufs=_finite(loudness),
        silence_ratio=round(silent_ratio, 4),
        snr_db=_finite(snr),
        warnings=warnings,
    )
