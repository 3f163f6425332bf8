"""The batched forward passes equal upstream fish-speech's forward_generate / forward_generate_fast (fp32).

Upstream decodes one sequence at a time; here sequences at different positions share one call. For every
sequence of a batch, the restricted slow logits, the hidden state handed to the fast transformer and the
fast transformer's residual logits must equal what upstream computes for that sequence alone.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
import torch
from fish_speech.models.text2semantic.llama import DualARTransformer

from voicereel.engine.batched import BatchedDualAR, attend_used, flash_applies
from voicereel.engine.prompt import VoiceTurn, build_prompt

ATOL, RTOL = 2e-5, 1e-4


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=RTOL)


CAPACITY = 256


def _variant(tiny_lm: Any) -> Any:
    """The tiny config with every option upstream's forward path branches on flipped, random weights."""
    cfg = tiny_lm.config
    config = dataclasses.replace(
        cfg,
        scale_codebook_embeddings=True,
        tie_word_embeddings=True,
        attention_qk_norm=False,
        attention_qkv_bias=True,
        attention_o_bias=True,
        n_local_heads=4,  # plain multi-head attention in the slow transformer
        fast_dim=32,  # fast width differs, so fast_project_in is a real Linear
        fast_n_head=2,
        fast_n_local_heads=1,
        fast_head_dim=16,
        fast_intermediate_size=64,
        fast_attention_qkv_bias=True,
        fast_attention_qk_norm=True,
        fast_attention_o_bias=False,
    )
    torch.manual_seed(3)
    model = DualARTransformer(config, tokenizer=tiny_lm.tokenizer)
    with torch.no_grad():  # upstream's init zeroes biases and sets norms to one: perturb everything
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


@pytest.fixture(params=["tiny-checkpoint", "variant"])
def model(request: pytest.FixtureRequest, tiny_lm: Any) -> Any:
    return tiny_lm if request.param == "tiny-checkpoint" else _variant(tiny_lm)


def _codes(generator: torch.Generator, frames: int, codebooks: int, residual: int = 1024) -> torch.Tensor:
    semantic = torch.randint(0, 4096, (1, frames), generator=generator)
    return torch.cat([semantic, torch.randint(0, residual, (codebooks - 1, frames), generator=generator)])


def _frames(engine: BatchedDualAR, codes: torch.Tensor) -> torch.Tensor:
    """Frames ``[n, C + 1]`` (token row first) for codes ``[C, n]``."""
    tokens = codes[0] + engine.tokens.semantic_begin_id
    return torch.cat([tokens[None], codes]).T.contiguous()


def _upstream_head(model: Any, engine: BatchedDualAR, logits: torch.Tensor) -> torch.Tensor:
    ids = list(range(engine.tokens.semantic_begin_id, engine.tokens.semantic_begin_id + engine.tokens.num_semantic))
    return logits[..., [*ids, engine.tokens.im_end_id]]


def _upstream_run(model: Any, engine: BatchedDualAR, prompt: torch.Tensor, frames: torch.Tensor) -> list[Any]:
    """Upstream prefill then one forward_generate per teacher-forced frame: (restricted logits, hidden)."""
    model.setup_caches(max_batch_size=1, max_seq_len=CAPACITY, dtype=torch.float32)
    length = prompt.shape[1]
    out = model.forward_generate(prompt[None].long(), input_pos=torch.arange(length))
    results = [(_upstream_head(model, engine, out.logits[0, -1]), out.hidden_states[0, -1])]
    for index, frame in enumerate(frames):
        out = model.forward_generate(frame[None, :, None], input_pos=torch.tensor([length + index]))
        results.append((_upstream_head(model, engine, out.logits[0, -1]), out.hidden_states[0, -1]))
    return results


@pytest.mark.parametrize("together", [False, True], ids=["prefilled-one-by-one", "prefilled-together"])
@torch.inference_mode()
def test_prefill_and_decode_of_a_batch_equal_upstream_per_sequence(model: Any, together: bool) -> None:
    engine = BatchedDualAR(model)
    tokenizer, codebooks = model.tokenizer, model.config.num_codebooks
    generator = torch.Generator().manual_seed(0)
    prompts = {
        2: build_prompt(tokenizer, codebooks, "target text", [VoiceTurn("reference one", _codes(generator, 24, 10))]),
        0: build_prompt(tokenizer, codebooks, "another, longer target", [VoiceTurn("ref", _codes(generator, 7, 10))]),
    }
    steps = 5
    teacher = {slot: _frames(engine, _codes(generator, steps, codebooks)) for slot in prompts}
    expected = {slot: _upstream_run(model, engine, prompts[slot], teacher[slot]) for slot in prompts}

    cache = engine.new_slow_cache(slots=4, capacity=CAPACITY)
    cache.k.normal_()  # stale content everywhere: a slot must never see what it did not write
    cache.v.normal_()
    positions = torch.zeros(3, dtype=torch.long)
    if together:  # prompts of different lengths in one padded pass
        hidden = engine.prefill_many(cache, torch.tensor(list(prompts)), list(prompts.values()))
        prefilled = {slot: hidden[row : row + 1] for row, slot in enumerate(prompts)}
    else:
        prefilled = {slot: engine.prefill(cache, slot, prompt) for slot, prompt in prompts.items()}
    for slot, prompt in prompts.items():
        logits, fast_hidden = expected[slot][0]
        _close(engine.slow_logits(prefilled[slot])[0], logits)
        _close(engine.fast_input(prefilled[slot])[0], fast_hidden)
        positions[slot] = prompt.shape[1]
    positions[1] = 100  # an idle slot inside the batch prefix, at some stale position

    frames = torch.zeros(3, codebooks + 1, dtype=torch.long)
    for index in range(steps):
        for slot in prompts:
            frames[slot] = teacher[slot][index]
        kv_len = CAPACITY if index % 2 else 128  # bucketed prefix or the whole cache: same result
        hidden = engine.decode_slow(cache, frames, positions, torch.arange(3), kv_len)
        for slot in prompts:
            logits, fast_hidden = expected[slot][index + 1]
            _close(engine.slow_logits(hidden[slot : slot + 1])[0], logits)
            _close(engine.fast_input(hidden[slot : slot + 1])[0], fast_hidden)
        positions += 1


@torch.inference_mode()
def test_decode_of_one_row_with_products_attention_equals_upstream(model: Any) -> None:
    """The one-row pieces' attention (products over the cache prefix, ``decode_post_one_row``) run eagerly: a single
    sequence's decode equals upstream's, at a bucketed prefix and at the whole cache."""
    from voicereel.engine.batched import DecodeKernels, decode_post_one_row, decode_pre, fast_position
    from voicereel.engine.sampling import sample_tensors

    engine = BatchedDualAR(model)
    engine.one_row_kernels = DecodeKernels(decode_pre, decode_post_one_row, fast_position, sample_tensors)
    generator = torch.Generator().manual_seed(5)
    prompt = build_prompt(
        model.tokenizer, model.config.num_codebooks, "one row", [VoiceTurn("ref", _codes(generator, 9, 10))]
    )
    teacher = _frames(engine, _codes(generator, 4, model.config.num_codebooks))
    expected = _upstream_run(model, engine, prompt, teacher)
    cache = engine.new_slow_cache(slots=2, capacity=CAPACITY)
    cache.k.normal_()
    cache.v.normal_()
    engine.prefill(cache, 0, prompt)
    position = torch.tensor([prompt.shape[1]])
    for index, frame in enumerate(teacher):
        hidden = engine.decode_slow(cache, frame[None], position, torch.arange(1), CAPACITY if index % 2 else 64)
        logits, fast_hidden = expected[index + 1]
        _close(engine.slow_logits(hidden)[0], logits)
        _close(engine.fast_input(hidden)[0], fast_hidden)
        position += 1


def _upstream_fast(model: Any, hidden: torch.Tensor, codes: torch.Tensor, residual: int) -> list[torch.Tensor]:
    """Upstream's fast path for one row: position 0 fed the hidden state, then each code; residual logits."""
    model.setup_caches(max_batch_size=1, max_seq_len=CAPACITY, dtype=torch.float32)
    for layer in model.fast_layers:  # upstream clears its fast cache before every frame
        layer.attention.kv_cache.k_cache.fill_(0)
        layer.attention.kv_cache.v_cache.fill_(0)
    model.forward_generate_fast(hidden[None], torch.tensor([0]))
    logits = []
    for index in range(1, model.config.num_codebooks):
        out = model.forward_generate_fast(model.fast_embeddings(codes[index - 1 : index]), torch.tensor([index]))
        logits.append(out[0, 0, :residual])
    return logits


@torch.inference_mode()
def test_fast_transformer_of_a_batch_equals_upstream_per_row(model: Any) -> None:
    engine = BatchedDualAR(model)
    generator = torch.Generator().manual_seed(1)
    rows = 3
    hidden = engine.fast_input(torch.randn(rows, model.config.dim, generator=generator))
    codes = _codes(generator, rows, model.config.num_codebooks).T  # [rows, C]: semantic code then residuals
    expected = [_upstream_fast(model, hidden[row], codes[row], engine.residual_size) for row in range(rows)]

    cache = engine.new_fast_cache(slots=4)
    cache.k.normal_()
    cache.v.normal_()
    _, cache = engine.fast_forward(cache, hidden, 0)
    for index in range(1, model.config.num_codebooks):
        logits, cache = engine.fast_forward(cache, engine.fast_code_input(codes[:, index - 1]), index)
        assert logits.shape == (rows, engine.residual_size)
        for row in range(rows):
            _close(logits[row], expected[row][index - 1])


def test_restricted_head_is_semantic_ids_then_end(tiny_lm: Any) -> None:
    engine = BatchedDualAR(tiny_lm)
    tokens = engine.tokens
    assert engine.head_weight.shape[0] == tokens.num_semantic + 1 == 4097
    torch.testing.assert_close(engine.head_weight[0], tiny_lm.output.weight[tokens.semantic_begin_id])
    torch.testing.assert_close(engine.head_weight[-1], tiny_lm.output.weight[tokens.im_end_id])
    no_end = BatchedDualAR(tiny_lm, allow_end=False)
    assert no_end.head_weight.shape[0] == tokens.num_semantic


def test_slot_capacity_cannot_exceed_the_model_context(tiny_lm: Any) -> None:
    with pytest.raises(ValueError, match="max_seq_len"):
        BatchedDualAR(tiny_lm).new_slow_cache(slots=1, capacity=tiny_lm.config.max_seq_len + 8)


def test_prefill_attention_is_flash_or_torchs_choice(tiny_lm: Any) -> None:
    with pytest.raises(ValueError, match="prefill_attention is auto or flash"):
        BatchedDualAR(tiny_lm, prefill_attention="cudnn")
    for dtype in (torch.float32, torch.bfloat16):  # FlashAttention is CUDA only: the CPU keeps torch's choice
        assert not flash_applies(torch.zeros((1, 2, 3, 16), dtype=dtype))


@pytest.mark.gpu
@torch.inference_mode()
def test_flash_prefill_equals_torchs_choice(tiny_lm: Any) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: FlashAttention runs on CUDA only")
    model = copy.deepcopy(tiny_lm).to("cuda", torch.bfloat16)
    head_dim = model.config.head_dim
    assert flash_applies(torch.zeros((1, model.config.n_head, 4, head_dim), device="cuda", dtype=torch.bfloat16))
    assert model.config.n_local_heads < model.config.n_head  # grouped-query attention, as S1-mini's
    generator = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(0, 200, (model.config.num_codebooks + 1, length), generator=generator) for length in (37, 9)
    ]
    hidden = {}
    for choice in ("auto", "flash"):
        engine = BatchedDualAR(model, prefill_attention=choice)
        cache = engine.new_slow_cache(slots=2, capacity=64)
        hidden[choice] = (engine.prefill_many(cache, torch.arange(2, device="cuda"), prompts), cache.k.clone())
    torch.testing.assert_close(hidden["flash"][0], hidden["auto"][0], atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(hidden["flash"][1], hidden["auto"][1], atol=2e-2, rtol=2e-2)


def test_used_length_attention_reads_cache_rows_in_place_only() -> None:
    """attend_used views the cache rows' storage with other strides, so any other layout is refused."""
    q = torch.zeros((2, 2, 2, 8))
    keys = torch.zeros((2, 2, 16, 8))
    with pytest.raises(ValueError, match="in place"):
        attend_used(q, keys.transpose(2, 3).contiguous().transpose(2, 3), keys, torch.ones(2, dtype=torch.int32))
    with pytest.raises(ValueError, match="in place"):
        attend_used(q, keys, keys[:, :, :8], torch.ones(2, dtype=torch.int32))


@pytest.mark.gpu
@torch.inference_mode()
def test_used_length_attention_equals_masked_attention_over_the_bucket() -> None:
    """Each row attends its first lengths[b] positions only; the rest of its slot (garbage here) is never read."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU here: FlashAttention runs on CUDA only")
    torch.manual_seed(0)
    batch, kv_heads, groups, capacity, dim = 5, 4, 2, 96, 64
    cache_k = torch.randn((7, kv_heads, capacity, dim), device="cuda", dtype=torch.bfloat16)  # 7 slots, first 5 used
    cache_v = torch.randn_like(cache_k)
    q = torch.randn((batch, kv_heads, groups, dim), device="cuda", dtype=torch.bfloat16)
    lengths = torch.tensor([1, 96, 40, 7, 63], device="cuda", dtype=torch.int32)
    keys, values = cache_k[:batch], cache_v[:batch]
    mask = (torch.arange(capacity, device="cuda")[None, :] < lengths[:, None])[:, None, None, :]
    expected = torch.nn.functional.scaled_dot_product_attention(q.float(), keys.float(), values.float(), attn_mask=mask)
    got = attend_used(q, keys, values, lengths)
    torch.testing.assert_close(got.float(), expected, atol=2e-2, rtol=2e-2)
    # positions past a row's length do not count: poison them and get the same answer
    beyond = ~mask[:, 0, 0]
    keys[beyond[:, None, :].expand(-1, kv_heads, -1)] = float("nan")
    torch.testing.assert_close(attend_used(q, keys, values, lengths), got)
