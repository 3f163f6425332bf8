"""Prompt building for the text-to-semantic model, the way upstream fish-speech builds it.

A prompt is an "interleave" content sequence of speaker turns. Each voice-prompt turn is the reference
transcript followed by its codec codes and closed by ``<|im_end|>``; the last turn holds the target text
and is left open, so the model continues it with semantic frames until it emits ``<|im_end|>``.
Long text is generated chunk by chunk: the previous chunk's text and codes become one more closed turn
(the context), exactly like a reference.

The encoded prompt is an int tensor ``[num_codebooks + 1, T]``: row 0 holds token ids (semantic frames
carry their semantic token id), rows 1.. hold the codes of the frames (zero under text tokens).
fish-speech's own ``ContentSequence``/``FishTokenizer`` do the encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from fish_speech.content_sequence import ContentSequence, TextPart, VQPart
from fish_speech.text.clean import clean_text
from fish_speech.tokenizer import IM_END_TOKEN, FishTokenizer

# Upstream generates every turn as speaker 0: the voice comes from the codes, not from the speaker tag.
SPEAKER = 0


@dataclass(frozen=True)
class VoiceTurn:
    """A finished turn: transcript and the codes ``[num_codebooks, n]`` spoken for it."""

    text: str
    codes: torch.Tensor


class PromptError(ValueError):
    """The inputs cannot form a prompt (bad codes, empty text); the message is user-facing."""


@dataclass(frozen=True)
class TokenSpace:
    """The token ids generation needs, read from the model's tokenizer."""

    semantic_begin_id: int
    num_semantic: int
    im_end_id: int

    @classmethod
    def from_tokenizer(cls, tokenizer: FishTokenizer) -> TokenSpace:
        begin = tokenizer.semantic_begin_id
        end = tokenizer.semantic_end_id
        ids = sorted(tokenizer.semantic_id_to_token_id.values())
        if ids != list(range(begin, end + 1)):
            raise ValueError("semantic token ids must be contiguous")
        return cls(begin, end - begin + 1, tokenizer.get_token_id(IM_END_TOKEN))


def check_codes(codes: torch.Tensor, num_codebooks: int, num_semantic: int, residual_size: int) -> None:
    """Reject codes that do not fit the model: shape ``[num_codebooks, n>0]``, integer, in range."""
    if codes.dim() != 2 or codes.shape[0] != num_codebooks or codes.shape[1] == 0:
        raise PromptError(f"reference codes must have shape [{num_codebooks}, n>0], got {list(codes.shape)}")
    if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
        raise PromptError(f"reference codes must be integers, got {codes.dtype}")
    semantic, residual = codes[0], codes[1:]
    if int(semantic.min()) < 0 or int(semantic.max()) >= num_semantic:
        raise PromptError(f"semantic codes (row 0) must be in [0, {num_semantic})")
    if residual.numel() and (int(residual.min()) < 0 or int(residual.max()) >= residual_size):
        raise PromptError(f"residual codes (rows 1..) must be in [0, {residual_size})")


def normalize_text(text: str) -> str:
    """Upstream's text cleaning (strip, quote folding, emoji removal)."""
    return str(clean_text(text))


def build_prompt(
    tokenizer: FishTokenizer,
    num_codebooks: int,
    text: str,
    turns: list[VoiceTurn],
) -> torch.Tensor:
    """Encode closed voice turns (references, then context) and the open target-text turn.

    Returns ``[num_codebooks + 1, T]`` int32, on CPU.
    """
    sequence = ContentSequence(modality="interleave")
    for turn in turns:
        sequence.append(
            [TextPart(text=turn.text), VQPart(codes=turn.codes.to(torch.int))], add_end=True, speaker=SPEAKER
        )
    sequence.append([TextPart(text=text)], add_end=False, speaker=SPEAKER)
    values, _, _ = sequence.encode_for_inference(tokenizer, num_codebooks=num_codebooks)
    return values
