"""Stitching script lines into one signal: remove each line's DC offset, trim its silent edges, fade its ends,
place it after the previous line's pause. Placement is integer samples at the delivered rate, so captions are
sample-accurate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from voicereel.audio.loudness import from_db

FADE_S = 0.002  # fade-in/out at each line's edges: enough against clicks, short enough to keep onsets sharp
TRIM_THRESHOLD_DB = -50.0  # edges quieter than this, relative to the line's peak, are trimmed


@dataclass(frozen=True)
class Placement:
    """Where one line sits in the stitched signal: samples [start, end)."""

    start: int
    end: int


def remove_dc(pcm: np.ndarray) -> np.ndarray:
    """Subtract the clip's mean. A DC offset (common in generated audio) would turn into a slowly decaying tail
    in the following pause wherever a decoder high-passes (Opus rejects DC), smearing the silence between lines
    and the first samples of the next; the mean is removed exactly, with no filter edges."""
    x = np.asarray(pcm, dtype=np.float32)
    return (x - np.float32(x.mean(dtype=np.float64))).astype(np.float32) if x.size else x


def trim_silence(pcm: np.ndarray, threshold_db: float = TRIM_THRESHOLD_DB) -> np.ndarray:
    """Drop leading and trailing samples quieter than `threshold_db` below the peak. Silence stays as it is."""
    magnitude = np.abs(pcm)
    peak = float(magnitude.max()) if magnitude.size else 0.0
    if peak <= 0.0:
        return pcm
    loud = np.flatnonzero(magnitude >= peak * from_db(threshold_db))
    return pcm[int(loud[0]) : int(loud[-1]) + 1]


def apply_fades(pcm: np.ndarray, fade_samples: int) -> np.ndarray:
    """Linear fade-in and fade-out (each at most half the clip)."""
    out = np.array(pcm, dtype=np.float32, copy=True)
    n = min(fade_samples, out.size // 2)
    if n > 0:
        ramp = (np.arange(1, n + 1, dtype=np.float32) / np.float32(n + 1)).astype(np.float32)
        out[:n] *= ramp
        out[-n:] *= ramp[::-1]
    return out


def stitch(clips: Sequence[np.ndarray], pauses: Sequence[int], rate: int) -> tuple[np.ndarray, list[Placement]]:
    """Join `clips` (already at `rate`) in order with `pauses[i]` silent samples after clip i (none after the
    last). Each clip is trimmed and faded first; returns the signal and each clip's placement."""
    if len(clips) != len(pauses):
        raise ValueError("one pause per clip")
    fade = round(FADE_S * rate)
    prepared = [apply_fades(trim_silence(remove_dc(c)), fade) for c in clips]
    placements: list[Placement] = []
    cursor = 0
    for i, clip in enumerate(prepared):
        placements.append(Placement(cursor, cursor + clip.size))
        cursor += clip.size + (int(pauses[i]) if i < len(prepared) - 1 else 0)
    signal = np.zeros(cursor, dtype=np.float32)
    for clip, place in zip(prepared, placements, strict=True):
        signal[place.start : place.end] = clip
    return signal, placements
