from pathlib import Path

import numpy as np
import soundfile as sf

from voicereel.speech_fixture import reference_clip


def test_reference_clip_is_long_enough_and_not_silent(tmp_path: Path) -> None:
    path, transcript = reference_clip(tmp_path / "ref.wav", lang="en", min_seconds=12.0)
    audio, rate = sf.read(path)
    assert len(audio) / rate >= 12.0
    assert float(np.sqrt(np.mean(np.square(audio)))) > 0.01  # speech, not silence
    assert transcript.split()[0] == "The"


def test_variants_differ(tmp_path: Path) -> None:
    a, _ = reference_clip(tmp_path / "a.wav", min_seconds=3.0, variant=0)
    b, _ = reference_clip(tmp_path / "b.wav", min_seconds=3.0, variant=1)
    assert sf.read(a)[0].shape != sf.read(b)[0].shape or not np.allclose(sf.read(a)[0], sf.read(b)[0])
