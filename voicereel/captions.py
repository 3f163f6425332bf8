"""Captions: one unit per script line, timed by the line's sample offsets in the delivered file.

Times are `offset / sample_rate` of the delivered audio, so they are exact to the sample; the text formats round
to the millisecond they can express (WebVTT `HH:MM:SS.mmm`, SRT `HH:MM:SS,mmm`), JSON keeps microseconds.
WebVTT carries the speaker as a voice span (`<v Name>`); SRT has no such tag, so the name prefixes the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from voicereel.schemas import CaptionFormat


@dataclass(frozen=True)
class Caption:
    start: float  # seconds from the start of the delivered file
    end: float
    speaker: str  # display name
    speaker_id: str
    text: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class RenderedCaptions:
    data: bytes
    content_type: str
    extension: str


def from_offsets(
    offsets: Sequence[tuple[int, int]], sample_rate: int, lines: Sequence[tuple[str, str, str]]
) -> list[Caption]:
    """`offsets[i]` = (first sample, end sample exclusive) of line i at `sample_rate`; `lines[i]` = (speaker name,
    speaker id, text)."""
    if len(offsets) != len(lines):
        raise ValueError("one offset pair per line")
    return [
        Caption(round(start / sample_rate, 6), round(end / sample_rate, 6), name, speaker_id, text)
        for (start, end), (name, speaker_id, text) in zip(offsets, lines, strict=True)
    ]


def _clock(seconds: float, separator: str) -> str:
    total_ms = round(seconds * 1000)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _cue_times(caption: Caption, separator: str) -> str:
    # A cue must end after it starts; a line that produced no audio still gets a 1 ms cue.
    end = max(caption.end, caption.start + 0.001)
    return f"{_clock(caption.start, separator)} --> {_clock(end, separator)}"


def _one_paragraph(text: str) -> str:
    # Cue text may not contain a blank line (it would end the cue) nor the arrow of a timing line.
    return re.sub(r"\s*\n\s*", "\n", text.strip()).replace("-->", "->")


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt_voice(name: str) -> str:
    # The voice annotation runs to '>' and may not hold line breaks; escape as cue text.
    return _vtt_escape(" ".join(name.split()))


def render_vtt(captions: Sequence[Caption]) -> str:
    cues = ["WEBVTT", ""]
    for i, caption in enumerate(captions, start=1):
        text = _vtt_escape(_one_paragraph(caption.text))
        cues += [str(i), _cue_times(caption, "."), f"<v {_vtt_voice(caption.speaker)}>{text}</v>", ""]
    return "\n".join(cues)


def render_srt(captions: Sequence[Caption]) -> str:
    blocks = []
    for i, caption in enumerate(captions, start=1):
        text = _one_paragraph(caption.text)
        blocks.append(f"{i}\n{_cue_times(caption, ',')}\n{' '.join(caption.speaker.split())}: {text}\n")
    return "\n".join(blocks)


def render_json(captions: Sequence[Caption]) -> str:
    return json.dumps({"captions": [c.as_dict() for c in captions]}, ensure_ascii=False, indent=2)


def render(captions: Sequence[Caption], fmt: CaptionFormat) -> RenderedCaptions:
    if fmt is CaptionFormat.vtt:
        return RenderedCaptions(render_vtt(captions).encode(), "text/vtt; charset=utf-8", "vtt")
    if fmt is CaptionFormat.srt:
        return RenderedCaptions(render_srt(captions).encode(), "application/x-subrip; charset=utf-8", "srt")
    return RenderedCaptions(render_json(captions).encode(), "application/json", "json")
