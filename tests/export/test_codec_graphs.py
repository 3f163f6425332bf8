"""The export-time padding helper equals upstream's on every length, and is swapped in only while tracing."""

from __future__ import annotations

import itertools
import warnings
from types import ModuleType

import pytest
import torch

from export.codec_graphs import traceable_conv_padding, traced_extra_padding


@pytest.fixture(scope="module")
def dac_modules() -> tuple[ModuleType, ModuleType]:
    with warnings.catch_warnings():
        # descript-audio-codec (imported by fish-speech's codec) decorates a function with torch.jit.script
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit.script.*")
        from fish_speech.models.dac import modded_dac, rvq
    return modded_dac, rvq


def test_traced_padding_equals_upstreams_helper_for_every_length_and_conv_shape(
    dac_modules: tuple[ModuleType, ModuleType],
) -> None:
    modded_dac, _ = dac_modules
    # kernels, strides and dilated sizes of the codec's convolutions (7 with dilation 1, 3, 9; strided 2..16),
    # with both the causal padding they use (kernel - stride) and none
    kernels, strides = (1, 2, 3, 4, 7, 8, 16, 19, 55), (1, 2, 4, 8)
    checked = 0
    for length, kernel, stride in itertools.product(range(1, 300), kernels, strides):
        for padding in {0, max(kernel - stride, 0)}:
            x = torch.empty(1, 1, length)
            assert traced_extra_padding(x, kernel, stride, padding) == modded_dac.get_extra_padding_for_conv1d(
                x, kernel, stride, padding
            ), (length, kernel, stride, padding)
            checked += 1
    assert checked > 10_000


def test_the_swap_lasts_only_for_the_export(dac_modules: tuple[ModuleType, ModuleType]) -> None:
    modded_dac, rvq = dac_modules
    originals = modded_dac.get_extra_padding_for_conv1d, rvq.get_extra_padding_for_conv1d
    with traceable_conv_padding():
        assert modded_dac.get_extra_padding_for_conv1d is traced_extra_padding
        assert rvq.get_extra_padding_for_conv1d is traced_extra_padding
    assert (modded_dac.get_extra_padding_for_conv1d, rvq.get_extra_padding_for_conv1d) == originals
    with pytest.raises(RuntimeError), traceable_conv_padding():
        raise RuntimeError("an export that fails")
    assert (modded_dac.get_extra_padding_for_conv1d, rvq.get_extra_padding_for_conv1d) == originals
