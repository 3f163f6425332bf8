"""Fixtures shared by the engine tests: the tiny random checkpoint's language model (loaded once) and codec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_lm(tiny_checkpoint: Path) -> Any:
    """The tiny checkpoint's DualARTransformer in fp32 on CPU (loaded by the engine's checkpoint loader)."""
    from voicereel.engine.checkpoints import load_text2semantic

    torch.set_num_threads(1)
    return load_text2semantic(tiny_checkpoint, "cpu", torch.float32)


@pytest.fixture(scope="module")
def codec(tiny_checkpoint: Path) -> Any:
    """The tiny checkpoint's codec in fp32 on CPU, one per test module (some tests change its shapes and restore
    them)."""
    from voicereel.engine.codec import Codec

    torch.set_num_threads(1)
    return Codec.from_checkpoint(tiny_checkpoint, "cpu", torch.float32)
