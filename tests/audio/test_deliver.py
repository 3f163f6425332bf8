import io

import numpy as np
import pytest
import soundfile as sf

from voicereel.audio.deliver import master_and_encode
from voicereel.audio.loudness import integrated_lufs, to_db, true_peak
from voicereel.audio.pcm import resample
from voicereel.schemas import OutputFormat


@pytest.mark.parametrize(
    ("fmt", "rate"),
    [(OutputFormat.mp3, 16000), (OutputFormat.mp3, 44100), (OutputFormat.ogg, 48000), (OutputFormat.flac, 22050)],
)
def test_delivered_file_meets_the_target(speech, fmt: OutputFormat, rate: int) -> None:
    rng = np.random.default_rng(0)
    voice = speech("Delivery checks the decoded file, because lossy codecs move loudness and peaks.")
    # broadband noise under the speech: the hard case for MP3 (its low-pass and quantisation remove energy)
    x = resample(voice + (rng.standard_normal(voice.size) * 0.05).astype(np.float32), 44100, rate)
    delivered = master_and_encode(x, rate, fmt, target_lufs=-16.0, ceiling_dbtp=-1.0)
    decoded, _ = sf.read(io.BytesIO(delivered.data), dtype="float32")
    assert integrated_lufs(decoded, rate) == pytest.approx(-16.0, abs=0.15)
    assert delivered.loudness_lufs == pytest.approx(integrated_lufs(decoded, rate), abs=0.01)  # 16-bit rounding
    assert to_db(true_peak(decoded, rate)) <= -1.0 + (0.5 if fmt in (OutputFormat.mp3, OutputFormat.ogg) else 0.01)
    assert delivered.as_dict()["master"]
