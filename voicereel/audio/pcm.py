"""Decoding uploads to float32 mono and resampling with soxr.

Decoding is bounded in samples: a small compressed upload can expand to hours of audio, so reading stops at
`max_seconds` and the caller learns that the audio was cut.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import scipy.fft
import soundfile as sf
import soxr

from voicereel.errors import ErrorCode, VoiceReelError

# soxr's "very high quality" preset: passband to 0.91 x Nyquist flat within 0.01 dB, 170 dB rejection.
RESAMPLE_QUALITY = "VHQ"


@dataclass(frozen=True)
class Decoded:
    pcm: np.ndarray  # float32 mono, [-1, 1]
    sample_rate: int
    truncated: bool  # decoding stopped at max_seconds
    source_channels: int


def decode_mono(data: bytes, *, max_seconds: float) -> Decoded:
    """Decode an audio file (wav, flac, ogg, mp3 — whatever libsndfile reads) to float32 mono."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate = int(f.samplerate)
            limit = int(max_seconds * rate)
            frames = f.read(frames=limit + 1, dtype="float32", always_2d=True)
            channels = int(f.channels)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise VoiceReelError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"cannot decode the audio: {exc}") from exc
    truncated = frames.shape[0] > limit
    frames = frames[:limit]
    mono = frames.mean(axis=1, dtype=np.float32) if channels > 1 else frames[:, 0]
    return Decoded(np.ascontiguousarray(mono, dtype=np.float32), rate, truncated, channels)


def resample(pcm: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr). Output length is ceil(len * out/in); time zero stays at sample zero."""
    if in_rate == out_rate or pcm.size == 0:
        return np.asarray(pcm, dtype=np.float32)
    out = soxr.resample(np.asarray(pcm, dtype=np.float32), in_rate, out_rate, quality=RESAMPLE_QUALITY)
    return np.asarray(out, dtype=np.float32)


def samples_for_ms(ms: float, rate: int) -> int:
    return round(ms * rate / 1000.0)


def band_limit(pcm: np.ndarray, rate: int, cutoff_hz: float, transition_hz: float = 500.0) -> np.ndarray:
    """Zero-phase low-pass (FFT, raised-cosine transition ending at `cutoff_hz`): no delay, so sample offsets
    keep their meaning. Zero padding keeps the tail from wrapping onto the start."""
    x = np.asarray(pcm, dtype=np.float32)
    if x.size == 0 or cutoff_hz >= rate / 2:
        return x
    size = scipy.fft.next_fast_len(x.size + int(0.05 * rate), real=True)
    spectrum = scipy.fft.rfft(x, size)  # single precision in, single precision out
    hz_per_bin = rate / size
    first = max(0, int(np.ceil((cutoff_hz - transition_hz) / hz_per_bin)))
    last = min(spectrum.size, int(np.ceil(cutoff_hz / hz_per_bin)))
    position = (np.arange(first, last) * hz_per_bin - (cutoff_hz - transition_hz)) / transition_hz
    spectrum[first:last] *= (0.5 * (1.0 + np.cos(np.pi * position))).astype(np.float32)
    spectrum[last:] = 0
    return np.asarray(scipy.fft.irfft(spectrum, size)[: x.size], dtype=np.float32)
