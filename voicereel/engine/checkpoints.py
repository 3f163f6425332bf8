"""Fish-speech checkpoints: inspect, load (with fish-speech's own classes) and make random ones.

Layout (openaudio-s1-mini): `<dir>/{model.pth, codec.pth, config.json, tokenizer.tiktoken}` plus
`special_tokens.json` (the ids of `<|im_end|>`, `<|semantic:i|>` ...). The language model is fish-speech's
`DualARTransformer` built from `config.json`; the codec is its `DAC` built from the package's
`configs/modded_dac_vq.yaml`. A random checkpoint made here (tiny or benchmark) has the same layout and two extra
files: `voicereel_checkpoint.json` (what it is: weights are random, audio is noise) and, for the tiny one,
`codec_config.yaml` (the small codec's hydra config; without that file the package's real config is used).

CLI: `python -m voicereel.engine.checkpoints tiny --out checkpoints/tiny` (or `benchmark --out ...`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

MODEL_FILE = "model.pth"
CODEC_FILE = "codec.pth"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.tiktoken"
SPECIAL_TOKENS_FILE = "special_tokens.json"
CODEC_CONFIG_FILE = "codec_config.yaml"
MARKER_FILE = "voicereel_checkpoint.json"
REQUIRED_FILES = (MODEL_FILE, CODEC_FILE, CONFIG_FILE, TOKENIZER_FILE)

# Codec buffers that the model recomputes in its constructor (RoPE tables, causal masks); a checkpoint may omit
# them (ours do: the encoder's 16384 x 16384 mask alone is 268 MB).
_DERIVED_CODEC_BUFFERS = ("causal_mask", "freqs_cis")


class CheckpointError(RuntimeError):
    """A checkpoint directory is incomplete or its weights do not fit the model its config describes."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint directory holds. `kind` is `real` unless our marker says `tiny` or `benchmark`."""

    root: Path
    kind: str
    files: Mapping[str, Path]
    sizes: Mapping[str, int]
    random_weights: bool

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def codec_config(self) -> Path | None:
        return self.files.get(CODEC_CONFIG_FILE)


def inspect_checkpoint(ckpt_dir: Path | str) -> CheckpointInfo:
    """Check the layout of `ckpt_dir` and describe it; raises CheckpointError naming what is missing."""
    root = Path(ckpt_dir)
    if not root.is_dir():
        raise CheckpointError(f"checkpoint directory {root} does not exist")
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {root} lacks {', '.join(missing)} (expected {', '.join(REQUIRED_FILES)})")
    optional = (SPECIAL_TOKENS_FILE, CODEC_CONFIG_FILE, MARKER_FILE)
    names = [*REQUIRED_FILES, *(name for name in optional if (root / name).is_file())]
    files = {name: root / name for name in names}
    kind, random_weights = "real", False
    if MARKER_FILE in files:
        marker = json.loads(files[MARKER_FILE].read_text())
        kind, random_weights = str(marker["kind"]), bool(marker["random_weights"])
    return CheckpointInfo(
        root=root,
        kind=kind,
        files=files,
        sizes={name: path.stat().st_size for name, path in files.items()},
        random_weights=random_weights,
    )


def fish_speech_config_dir() -> Path:
    """The package's `configs/` folder (fish_speech is a namespace package: no `__file__`)."""
    import fish_speech

    return Path(next(iter(fish_speech.__path__))) / "configs"


# --- language model ------------------------------------------------------------------------------------------


def load_lm_config(ckpt_dir: Path | str) -> Any:
    """`DualARModelArgs` from `config.json`, through fish-speech's own parser."""
    from fish_speech.models.text2semantic.llama import BaseModelArgs, DualARModelArgs

    config = BaseModelArgs.from_pretrained(str(Path(ckpt_dir) / CONFIG_FILE))
    if not isinstance(config, DualARModelArgs):
        raise CheckpointError(f"{ckpt_dir}: model_type {config.model_type!r} is not dual_ar")
    return config


def load_tokenizer(ckpt_dir: Path | str) -> Any:
    """fish-speech's `FishTokenizer` (reads special_tokens.json when present, as upstream does)."""
    from fish_speech.tokenizer import FishTokenizer

    with warnings.catch_warnings():
        # upstream reads tokenizer.tiktoken with a bare open(...).read(); CPython closes it at once, but warns.
        warnings.simplefilter("ignore", ResourceWarning)
        tokenizer = FishTokenizer.from_pretrained(str(ckpt_dir))
    encode_in_calling_thread(tokenizer.tkt_model)
    return tokenizer


def encode_in_calling_thread(encoding: Any) -> None:
    """Make a tiktoken ``Encoding``'s ``encode_batch`` encode its strings one by one in the calling thread.

    ``FishTokenizer.encode`` cuts its text into pieces and hands them to ``encode_batch``, which starts a pool of
    up to eight threads on every call. A request's prompt takes about six such calls; in text2semantic's stub,
    whose decode loop holds the GIL between steps, starting and joining those threads cost each request
    milliseconds (on an H100 a burst of 16 requests reached the engine 12.5 ms apart with the pools, ~5 ms apart
    without; perf/results, eleventh session). The tokens are the same: ``encode_batch`` maps ``encode`` with the
    same arguments.
    """

    def encode_batch(
        text: list[str],
        *,
        num_threads: int = 8,
        allowed_special: Any = frozenset(),
        disallowed_special: Any = "all",
    ) -> list[list[int]]:
        del num_threads  # no pool
        return [
            encoding.encode(piece, allowed_special=allowed_special, disallowed_special=disallowed_special)
            for piece in text
        ]

    encoding.encode_batch = encode_batch


def build_text2semantic(config: Any, tokenizer: Any) -> Any:
    """An unloaded `DualARTransformer` (random init); on the meta device when called under `torch.device('meta')`."""
    from fish_speech.models.text2semantic.llama import DualARTransformer

    vocab_needed = max(tokenizer.all_special_tokens_with_ids.values()) + 1
    if config.vocab_size < vocab_needed:
        raise CheckpointError(f"config vocab_size {config.vocab_size} < tokenizer ids ({vocab_needed})")
    return DualARTransformer(config, tokenizer=tokenizer)


def _lm_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """model.pth as upstream reads it: unwrap a Lightning `state_dict`, drop `model.` and audio-projector keys."""
    weights = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    if "state_dict" in weights:
        weights = weights["state_dict"]
    if next(iter(weights)).startswith("model."):
        weights = {key.removeprefix("model."): value for key, value in weights.items()}
    return {key: value for key, value in weights.items() if "audio_" not in key}


def load_text2semantic(
    ckpt_dir: Path | str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> Any:
    """Load the `DualARTransformer` of a checkpoint, in eval mode, on `device` in `dtype`.

    Unlike upstream's `from_pretrained` (strict=False, warnings only) every parameter must be present with its
    shape: a half-loaded model generates plausible-looking garbage.
    """
    root = inspect_checkpoint(ckpt_dir).root
    config = load_lm_config(root)
    tokenizer = load_tokenizer(root)
    with torch.device(device):
        model = build_text2semantic(config, tokenizer)
    weights = _lm_state_dict(root / MODEL_FILE)
    _load_strict(model, weights, root / MODEL_FILE, derived=())
    return model.to(device=device, dtype=dtype).eval()


# --- codec -----------------------------------------------------------------------------------------------------


def codec_config_path(ckpt_dir: Path | str) -> Path:
    """The checkpoint's own codec config if it has one (tiny), else the package's real one."""
    own = Path(ckpt_dir) / CODEC_CONFIG_FILE
    return own if own.is_file() else fish_speech_config_dir() / "modded_dac_vq.yaml"


def build_codec(config_path: Path) -> Any:
    """An unloaded `DAC` instantiated from a hydra config (random init)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    with warnings.catch_warnings():
        # descript-audio-codec (imported here by hydra) decorates Snake with torch.jit.script and builds its
        # layers with torch.nn.utils.weight_norm; both are deprecated with unchanged maths, and not ours to fix.
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit.script.*")
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*weight_norm.*")
        return instantiate(OmegaConf.load(config_path))


def _codec_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """codec.pth as upstream reads it: unwrap `state_dict`, keep only `generator.` keys of a training checkpoint."""
    weights = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    if "state_dict" in weights:
        weights = weights["state_dict"]
    if any("generator." in key for key in weights):
        weights = {key.replace("generator.", ""): v for key, v in weights.items() if "generator." in key}
    return dict(weights)


def load_codec(ckpt_dir: Path | str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Any:
    """Load the `DAC` codec of a checkpoint, in eval mode, on `device` in `dtype`."""
    root = inspect_checkpoint(ckpt_dir).root
    model = build_codec(codec_config_path(root))
    _load_strict(model, _codec_state_dict(root / CODEC_FILE), root / CODEC_FILE, derived=_DERIVED_CODEC_BUFFERS)
    return model.to(device=device, dtype=dtype).eval()


def codec_state_dict_for_saving(codec: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The codec's weights without the buffers its constructor recomputes."""
    return {
        key: value for key, value in codec.state_dict().items() if key.rsplit(".", 1)[-1] not in _DERIVED_CODEC_BUFFERS
    }


def _load_strict(
    model: torch.nn.Module, weights: Mapping[str, torch.Tensor], source: Path, derived: tuple[str, ...]
) -> None:
    """load_state_dict that fails on any missing or unexpected key, except recomputable buffers in `derived`."""
    try:
        result = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # size mismatches raise even with strict=False
        raise CheckpointError(f"{source} does not fit its config: {exc}") from exc
    missing = [key for key in result.missing_keys if key.rsplit(".", 1)[-1] not in derived]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{source} does not fit its config: {len(missing)} missing keys {missing[:5]}, "
            f"{len(result.unexpected_keys)} unexpected keys {result.unexpected_keys[:5]}"
        )


# --- random checkpoints (implemented in random_checkpoints; imported late: it builds on this module) -----------


def make_tiny_checkpoint(dest: Path | str, seed: int = 0) -> CheckpointInfo:
    """Random-weight checkpoint with tiny dimensions, same layout and loader as the real one (CPU-fast)."""
    from voicereel.engine.random_checkpoints import write_tiny_checkpoint

    return write_tiny_checkpoint(Path(dest), seed=seed)


def make_benchmark_checkpoint(dest: Path | str, seed: int = 0, device: str = "cpu") -> CheckpointInfo:
    """Random-weight checkpoint with S1-mini shapes (DESIGN section 5) and the real-size codec."""
    from voicereel.engine.random_checkpoints import write_benchmark_checkpoint

    return write_benchmark_checkpoint(Path(dest), seed=seed, device=device)


if __name__ == "__main__":
    from voicereel.engine.random_checkpoints import main

    raise SystemExit(main())
