import numpy as np

from voicereel.audio.quality import quality_report


def test_clean_speech_report(long_speech) -> None:
    x, _ = long_speech
    report = quality_report(x, 44100)
    assert 40 < report.duration_s < 60
    assert report.snr_db is not None and report.snr_db > 40
    assert report.peak_dbfs is not None and report.peak_dbfs < 0
    assert report.loudness_lufs is not None and -30 < report.loudness_lufs < -10
    assert 0.05 < report.silence_ratio < 0.5
    assert report.clipped_fraction == 0
    assert report.warnings == []


def test_noise_and_clipping_are_flagged(long_speech) -> None:
    x, _ = long_speech
    rng = np.random.default_rng(0)
    noisy = x + (rng.standard_normal(x.size) * 0.02).astype(np.float32)
    report = quality_report(noisy, 44100)
    assert report.snr_db is not None and report.snr_db < 20
    assert any(w.startswith("noisy") for w in report.warnings)

    clipped = quality_report(np.clip(x * 6, -1, 1), 44100)
    assert clipped.clipped_fraction > 0.001
    assert any(w.startswith("clipping") for w in clipped.warnings)


def test_silence_report() -> None:
    report = quality_report(np.zeros(44100 * 2, dtype=np.float32), 44100)
    assert report.loudness_lufs is None
    assert report.peak_dbfs is None
    assert any(w.startswith("quiet") for w in report.warnings)
    assert report.as_dict()["duration_s"] == 2.0
