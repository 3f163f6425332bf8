"""Verification is not a formality: a runner that is slightly off, mixes up rows, or flips a code is caught,
with the figures that say by how much."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from export.graphs import ExportSources
from export.verify import onnxruntime_runner, verify_graph


@pytest.fixture(scope="module")
def sources(tiny_checkpoint: Any) -> ExportSources:
    torch.set_num_threads(1)
    return ExportSources(tiny_checkpoint)


def test_exported_decoder_passes_and_a_slightly_wrong_one_fails(export_run: Any, sources: ExportSources) -> None:
    exact = onnxruntime_runner(export_run.onnx("codec_decoder"))
    assert verify_graph(sources, "codec_decoder", exact).passed

    def off_by_a_thousandth_of_full_scale(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"pcm": exact(inputs)["pcm"] + np.float32(1e-3)}

    result = verify_graph(sources, "codec_decoder", off_by_a_thousandth_of_full_scale, kinds=("fixed",))
    assert not result.passed
    assert result.worst["pcm"].max_abs == pytest.approx(1e-3, rel=1e-3)
    assert any("pcm: max abs error 0.001 > 0.0001" in failure for failure in result.failures), result.failures


def test_swapped_rows_of_a_batch_fail(export_run: Any, sources: ExportSources) -> None:
    exact = onnxruntime_runner(export_run.onnx("t2s_slow_step"))

    def rows_reversed(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {
            name: value[::-1] if name in ("slow_hidden", "logits") else value for name, value in exact(inputs).items()
        }

    result = verify_graph(sources, "t2s_slow_step", rows_reversed, kinds=("fixed",))
    assert not result.passed and result.worst["logits"].snr_db < 10


def test_a_flipped_code_is_reported_with_the_audio_it_changes(export_run: Any, sources: ExportSources) -> None:
    exact = onnxruntime_runner(export_run.onnx("codec_encoder"))

    def one_semantic_code_flipped(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        codes = exact(inputs)["codes"].copy()
        codes[0, 0, 0] = (codes[0, 0, 0] + 1) % 4096
        return {"codes": codes}

    result = verify_graph(sources, "codec_encoder", one_semantic_code_flipped, kinds=("fixed",))
    first = result.cases[0]
    assert first["codes"]["match"] < 1.0
    assert first["pcm_of_codes"]["max_abs"] > 0 and first["pcm_of_codes"]["snr_db"] != "inf"
