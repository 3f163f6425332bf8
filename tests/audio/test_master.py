import numpy as np
import pytest

from voicereel.audio.loudness import integrated_lufs, to_db, true_peak
from voicereel.audio.master import LIMITER_WINDOW_S, limiter_gain, master


@pytest.mark.parametrize(("target", "ceiling"), [(-16.0, -1.0), (-23.0, -2.0), (-12.0, -1.0)])
def test_master_meets_loudness_and_true_peak(speech, target: float, ceiling: float) -> None:
    x = speech("Mastering raises quiet speech to the target and keeps the peaks under the ceiling.")
    y, report = master(x, 44100, target_lufs=target, ceiling_dbtp=ceiling)
    assert integrated_lufs(y, 44100) == pytest.approx(target, abs=0.05)
    assert to_db(true_peak(y, 44100)) <= ceiling + 1e-6
    assert report.output_lufs == pytest.approx(integrated_lufs(y, 44100))
    assert y.size == x.size and y.dtype == np.float32


def test_loud_input_is_turned_down_without_limiting(speech) -> None:
    x = speech("This one is too loud.") * 3.0
    y, report = master(np.clip(x, -1, 1), 44100, target_lufs=-23.0, ceiling_dbtp=-1.0)
    assert report.gain_db < 0
    assert integrated_lufs(y, 44100) == pytest.approx(-23.0, abs=0.05)


def test_silence_passes_through() -> None:
    x = np.zeros(44100, dtype=np.float32)
    y, report = master(x, 44100, target_lufs=-16, ceiling_dbtp=-1)
    assert not y.any()
    assert report.gain_db == 0.0


def test_limiter_gain_is_smooth_and_never_above_the_need() -> None:
    rate = 48000
    peaks = np.full(rate, 0.5, dtype=np.float32)
    peaks[24000] = 2.0  # one spike, 12 dB over a 0 dBTP ceiling
    gain = limiter_gain(peaks, rate, 0.0)
    assert gain is not None
    needed = np.minimum(1.0, 10 ** (-0.1 / 20) / peaks)
    assert np.all(gain <= needed + 1e-7)
    window = round(rate * LIMITER_WINDOW_S)
    assert gain[24000 - 2 * window] == pytest.approx(1.0)  # untouched away from the spike
    assert np.abs(np.diff(gain)).max() < 0.01  # ramps, no steps (no clicks)
    assert limiter_gain(np.full(10, 0.1, dtype=np.float32), rate, -1.0) is None
