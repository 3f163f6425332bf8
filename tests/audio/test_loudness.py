import math

import numpy as np
import pyloudnorm
import pytest

from voicereel.audio.loudness import KWeighted, from_db, integrated_lufs, oversampled_peaks, to_db, true_peak


def test_integrated_matches_pyloudnorm_and_handles_silence(speech) -> None:
    x = speech("Loudness is measured over gated blocks of four hundred milliseconds.")
    assert integrated_lufs(x, 44100) == pytest.approx(pyloudnorm.Meter(44100).integrated_loudness(x.astype(float)))
    assert integrated_lufs(np.zeros(44100, dtype=np.float32), 44100) == -math.inf
    assert math.isfinite(integrated_lufs(x[:2000], 44100))  # shorter than one block: padded, still measured


def test_kweighted_fast_path_equals_the_meter(speech) -> None:
    x = speech("The fast path filters once and evaluates gain curves without filtering again.")
    weighted = KWeighted(x, 44100)
    assert weighted.lufs() == pytest.approx(integrated_lufs(x, 44100), abs=1e-6)
    assert weighted.lufs(0.5) == pytest.approx(integrated_lufs(x * 0.5, 44100), abs=1e-6)
    # a slow gain curve (the limiter's kind) is close to filtering the product
    curve = np.linspace(1.0, 0.5, x.size).astype(np.float32)
    assert weighted.lufs(curve) == pytest.approx(integrated_lufs(x * curve, 44100), abs=0.02)


def test_true_peak_sees_between_samples() -> None:
    rate = 48000
    n = np.arange(rate)
    # a quarter-rate sine sampled 45 degrees off its crests: every sample is at 0.707, the wave peaks at 1.0
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4).astype(np.float32)
    assert float(np.abs(x).max()) == pytest.approx(0.7071, abs=1e-3)
    # away from the abrupt edges (their ringing is real overshoot of a cut-off sine)
    assert to_db(float(oversampled_peaks(x, rate)[1000:-1000].max())) == pytest.approx(0.0, abs=0.01)
    assert to_db(true_peak(x, rate)) >= -0.01
    assert true_peak(np.zeros(0, dtype=np.float32), rate) == 0.0


def test_db_helpers() -> None:
    assert from_db(-6.0) == pytest.approx(0.501, abs=1e-3)
    assert to_db(from_db(-3.3)) == pytest.approx(-3.3)
    assert to_db(0.0) == -math.inf
