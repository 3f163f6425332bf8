"""Sentence splitting for ko/en/ja text and packing into chunks of bounded length."""

from __future__ import annotations

import pytest

from voicereel.engine.textsplit import split_sentences, split_text

MIXED = "Hello world. This is 3.14 dollars! Really? 안녕하세요. 반갑습니다! こんにちは。元気ですか？はい、元気です。"


def test_sentences_end_at_ko_en_ja_punctuation() -> None:
    assert split_sentences(MIXED) == [
        "Hello world.",
        "This is 3.14 dollars!",  # a decimal point is not a sentence end
        "Really?",
        "안녕하세요.",
        "반갑습니다!",
        "こんにちは。",  # full-width marks end a sentence without a following space
        "元気ですか？",
        "はい、元気です。",
    ]
    assert split_sentences('He said "Stop." Then left.') == ['He said "Stop."', "Then left."]
    assert split_sentences("「そうです。」と言った。") == ["「そうです。」", "と言った。"]


def test_chunks_pack_whole_sentences_and_keep_the_text() -> None:
    chunks = split_text(MIXED, 30)
    assert chunks == [
        "Hello world.",
        "This is 3.14 dollars! Really?",
        "안녕하세요. 반갑습니다! こんにちは。元気ですか？",
        "はい、元気です。",
    ]
    assert "".join(MIXED.split()) == "".join("".join(chunks).split())
    assert split_text("短い文。" * 5, 13) == ["短い文。短い文。短い文。", "短い文。短い文。"]  # no spaces invented


def test_overlong_sentences_split_at_clauses_then_words() -> None:
    text = "first clause, second clause, and a very long third clause without any punctuation at all"
    chunks = split_text(text, 30)
    assert all(len(chunk) <= 30 for chunk in chunks)
    assert chunks[:2] == ["first clause, second clause,", "and a very long third clause"]
    assert " ".join(chunks) == text
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_blank_text_has_no_chunks(text: str) -> None:
    assert split_text(text, 100) == []


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        split_text("x", 0)
