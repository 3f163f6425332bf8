"""Choosing the voice-prompt window of a reference recording: the span of at most `max_s` seconds with the most
speech, cut at pauses (never inside a word), away from clipped frames.

Candidate cut points are the middles of pauses, plus both ends: first only the long pauses (read speech has two
kinds: short ones between clauses and long ones between sentences; Otsu's split of the pause lengths separates them
when the two groups differ by at least half), then, if no window fits between those, every pause of at least
`MIN_PAUSE_S`. For each start point the
best end is the farthest cut point within `max_s` (speech only grows with length), so the search is linear in
the number of pauses. A window's score is its speech time minus a penalty per clipped frame.

The matching transcript part is found by proportion: the window's share of the recording's speech time, mapped
onto the transcript's characters and snapped to the nearest sentence end (or word gap). This is a heuristic
without forced alignment; the report says so (`text_alignment: proportional`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from voicereel.audio.quality import CLIP_LEVEL, frame_levels

MIN_PAUSE_S = 0.1
_CLIP_PENALTY_S = 0.5  # seconds of speech one clipped frame costs
_SENTENCE_END = re.compile(r"[.!?。！？…]+[\"'”’)\]]*(\s+|$)")


@dataclass(frozen=True)
class PromptWindow:
    start: int  # samples, at the recording's rate
    end: int
    speech_s: float
    text: str
    text_alignment: str  # "whole" (the full transcript) or "proportional"

    def as_dict(self, rate: int) -> dict[str, object]:
        return {
            "start_s": round(self.start / rate, 3),
            "end_s": round(self.end / rate, 3),
            "speech_s": round(self.speech_s, 3),
            "text_alignment": self.text_alignment,
        }


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where mask is True."""
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _snap(text: str, position: int) -> int:
    """Nearest sentence end within 10 % of the text length, else the nearest word gap, else `position`."""
    if position <= 0 or position >= len(text):
        return max(0, min(position, len(text)))
    tolerance = max(1, len(text) // 10)
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    near = [e for e in ends if abs(e - position) <= tolerance]
    if near:
        return min(near, key=lambda e: abs(e - position))
    gaps = [m.end() for m in re.finditer(r"\s+", text)]
    return min(gaps, key=lambda g: abs(g - position)) if gaps else position


def _long_pause_length(lengths: list[int]) -> int:
    """Shortest "long" pause by Otsu's split of the lengths; 0 when they do not form two distinct groups."""
    if len(lengths) < 2:
        return 0
    ordered = np.sort(np.asarray(lengths, dtype=np.float64))
    best_split, best_var = 0, -1.0
    for k in range(1, ordered.size):
        low, high = ordered[:k], ordered[k:]
        between = low.size * high.size * (high.mean() - low.mean()) ** 2
        if between > best_var:
            best_split, best_var = k, between
    low_mean, high_mean = ordered[:best_split].mean(), ordered[best_split:].mean()
    return int(ordered[best_split]) if high_mean >= 1.5 * low_mean else 0


def _best_span(
    cuts: np.ndarray, speech_cum: np.ndarray, clip_cum: np.ndarray, max_frames: int, frame_s: float
) -> tuple[float, int, int] | None:
    best: tuple[float, int, int] | None = None
    for i, a in enumerate(cuts):
        j = int(np.searchsorted(cuts, a + max_frames, side="right")) - 1
        if j <= i:
            continue
        b = int(cuts[j])
        score = (speech_cum[b] - speech_cum[a]) * frame_s - _CLIP_PENALTY_S * (clip_cum[b] - clip_cum[a])
        if best is None or score > best[0]:
            best = (float(score), int(a), b)
    return best


def choose_window(pcm: np.ndarray, rate: int, transcript: str, max_s: float = 30.0) -> PromptWindow:
    x = np.asarray(pcm, dtype=np.float32)
    levels = frame_levels(x, rate)
    speech = ~levels.silent
    hop = levels.hop
    frames = speech.size
    speech_runs = _runs(speech)
    if not speech_runs:
        return PromptWindow(0, min(x.size, int(max_s * rate)), 0.0, transcript.strip(), "whole")

    first, last = speech_runs[0][0], speech_runs[-1][1]
    if (last - first) * hop <= max_s * rate:
        start, end = first * hop, min(x.size, last * hop + levels.frame)
        return PromptWindow(start, end, float(speech.sum()) * hop / rate, transcript.strip(), "whole")

    # clipped frames, from per-hop maxima
    clipped = np.zeros(frames, dtype=bool)
    hot = np.flatnonzero(np.abs(x) >= CLIP_LEVEL) // hop
    clipped[np.clip(hot, 0, frames - 1)] = True

    speech_cum = np.concatenate(([0], np.cumsum(speech)))
    clip_cum = np.concatenate(([0], np.cumsum(clipped)))
    max_frames = int(max_s * rate / hop) - 2  # keep the frame tail inside the limit
    min_pause = max(1, round(MIN_PAUSE_S * rate / hop))
    pauses = [(a, b) for a, b in _runs(levels.silent) if b - a >= min_pause and first < a and b < last]
    best: tuple[float, int, int] | None = None
    for shortest in (max(min_pause, _long_pause_length([b - a for a, b in pauses])), min_pause):
        cuts = sorted({first, last, *((a + b) // 2 for a, b in pauses if b - a >= shortest)})
        best = _best_span(np.array(cuts), speech_cum, clip_cum, max_frames, hop / rate)
        if best is not None:
            break
    if best is None:  # no pause is close enough: take the densest fixed-length span (may cut a word)
        sums = speech_cum[max_frames:] - speech_cum[:-max_frames]
        a = int(np.argmax(sums))
        best = (float(sums[a]), a, a + max_frames)
    _, a, b = best

    total_speech = float(speech_cum[-1])
    text = transcript.strip()
    lo = _snap(text, round(len(text) * speech_cum[a] / total_speech))
    hi = _snap(text, round(len(text) * speech_cum[b] / total_speech))
    part = text[lo:hi].strip() or text
    return PromptWindow(
        a * hop, min(x.size, b * hop), float(speech_cum[b] - speech_cum[a]) * hop / rate, part, "proportional"
    )
