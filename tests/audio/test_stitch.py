import numpy as np
import pytest

from voicereel.audio.stitch import FADE_S, apply_fades, stitch, trim_silence


def _burst(n: int, value: float = 0.5) -> np.ndarray:
    return np.full(n, value, dtype=np.float32)


def test_trim_silence_keeps_the_audible_part() -> None:
    x = np.concatenate([np.zeros(100), np.full(10, 1e-6), _burst(50), np.zeros(30)]).astype(np.float32)
    assert trim_silence(x).size == 50
    silent = np.zeros(20, dtype=np.float32)
    assert trim_silence(silent).size == 20  # nothing audible: left alone


def test_fades_ramp_both_ends() -> None:
    y = apply_fades(_burst(1000), 100)
    assert 0 < y[0] < y[50] < y[99] < 0.5
    assert y[500] == pytest.approx(0.5)
    assert 0 < y[-1] < y[-50] < 0.5


def test_dc_offset_is_removed_before_placing() -> None:
    rng = np.random.default_rng(0)
    clip = (rng.standard_normal(4000) * 0.05 + 0.3).astype(np.float32)  # a strong DC offset
    signal, placements = stitch([clip, clip], [800, 0], 8000)
    line = signal[placements[0].start : placements[0].end]
    assert abs(float(line.mean())) < 0.01
    assert not signal[placements[0].end : placements[1].start].any()


def test_stitch_places_lines_with_exact_pauses() -> None:
    rate = 8000
    clips = [
        np.concatenate([np.zeros(40), _burst(800, 0.5), _burst(800, -0.5), np.zeros(25)]),
        np.concatenate([_burst(200), _burst(200, -0.5)]),
        np.concatenate([_burst(600), _burst(600, -0.5), np.zeros(3)]),
    ]
    pauses = [2400, 160, 999]  # the last pause is not used
    signal, placements = stitch(clips, pauses, rate)
    assert [(p.start, p.end) for p in placements] == [(0, 1600), (4000, 4400), (4560, 5760)]
    assert signal.size == 5760
    fade = round(FADE_S * rate)
    assert not signal[1600:4000].any() and not signal[4400:4560].any()
    assert signal[4000] > 0 and signal[4000 + fade + 1] == pytest.approx(0.5)


def test_stitch_needs_a_pause_per_clip() -> None:
    with pytest.raises(ValueError, match="one pause per clip"):
        stitch([_burst(10)], [], 8000)
