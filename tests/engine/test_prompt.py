"""Prompts equal the ones upstream's own generate_long builds, and bad codes are refused."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from fish_speech.models.text2semantic import inference as upstream

from voicereel.engine.prompt import PromptError, TokenSpace, VoiceTurn, build_prompt, check_codes, normalize_text


class _Captured(Exception):
    """Raised by the stand-in for upstream's `generate` once it has seen the prompt."""

    def __init__(self, prompt: torch.Tensor) -> None:
        super().__init__("prompt captured")
        self.prompt = prompt


def _upstream_prompt(
    monkeypatch: pytest.MonkeyPatch, model: Any, text: str, refs: list[tuple[str, torch.Tensor]]
) -> torch.Tensor:
    """Run upstream generate_long until it hands its encoded prompt to `generate`."""

    def capture(**kwargs: Any) -> None:
        raise _Captured(kwargs["prompt"])

    monkeypatch.setattr(upstream, "generate", capture)
    with pytest.raises(_Captured) as caught:
        next(
            upstream.generate_long(
                model=model,
                device="cpu",
                decode_one_token=upstream.decode_one_token_ar,
                text=text,
                prompt_text=[t for t, _ in refs] or None,
                prompt_tokens=[c for _, c in refs] or [],
            )
        )
    return caught.value.prompt


def _codes(seed: int, frames: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    semantic = torch.randint(0, 4096, (1, frames), generator=generator)
    return torch.cat([semantic, torch.randint(0, 1024, (9, frames), generator=generator)])


@pytest.mark.parametrize(
    ("text", "refs"),
    [
        ("Hello world.", []),
        ("안녕하세요. 오늘 날씨가 좋네요!", [("참조 문장입니다.", 17)]),
        ("こんにちは。元気ですか？", [("first reference", 5), ("second, longer reference text", 12)]),
    ],
)
def test_prompt_equals_upstream_generate_long(
    monkeypatch: pytest.MonkeyPatch, tiny_lm: Any, text: str, refs: list[tuple[str, int]]
) -> None:
    references = [(ref_text, _codes(i, frames)) for i, (ref_text, frames) in enumerate(refs)]
    expected = _upstream_prompt(monkeypatch, tiny_lm, text, references)
    ours = build_prompt(tiny_lm.tokenizer, 10, text, [VoiceTurn(t, c) for t, c in references])
    assert ours.dtype == expected.dtype and torch.equal(ours, expected)


def test_prompt_layout_is_voice_turns_then_open_target_turn(tiny_lm: Any) -> None:
    tokenizer = tiny_lm.tokenizer
    codes = _codes(0, 6)
    prompt = build_prompt(tokenizer, 10, "target", [VoiceTurn("ref", codes)])
    space = TokenSpace.from_tokenizer(tokenizer)
    row = prompt[0].tolist()
    semantic = [i for i, token in enumerate(row) if token >= space.semantic_begin_id]
    assert len(semantic) == 6
    # the reference codes sit under their semantic tokens, token = first semantic id + code
    assert torch.equal(prompt[1:, semantic], codes.to(torch.int32))
    assert torch.equal(prompt[0, semantic], codes[0].to(torch.int32) + space.semantic_begin_id)
    assert row[semantic[-1] + 1] == space.im_end_id  # the voice turn is closed
    assert row.count(space.im_end_id) == 1  # the target turn is left open for the model
    tail = tokenizer.decode(row[semantic[-1] + 2 :])
    assert tail == "<|speaker:0|>target"
    head = tokenizer.decode(row[: semantic[0]])
    assert head == "<|interleave|><|speaker:0|>ref"


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        (torch.zeros(9, 4, dtype=torch.int32), "shape"),
        (torch.zeros(10, 0, dtype=torch.int32), "shape"),
        (torch.zeros(10, 4, dtype=torch.float32), "integers"),
        (torch.full((10, 4), 4096, dtype=torch.int32), "semantic"),
        (torch.cat([torch.zeros(1, 4), torch.full((9, 4), 1024)]).int(), "residual"),
        (torch.cat([torch.full((1, 4), -1), torch.zeros(9, 4)]).int(), "semantic"),
    ],
)
def test_check_codes_rejects(codes: torch.Tensor, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        check_codes(codes, num_codebooks=10, num_semantic=4096, residual_size=1024)


def test_check_codes_accepts_the_full_range() -> None:
    codes = torch.cat([torch.tensor([[0, 4095]]), torch.tensor([[0, 1023]] * 9)]).int()
    check_codes(codes, num_codebooks=10, num_semantic=4096, residual_size=1024)


def test_normalize_text_uses_upstream_cleaning() -> None:
    assert normalize_text("  it’s fine 😀,,, ok  ") == "it's fine , ok"
