"""Checkpoint layout, loading with fish-speech's classes, strictness, and the random tiny/benchmark checkpoints."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from voicereel.engine import checkpoints as ck
from voicereel.engine import random_checkpoints as rc


@pytest.fixture
def tiny(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


def test_tiny_checkpoint_has_the_real_layout_and_says_it_is_random(tiny: Path) -> None:
    info = ck.inspect_checkpoint(tiny)
    assert set(ck.REQUIRED_FILES) <= set(info.files)
    assert info.kind == "tiny" and info.random_weights
    assert info.codec_config is not None
    # small enough for CI: the LM's 10 x 4096 codebook embeddings (5.2 MB in bf16) dominate
    assert info.total_bytes < 12_000_000, info.sizes
    marker = json.loads((tiny / ck.MARKER_FILE).read_text())
    assert "NOISE" in marker["warning"]


def test_tiny_lm_loads_through_fish_speech_classes(tiny: Path) -> None:
    from fish_speech.models.text2semantic.llama import DualARTransformer
    from fish_speech.tokenizer import FishTokenizer

    model = ck.load_text2semantic(tiny, "cpu", torch.float32)
    assert isinstance(model, DualARTransformer) and not model.training
    assert isinstance(model.tokenizer, FishTokenizer)
    cfg = model.config
    assert (cfg.n_layer, cfg.dim, cfg.n_head, cfg.n_local_heads, cfg.n_fast_layer) == (2, 64, 4, 2, 1)
    assert (cfg.num_codebooks, cfg.codebook_size) == (10, 4096)
    assert next(model.parameters()).dtype == torch.float32

    tok = model.tokenizer
    # s1-mini order: 256 byte ranks, 15 control tokens, then <|semantic:0..4095|> contiguous
    assert tok.semantic_begin_id == 256 + 15
    assert tok.semantic_end_id - tok.semantic_begin_id == 4095
    assert tok.get_token_id("<|im_end|>") == 256 + 4
    assert tok.encode("hi<|im_end|>") == [ord("h"), ord("i"), tok.get_token_id("<|im_end|>")]
    assert max(tok.all_special_tokens_with_ids.values()) < cfg.vocab_size

    # one upstream prefill step runs and gives logits over the vocabulary and a hidden state for the fast head
    prompt = torch.zeros(1, 11, 4, dtype=torch.long)
    prompt[0, 0] = torch.tensor(tok.encode("abcd"))
    with torch.inference_mode():
        out = model.forward_generate(prompt)
    assert out.logits.shape == (1, 1, cfg.vocab_size)
    assert out.hidden_states.shape == (1, 1, cfg.fast_dim)
    assert torch.isfinite(out.logits).all()


def test_tiny_codec_keeps_the_real_rates(tiny: Path) -> None:
    from fish_speech.models.dac.modded_dac import DAC

    codec = ck.load_codec(tiny, "cpu", torch.float32)
    assert isinstance(codec, DAC) and not codec.training
    assert codec.sample_rate == 44_100
    assert codec.frame_length == 2048  # 21.53 frames per second
    assert codec.quantizer.semantic_quantizer.codebook_size == 4096
    assert codec.quantizer.quantizer.n_codebooks == 9
    assert codec.quantizer.quantizer.codebook_size == 1024
    assert codec.quantizer.post_module.window_size == 128


def test_same_seed_same_weights_other_seed_other_weights(tiny: Path, tmp_path: Path) -> None:
    again = ck.make_tiny_checkpoint(tmp_path / "again", seed=0).root
    other = ck.make_tiny_checkpoint(tmp_path / "other", seed=1).root
    base = torch.load(tiny / ck.MODEL_FILE, weights_only=True)
    same = torch.load(again / ck.MODEL_FILE, weights_only=True)
    diff = torch.load(other / ck.MODEL_FILE, weights_only=True)
    key = "layers.0.attention.wqkv.weight"
    assert torch.equal(base[key], same[key])
    assert not torch.equal(base[key], diff[key])


def test_missing_file_is_named(tiny: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    (broken / ck.CODEC_FILE).unlink()
    with pytest.raises(ck.CheckpointError, match=r"codec\.pth"):
        ck.load_codec(broken)
    with pytest.raises(ck.CheckpointError, match="does not exist"):
        ck.inspect_checkpoint(tmp_path / "nowhere")


def test_missing_or_misshapen_weights_fail_loudly(tiny: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    weights = torch.load(tiny / ck.MODEL_FILE, weights_only=True)
    del weights["fast_output.weight"]
    torch.save(weights, broken / ck.MODEL_FILE)
    with pytest.raises(ck.CheckpointError, match=r"missing keys.*fast_output"):
        ck.load_text2semantic(broken)

    weights = torch.load(tiny / ck.MODEL_FILE, weights_only=True)
    weights["norm.weight"] = torch.ones(3)
    torch.save(weights, broken / ck.MODEL_FILE)
    with pytest.raises(ck.CheckpointError, match=r"norm\.weight"):
        ck.load_text2semantic(broken)

    codec_weights = torch.load(tiny / ck.CODEC_FILE, weights_only=True)
    codec_weights["quantizer.extra.weight"] = torch.zeros(1)
    torch.save(codec_weights, broken / ck.CODEC_FILE)
    with pytest.raises(ck.CheckpointError, match=r"unexpected keys.*quantizer\.extra"):
        ck.load_codec(broken)


def test_upstream_training_checkpoint_wrappers_are_unwrapped(tiny: Path, tmp_path: Path) -> None:
    """model.pth as a Lightning `state_dict` with `model.` prefixes, codec.pth with `generator.` prefixes."""
    wrapped = tmp_path / "wrapped"
    shutil.copytree(tiny, wrapped)
    lm = torch.load(tiny / ck.MODEL_FILE, weights_only=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in lm.items()}}, wrapped / ck.MODEL_FILE)
    codec = torch.load(tiny / ck.CODEC_FILE, weights_only=True)
    disc = {"discriminator.conv.weight": torch.zeros(2)}
    torch.save({"state_dict": {**{f"generator.{k}": v for k, v in codec.items()}, **disc}}, wrapped / ck.CODEC_FILE)

    model = ck.load_text2semantic(wrapped)
    assert torch.equal(model.fast_output.weight, lm["fast_output.weight"].float())
    ck.load_codec(wrapped)


def test_benchmark_shapes_match_s1_mini_without_allocating(tmp_path: Path) -> None:
    """DESIGN section 5 shapes, built on the meta device (no memory), from the same config file the CLI writes."""
    rc.write_byte_tokenizer(tmp_path)
    rc.write_lm_config(tmp_path, rc.BENCHMARK_LM)
    config = ck.load_lm_config(tmp_path)
    with torch.device("meta"):
        model = ck.build_text2semantic(config, ck.load_tokenizer(tmp_path))
    assert (config.n_layer, config.dim, config.n_head, config.n_local_heads, config.head_dim) == (28, 1024, 16, 8, 128)
    assert (config.intermediate_size, config.vocab_size, config.n_fast_layer) == (3072, 155_776, 4)
    assert (config.num_codebooks, config.codebook_size) == (10, 4096)
    n_params = sum(p.numel() for p in model.parameters())
    assert 0.85e9 < n_params < 0.88e9, n_params

    with torch.device("meta"):
        codec = ck.build_codec(ck.codec_config_path(tmp_path))  # no codec_config.yaml: the package's real config
    assert codec.frame_length == 2048 and codec.sample_rate == 44_100
    assert 0.38e9 < sum(p.numel() for p in codec.parameters()) < 0.40e9


def test_the_tokenizer_encodes_in_the_calling_thread_with_the_same_tokens(
    tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_tokenizer keeps FishTokenizer.encode's tokens but starts no thread pool per call (each pool cost a
    text2semantic request milliseconds of GIL-contended thread starts before it reached the engine)."""
    import concurrent.futures
    import functools

    from fish_speech.tokenizer import TIKTOKEN_MAX_ENCODE_CHARS, FishTokenizer

    tok = ck.load_tokenizer(tiny)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        pooled = FishTokenizer.from_pretrained(str(tiny))  # upstream's encode, unpatched
    texts = [
        "hi<|im_end|>",
        "The morning train left the station just after six. ",
        "é ü — 漢字 " * 7,
        "x<|im_start|>" + "long text " * (TIKTOKEN_MAX_ENCODE_CHARS // 5),  # several pieces
    ]
    pools: list[object] = []
    original = concurrent.futures.ThreadPoolExecutor.__init__

    @functools.wraps(original)
    def counting(self: object, *args: object, **kwargs: object) -> None:
        pools.append(self)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    expected = [pooled.encode(text) for text in texts] + [pooled.encode(texts[0], allowed_special=False)]
    assert pools == []  # not counting yet
    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "__init__", counting)
    got = [tok.encode(text) for text in texts] + [tok.encode(texts[0], allowed_special=False)]
    assert pools == []
    assert got == expected
    assert len(expected[-1]) > len(expected[0])  # the special token spelled out when not allowed
    assert pooled.encode(texts[1]) and len(pools) == 1  # the unpatched one does start a pool
