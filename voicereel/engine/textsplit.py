"""Split long text into chunks at sentence boundaries (Korean, English, Japanese punctuation).

The model generates one chunk at a time with the previous chunk as context, so a chunk should be a
whole sentence or several. Sentences are packed greedily up to ``max_chars``; a sentence longer than
that is cut at clause punctuation, then at spaces, and only as a last resort inside a word.
Chunks keep the text's own spacing (no spaces are added between Japanese sentences); joining them
with single spaces gives the text back up to whitespace.
"""

from __future__ import annotations

import re

# A sentence ends after terminal punctuation (plus closing quotes/brackets). Full-width marks end a
# sentence even without a following space (Japanese has none); ASCII marks need whitespace or the end,
# so "3.14" and "e.g.x" stay whole.
_SENTENCE_END = re.compile(r"(?:[。！？!?…]+|(?<!\d)\.+|\.+(?!\d))[\"'”’」』)\]]*(?:\s+|$)|[。！？…][\"'”’」』)\]]*")
_CLAUSE_END = re.compile(r"[,，、;；:：](?:\s+|(?=\S))")


def _pieces(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Cut ``text`` after every match of ``pattern``; pieces keep their trailing whitespace."""
    pieces, start = [], 0
    for match in pattern.finditer(text):
        if match.end() > start:
            pieces.append(text[start : match.end()])
            start = match.end()
    pieces.append(text[start:])
    return [piece for piece in pieces if piece.strip()]


def _hard_wrap(text: str, max_chars: int) -> list[str]:
    """Split at spaces to fit ``max_chars``; words longer than that are cut."""
    chunks: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > max_chars:
            if current:
                chunks.append(current + " ")
                current = ""
            chunks.append(word[:max_chars])
            word = word[max_chars:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= max_chars:
            current = candidate
        else:
            chunks.append(current + " ")
            current = word
    if current:
        chunks.append(current + (" " if text[-1:].isspace() else ""))
    return chunks


def _fit(sentence: str, max_chars: int) -> list[str]:
    """One sentence as pieces of at most ``max_chars``: clauses if possible, else words."""
    if len(sentence.strip()) <= max_chars:
        return [sentence]
    out: list[str] = []
    for clause in _pieces(sentence, _CLAUSE_END):
        out.extend([clause] if len(clause.strip()) <= max_chars else _hard_wrap(clause, max_chars))
    return out


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    """Concatenate consecutive pieces while the stripped result fits; returns stripped chunks."""
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len((chunks[-1] + piece).strip()) <= max_chars:
            chunks[-1] += piece
        else:
            chunks.append(piece)
    return [chunk.strip() for chunk in chunks]


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (stripped, non-empty)."""
    return [sentence.strip() for sentence in _pieces(text.strip(), _SENTENCE_END)]


def split_text(text: str, max_chars: int) -> list[str]:
    """Chunks of at most ``max_chars`` characters, cut at sentence boundaries where possible."""
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    fitted: list[str] = []
    for sentence in _pieces(text.strip(), _SENTENCE_END):
        fitted.extend(_fit(sentence, max_chars))
    return _pack(fitted, max_chars)
