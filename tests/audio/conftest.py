"""Speech-like test audio made on the spot with espeak-ng (no recordings are committed)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import numpy as np
import pytest

from voicereel.audio import CODEC_RATE
from voicereel.audio.pcm import decode_mono, resample


def speak(text: str, voice: str = "en", words_per_min: int = 160) -> np.ndarray:
    """espeak-ng speech at the codec rate (float32 mono)."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        pytest.fail("espeak-ng is not installed (make install-system installs it); the audio tests need it")
    wav = subprocess.run(
        [binary, "-v", voice, "-s", str(words_per_min), "--stdout", text], capture_output=True, check=True, timeout=60
    ).stdout
    decoded = decode_mono(wav, max_seconds=600)
    return resample(decoded.pcm, decoded.sample_rate, CODEC_RATE)


@pytest.fixture(scope="session")
def speech() -> Callable[..., np.ndarray]:
    cache: dict[tuple[str, str, int], np.ndarray] = {}

    def make(text: str, voice: str = "en", words_per_min: int = 160) -> np.ndarray:
        key = (text, voice, words_per_min)
        if key not in cache:
            cache[key] = speak(text, voice, words_per_min)
        return cache[key].copy()

    return make


@pytest.fixture(scope="session")
def long_speech(speech: Callable[..., np.ndarray]) -> tuple[np.ndarray, str]:
    """About 50 s of read sentences and their transcript."""
    text = " ".join(f"Sentence number {i} is about the weather, which is nice today." for i in range(12))
    return speech(text, words_per_min=150), text
