"""Encoding the master to the delivered container/codec with libsndfile (through soundfile): WAV and FLAC
(16-bit PCM), MP3 (LAME through libsndfile) and Opus in Ogg. libsndfile writes the encoder delay into the
stream headers (LAME tag, Opus pre-skip) and its decoder removes it, so sample offsets survive a round trip."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from voicereel.schemas import OPUS_SAMPLE_RATES, OutputFormat


@dataclass(frozen=True)
class Codec:
    container: str  # libsndfile major format
    subtype: str
    content_type: str
    extension: str
    # libsndfile's 0..1 scale, 0 = best quality (highest bitrate) for the lossy codecs
    compression_level: float | None = None
    bitrate_mode: str | None = None


CODECS: dict[OutputFormat, Codec] = {
    OutputFormat.wav: Codec("WAV", "PCM_16", "audio/wav", "wav"),
    OutputFormat.flac: Codec("FLAC", "PCM_16", "audio/flac", "flac", compression_level=0.6),
    # Highest constant bitrate of the MPEG version the rate selects (320 kb/s at 44.1/48 kHz, 160 at 16-24 kHz,
    # 64 at 8 kHz): speech files stay small, and a constant rate keeps the codec's loudness change predictable.
    OutputFormat.mp3: Codec(
        "MP3", "MPEG_LAYER_III", "audio/mpeg", "mp3", compression_level=0.0, bitrate_mode="CONSTANT"
    ),
    OutputFormat.ogg: Codec("OGG", "OPUS", "audio/ogg", "ogg", compression_level=0.3),
}


class UnsupportedOutput(ValueError):
    """The format cannot carry this sample rate, or this libsndfile lacks the codec."""


def check_supported(fmt: OutputFormat, rate: int) -> None:
    codec = CODECS[fmt]
    if codec.container not in sf.available_formats() or codec.subtype not in sf.available_subtypes(codec.container):
        raise UnsupportedOutput(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt.value}")
    if fmt is OutputFormat.ogg and rate not in OPUS_SAMPLE_RATES:
        raise UnsupportedOutput(f"Opus encodes only at {OPUS_SAMPLE_RATES} Hz, not {rate} Hz")


def encode(pcm: np.ndarray, rate: int, fmt: OutputFormat) -> bytes:
    """Mono float32 in [-1, 1] to the bytes of a complete file."""
    check_supported(fmt, rate)
    codec = CODECS[fmt]
    out = io.BytesIO()
    data = np.clip(np.asarray(pcm, dtype=np.float32), -1.0, 1.0)
    sf.write(
        out,
        data,
        rate,
        format=codec.container,
        subtype=codec.subtype,
        compression_level=codec.compression_level,
        bitrate_mode=codec.bitrate_mode,
    )
    return out.getvalue()
