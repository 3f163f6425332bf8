"""Master and encode in one step, checking the decoded file against the targets.

Lossy codecs move loudness and peaks. Two measures keep the delivered file on target:
- before mastering, the signal is band-limited (zero phase) under the codec's own low-pass, so the codec does
  not remove energy the loudness meter counted (LAME at 44.1 kHz otherwise costs broadband signals ~0.45 LU);
- the master's ceiling sits `LOSSY_HEADROOM_DB` under the requested one (room for the codec's usual
  overshoot of a few tenths of a dB, as EBU R128 advises for lossy delivery);
- the encoded file is decoded and measured; when it misses the target by more than 0.1 LU or exceeds the
  ceiling (MPEG-2/2.5 MP3 at 8-24 kHz loses ~0.45 LU on noisy signals), the signal is mastered again to the
  target shifted by the codec's measured loudness change and under the ceiling lowered by its measured peak
  overshoot, and encoded once more.
The report holds the measurements of the decoded file that is delivered.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from voicereel.audio.encode import encode
from voicereel.audio.loudness import integrated_lufs, to_db, true_peak
from voicereel.audio.master import MasterReport, master
from voicereel.audio.pcm import band_limit
from voicereel.schemas import OutputFormat

LOSSY = frozenset({OutputFormat.mp3, OutputFormat.ogg})
_LOUDNESS_SLACK_LU = 0.1
LOSSY_HEADROOM_DB = 0.5
_BAND_LIMIT_FRACTION = 0.9  # of Nyquist
_BAND_LIMIT_MAX_HZ = 20_000.0  # Opus is full band to 20 kHz


@dataclass(frozen=True)
class Delivered:
    data: bytes
    master: MasterReport
    loudness_lufs: float  # of the decoded delivered file
    true_peak_dbtp: float  # of the decoded delivered file
    reencoded: bool

    def as_dict(self) -> dict[str, object]:
        def clean(value: float) -> float | None:
            return round(value, 3) if math.isfinite(value) else None

        return {
            "loudness_lufs": clean(self.loudness_lufs),
            "true_peak_dbtp": clean(self.true_peak_dbtp),
            "reencoded": self.reencoded,
            "master": self.master.as_dict(),
        }


def _measure(data: bytes, rate: int) -> tuple[float, float]:
    pcm, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return integrated_lufs(pcm, rate), to_db(true_peak(pcm, rate))


def master_and_encode(
    pcm: np.ndarray, rate: int, fmt: OutputFormat, *, target_lufs: float, ceiling_dbtp: float
) -> Delivered:
    if fmt not in LOSSY:
        mastered, report = master(pcm, rate, target_lufs=target_lufs, ceiling_dbtp=ceiling_dbtp)
        return Delivered(encode(mastered, rate, fmt), report, report.output_lufs, report.true_peak_dbtp, False)

    limited = band_limit(pcm, rate, min(_BAND_LIMIT_FRACTION * rate / 2, _BAND_LIMIT_MAX_HZ))
    master_ceiling = ceiling_dbtp - LOSSY_HEADROOM_DB
    mastered, report = master(limited, rate, target_lufs=target_lufs, ceiling_dbtp=master_ceiling)
    data = encode(mastered, rate, fmt)
    lufs, peak_db = _measure(data, rate)
    if not math.isfinite(lufs) or (abs(target_lufs - lufs) <= _LOUDNESS_SLACK_LU and peak_db <= ceiling_dbtp):
        return Delivered(data, report, lufs, peak_db, reencoded=False)

    codec_shift = lufs - report.output_lufs
    overshoot = max(0.0, peak_db - report.true_peak_dbtp)
    mastered, report = master(
        limited, rate, target_lufs=target_lufs - codec_shift, ceiling_dbtp=min(master_ceiling, ceiling_dbtp - overshoot)
    )
    data = encode(mastered, rate, fmt)
    lufs, peak_db = _measure(data, rate)
    return Delivered(data, report, lufs, peak_db, reencoded=True)
