import io

import numpy as np
import pytest
import soundfile as sf

from voicereel.audio.pcm import band_limit, decode_mono, resample, samples_for_ms
from voicereel.errors import ErrorCode, VoiceReelError


def _tone(freq: float, rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    mono = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("FLAC", "PCM_24"), ("OGG", "VORBIS"), ("MP3", None)])
def test_decode_downmixes_to_mono(fmt: str, subtype: str | None) -> None:
    buf = io.BytesIO()
    sf.write(buf, _tone(440, 48000, 1.0, channels=2), 48000, format=fmt, subtype=subtype)
    decoded = decode_mono(buf.getvalue(), max_seconds=10)
    assert decoded.sample_rate == 48000
    assert decoded.source_channels == 2
    assert decoded.pcm.ndim == 1 and decoded.pcm.dtype == np.float32
    assert abs(decoded.pcm.size - 48000) < 3000  # lossy codecs may pad to a frame
    assert not decoded.truncated


def test_decode_stops_at_the_bound() -> None:
    buf = io.BytesIO()
    sf.write(buf, _tone(440, 8000, 5.0), 8000, format="WAV")
    decoded = decode_mono(buf.getvalue(), max_seconds=2)
    assert decoded.truncated
    assert decoded.pcm.size == 16000


def test_undecodable_bytes_are_unsupported_media() -> None:
    with pytest.raises(VoiceReelError) as info:
        decode_mono(b"this is not audio at all" * 10, max_seconds=10)
    assert info.value.code is ErrorCode.UNSUPPORTED_MEDIA_TYPE


def test_resample_keeps_pitch_and_time_origin() -> None:
    x = np.zeros(22050, dtype=np.float32)
    x[11025:] = _tone(1000, 22050, 0.5)
    y = resample(x, 22050, 48000)
    assert y.size == pytest.approx(48000, abs=1)
    spectrum = np.abs(np.fft.rfft(y[24000:]))
    assert np.fft.rfftfreq(24000, 1 / 48000)[np.argmax(spectrum)] == pytest.approx(1000, abs=2)
    onset = int(np.argmax(np.abs(y) > 0.05))
    assert abs(onset - 24000) <= 3  # time zero stays at sample zero: no filter delay


def test_band_limit_is_zero_phase_low_pass() -> None:
    rate = 48000
    low, high = _tone(1000, rate, 1.0), _tone(22000, rate, 1.0)
    filtered = band_limit(low + high, rate, 20000)
    residual = filtered - low
    assert np.sqrt(np.mean(residual[2000:-2000] ** 2)) < 1e-3  # the 22 kHz tone is gone, 1 kHz untouched
    assert band_limit(low, rate, 30000) is not None


def test_samples_for_ms() -> None:
    assert samples_for_ms(300, 44100) == 13230
    assert samples_for_ms(0, 8000) == 0
