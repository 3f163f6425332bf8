"""Normalising script text before it goes to the engine, and cutting over-long lines into requests.

The engine itself generates long text chunk by chunk with the previous chunk as context (better prosody than
separate requests), so a line is one request unless it is longer than the engine accepts in one request; only then
is it cut at sentence ends (the engine's own splitter) into several requests, stitched back in order.
"""

from __future__ import annotations

import re
import unicodedata

from voicereel.engine.textsplit import split_text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC (full-width ASCII, compatibility forms), no control or zero-width characters, single spaces."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def request_texts(text: str, max_chars: int) -> list[str]:
    """The normalised line as one request, or as several of at most `max_chars` cut at sentence ends."""
    clean = normalise(text)
    if not clean:
        return []
    return [clean] if len(clean) <= max_chars else split_text(clean, max_chars)
