"""Error figures and thresholds: equal arrays are exact, NaN never passes, relative limits scale with the peak."""

from __future__ import annotations

import math

import numpy as np
import pytest

from export.metrics import Figures, Tolerance, compare, worst


def test_equal_arrays_have_zero_error_and_infinite_snr() -> None:
    a = np.linspace(-1, 1, 101, dtype=np.float32)
    figures = compare(a, a.copy())
    assert figures == Figures(max_abs=0.0, snr_db=math.inf, match=None, peak=1.0)
    assert figures.as_json()["snr_db"] == "inf"


def test_snr_and_max_abs_of_a_known_error() -> None:
    reference = np.ones(1000, dtype=np.float32)
    candidate = reference + np.float32(0.01)  # noise power 1e-4 against signal power 1: 40 dB
    figures = compare(reference, candidate)
    assert figures.max_abs == pytest.approx(0.01, rel=1e-5)
    assert figures.snr_db == pytest.approx(40.0, abs=1e-3)


def test_codes_report_the_fraction_equal() -> None:
    reference = np.arange(100, dtype=np.int32)
    candidate = reference.copy()
    candidate[:3] += 1
    assert compare(reference, candidate).match == pytest.approx(0.97)


def test_nan_and_shape_mismatch_fail() -> None:
    reference = np.ones(4, dtype=np.float32)
    broken = reference.copy()
    broken[1] = np.nan
    failures = Tolerance(max_abs=1.0, min_snr_db=0.0).failures(compare(reference, broken))
    assert len(failures) == 2  # both the max-abs and the SNR check refuse NaN
    with pytest.raises(ValueError, match="differs from the reference"):
        compare(reference, np.ones(5, dtype=np.float32))


def test_relative_tolerance_scales_with_the_reference_peak() -> None:
    reference = np.array([100.0, -50.0], dtype=np.float32)
    candidate = reference + np.float32(0.005)
    assert Tolerance(max_abs=1e-4, min_snr_db=60, relative=True).failures(compare(reference, candidate)) == []
    failures = Tolerance(max_abs=1e-4, min_snr_db=60).failures(compare(reference, candidate))
    assert failures == ["max abs error 0.005 > 0.0001"]


def test_worst_takes_each_figure_on_its_own() -> None:
    combined = worst([Figures(1e-3, 80.0, peak=1.0), Figures(1e-5, 50.0, peak=2.0)])
    assert combined == Figures(max_abs=1e-3, snr_db=50.0, match=None, peak=2.0)
