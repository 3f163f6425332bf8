import io

import numpy as np
import pytest
import soundfile as sf

from voicereel.audio.encode import CODECS, UnsupportedOutput, check_supported, encode
from voicereel.schemas import OutputFormat


def _signal(rate: int) -> tuple[np.ndarray, int]:
    """Silence, then noise from a known sample on: its onset must survive the codec."""
    rng = np.random.default_rng(1)
    x = np.zeros(rate * 2, dtype=np.float32)
    onset = rate // 2 + 123
    x[onset:] = (rng.standard_normal(x.size - onset) * 0.2).clip(-0.9, 0.9)
    return x, onset


@pytest.mark.parametrize("fmt", list(OutputFormat))
@pytest.mark.parametrize("rate", [16000, 48000])
def test_round_trip_keeps_length_and_onset(fmt: OutputFormat, rate: int) -> None:
    x, onset = _signal(rate)
    data = encode(x, rate, fmt)
    decoded, decoded_rate = sf.read(io.BytesIO(data), dtype="float32")
    assert decoded_rate == rate
    assert decoded.size == x.size  # encoder delay/padding removed on decode (LAME tag, Opus pre-skip)
    found = int(np.argmax(np.abs(decoded) > 0.05))
    assert abs(found - onset) <= rate // 1000  # within 1 ms
    assert sf.info(io.BytesIO(data)).format == CODECS[fmt].container


def test_opus_rejects_rates_it_cannot_encode() -> None:
    with pytest.raises(UnsupportedOutput, match="Opus"):
        check_supported(OutputFormat.ogg, 44100)
    check_supported(OutputFormat.mp3, 44100)
