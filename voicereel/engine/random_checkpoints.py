"""Random-weight checkpoints in the openaudio-s1-mini layout: `tiny` (tests, the no-GPU demo) and `benchmark`.

Both are written with fish-speech's own classes and read back by the same loader as the real checkpoint
(`voicereel.engine.checkpoints`). Their audio is noise: the weights are random.

- tiny: a 2-layer LM (dim 64) and a narrow codec that keeps the real codec's rates (44.1 kHz, 2048 samples per
  frame, 10 codebooks: semantic 4096 + 9 x 1024) so every shape outside the networks is the real one.
- benchmark: S1-mini shapes (28 layers, dim 1024, 16 heads / 8 KV heads of 128, FFN 3072, vocab 155,776, 4 fast
  layers, 10 x 4096 codebooks) and the real-size codec (the package's modded_dac_vq.yaml). The engine masks the
  slow head to semantic ids for it (marker `mask_slow_head_to_semantic`), so every request runs to its frame cap
  and the work per frame equals real generation.

Tokenizer of both: byte-level (256 ranks, no merges) plus the s1-mini special tokens in s1-mini order
(15 control tokens, then `<|semantic:0..4095|>`), written as tokenizer.tiktoken + special_tokens.json.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from voicereel.engine.checkpoints import (
    CODEC_CONFIG_FILE,
    CODEC_FILE,
    CONFIG_FILE,
    MARKER_FILE,
    MODEL_FILE,
    SPECIAL_TOKENS_FILE,
    TOKENIZER_FILE,
    CheckpointInfo,
    build_codec,
    build_text2semantic,
    codec_state_dict_for_saving,
    fish_speech_config_dir,
    inspect_checkpoint,
    load_lm_config,
    load_tokenizer,
)

SEMANTIC_CODEBOOK_SIZE = 4096
NUM_CODEBOOKS = 10
NOISE_WARNING = "RANDOM WEIGHTS: audio generated with this checkpoint is NOISE, not speech."

# Shared by tiny and benchmark so both exercise the same code paths as S1-mini (Qwen3-style qk-norm, untied head).
_LM_COMMON: dict[str, Any] = {
    "model_type": "dual_ar",
    "codebook_size": SEMANTIC_CODEBOOK_SIZE,
    "num_codebooks": NUM_CODEBOOKS,
    "rope_base": 1_000_000.0,
    "norm_eps": 1e-6,
    "attention_qk_norm": True,
    "tie_word_embeddings": False,
    "dropout": 0.0,
}

TINY_LM: dict[str, Any] = {
    **_LM_COMMON,
    "vocab_size": 4384,  # 256 byte tokens + 4111 special tokens, rounded up to a multiple of 32
    "n_layer": 2,
    "n_head": 4,
    "n_local_heads": 2,
    "head_dim": 16,
    "dim": 64,
    "intermediate_size": 192,
    "n_fast_layer": 1,
    "max_seq_len": 4096,
}

BENCHMARK_LM: dict[str, Any] = {
    **_LM_COMMON,
    "vocab_size": 155_776,
    "n_layer": 28,
    "n_head": 16,
    "n_local_heads": 8,
    "head_dim": 128,
    "dim": 1024,
    "intermediate_size": 3072,
    "n_fast_layer": 4,
    "max_seq_len": 8192,
}

# Overrides of the package's modded_dac_vq.yaml for the tiny codec: narrow channels and one or two transformer
# layers, but the same strides (hop 512, quantizer downsample 2 x 2 -> 2048 samples per frame), codebooks,
# causal attention windows (128 frames) and transformer block sizes as the real codec.
TINY_CODEC: dict[str, Any] = {
    "encoder_dim": 4,  # latent_dim = 4 * 2**4 = 64
    "decoder_dim": 64,  # channels 64 -> 32 -> 16 -> 8 -> 4 through the four upsampling blocks
    "encoder_transformer_layers": [0, 0, 0, 1],
    "decoder_transformer_layers": [0, 0, 0, 0],  # built but unused by upstream's DecoderBlock; skip the cost
    "quantizer.input_dim": 64,
    "quantizer.pre_module.input_dim": 64,
    "quantizer.pre_module.config.n_layer": 2,
    "quantizer.pre_module.config.n_head": 2,
    "quantizer.pre_module.config.dim": 64,
    "quantizer.pre_module.config.head_dim": 32,
    "quantizer.pre_module.config.intermediate_size": 128,
}


def _special_tokens() -> list[str]:
    """s1-mini's special tokens in its order: upstream's control tokens, then 4096 semantic tokens."""
    from fish_speech.tokenizer import ALL_SPECIAL_TOKENS, SEMANTIC_TOKEN_TEMPLATE

    control = [token for token in ALL_SPECIAL_TOKENS if not token.startswith("<|semantic:")]
    return control + [SEMANTIC_TOKEN_TEMPLATE.format(i=i) for i in range(SEMANTIC_CODEBOOK_SIZE)]


def write_byte_tokenizer(dest: Path) -> None:
    """tokenizer.tiktoken with the 256 single-byte ranks (every string encodes) + special_tokens.json."""
    lines = [f"{base64.b64encode(bytes([i])).decode()} {i}" for i in range(256)]
    (dest / TOKENIZER_FILE).write_text("\n".join(lines) + "\n")
    specials = {token: 256 + i for i, token in enumerate(_special_tokens())}
    (dest / SPECIAL_TOKENS_FILE).write_text(json.dumps(specials, indent=1))


def write_lm_config(dest: Path, fields: dict[str, Any]) -> None:
    from fish_speech.models.text2semantic.llama import DualARModelArgs

    DualARModelArgs(**fields).save(str(dest / CONFIG_FILE))


def tiny_codec_config() -> Any:
    """The package's codec config with TINY_CODEC applied (an OmegaConf DictConfig)."""
    from omegaconf import OmegaConf

    config = OmegaConf.load(fish_speech_config_dir() / "modded_dac_vq.yaml")
    for dotted, value in TINY_CODEC.items():
        OmegaConf.update(config, dotted, value, merge=False)
    # pre_module and post_module are one YAML anchor: loaded as two copies, keep them identical.
    config.quantizer.post_module = OmegaConf.create(OmegaConf.to_container(config.quantizer.pre_module))
    return config


def _write_marker(dest: Path, kind: str, seed: int, extra: dict[str, Any] | None = None) -> None:
    marker = {"kind": kind, "random_weights": True, "seed": seed, "warning": NOISE_WARNING, **(extra or {})}
    (dest / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")


def _save_lm(dest: Path, device: str, dtype: torch.dtype) -> None:
    config = load_lm_config(dest)
    tokenizer = load_tokenizer(dest)
    with torch.device(device):
        model = build_text2semantic(config, tokenizer)
    state = {key: value.to(dtype) for key, value in model.state_dict().items()}
    torch.save(state, dest / MODEL_FILE)


def _save_codec(dest: Path, config_path: Path, device: str, dtype: torch.dtype) -> None:
    codec = build_codec(config_path).to(device)
    state = {
        key: value.to(dtype) if value.is_floating_point() else value
        for key, value in codec_state_dict_for_saving(codec).items()
    }
    torch.save(state, dest / CODEC_FILE)


def write_tiny_checkpoint(dest: Path, seed: int = 0) -> CheckpointInfo:
    """Tiny random checkpoint (about 9 MB, stored in bfloat16; 5 MB of it are the LM's 10 x 4096 codebook
    embeddings). Same seed, same weights."""
    from omegaconf import OmegaConf

    dest.mkdir(parents=True, exist_ok=True)
    write_byte_tokenizer(dest)
    write_lm_config(dest, TINY_LM)
    OmegaConf.save(tiny_codec_config(), dest / CODEC_CONFIG_FILE)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _save_lm(dest, "cpu", torch.bfloat16)
        _save_codec(dest, dest / CODEC_CONFIG_FILE, "cpu", torch.bfloat16)
    _write_marker(dest, "tiny", seed)
    return inspect_checkpoint(dest)


def write_benchmark_checkpoint(dest: Path, seed: int = 0, device: str = "cpu") -> CheckpointInfo:
    """S1-mini-shaped random checkpoint: LM in bfloat16 (about 1.7 GB), real-size codec in float32 (1.6 GB)."""
    dest.mkdir(parents=True, exist_ok=True)
    write_byte_tokenizer(dest)
    write_lm_config(dest, BENCHMARK_LM)
    (dest / CODEC_CONFIG_FILE).unlink(missing_ok=True)  # the loader then uses the package's real codec config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _save_lm(dest, device, torch.bfloat16)
        _save_codec(dest, fish_speech_config_dir() / "modded_dac_vq.yaml", device, torch.float32)
    _write_marker(dest, "benchmark", seed, {"mask_slow_head_to_semantic": True})
    return inspect_checkpoint(dest)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voicereel.engine.checkpoints", description=__doc__)
    parser.add_argument("kind", choices=["tiny", "benchmark"])
    parser.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="where to initialise the benchmark weights (cuda is faster)")
    args = parser.parse_args(argv)
    banner = "!" * len(NOISE_WARNING)
    print(f"{banner}\n{NOISE_WARNING}\n{banner}", file=sys.stderr)
    if args.kind == "tiny":
        info = write_tiny_checkpoint(args.out, seed=args.seed)
    else:
        info = write_benchmark_checkpoint(args.out, seed=args.seed, device=args.device)
    for name, size in info.sizes.items():
        print(f"{info.root / name}  {size / 1e6:.2f} MB")
    print(f"{info.kind} checkpoint written to {info.root} ({info.total_bytes / 1e6:.1f} MB). {NOISE_WARNING}")
    return 0
