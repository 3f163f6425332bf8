"""Stage 5: only verified, unchanged artifacts are installed; plan models get configs from the templates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from export.install import TEMPLATES, install, split_overrides
from export.report import BuildLayout, Report, ReportError
from voicereel.modelrepo import render_configs


def _report_copy(export_run: Any, tmp_path: Path) -> Report:
    build = tmp_path / "build"
    shutil.copytree(export_run.build_dir, build)
    return Report.load(BuildLayout(build), json.loads((build / "report.json").read_text())["checkpoint"])


def test_plan_model_configs_render_from_the_templates(tiny_checkpoint: Path) -> None:
    overrides = {"codec_decoder_trt": {"max_batch_size": 16, "instance_count": 2}}
    configs = render_configs(tiny_checkpoint, overrides, source=TEMPLATES)
    decoder = configs["codec_decoder_trt"]
    assert 'platform: "tensorrt_plan"' in decoder and "max_batch_size: 16" in decoder
    assert "count: 2\n    kind: KIND_GPU" in decoder and "max_queue_delay_microseconds: 4000" in decoder
    assert 'name: "pcm"' in decoder and "$" not in decoder
    assert 'platform: "tensorrt_plan"' in configs["codec_encoder_trt"]


def test_overrides_go_to_the_model_they_name() -> None:
    repository, plans = split_overrides(
        {
            "codec_decoder": {"max_batch_size": 8},
            "codec_decoder_trt": {"instance_count": 2},
            "shared": {"codec_chunk_frames": 32},
        }
    )
    assert repository == {"codec_decoder": {"max_batch_size": 8}, "shared": {"codec_chunk_frames": 32}}
    assert plans == {"codec_decoder_trt": {"instance_count": 2}}


def test_install_refuses_a_failed_or_changed_onnx_model(export_run: Any, tmp_path: Path) -> None:
    report = _report_copy(export_run, tmp_path)
    report.graph("codec_decoder")["verify_onnx"]["passed"] = False
    with pytest.raises(ReportError, match="codec_decoder: its onnx failed verification"):
        install(report, tmp_path / "repo", export_run.checkpoint, {})

    report = _report_copy(export_run, tmp_path / "again")
    path = report.layout.onnx("codec_encoder")
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ReportError, match="changed since it was verified"):
        install(report, tmp_path / "repo", export_run.checkpoint, {})
    assert not (tmp_path / "repo").exists()


def test_install_takes_repository_knobs_and_refuses_plan_knobs_without_a_plan(export_run: Any, tmp_path: Path) -> None:
    report = _report_copy(export_run, tmp_path)
    installed = install(report, tmp_path / "repo", export_run.checkpoint, {"codec_decoder": {"max_batch_size": 8}})
    assert "max_batch_size: 8" in (tmp_path / "repo" / "codec_decoder" / "config.pbtxt").read_text()
    assert set(installed["models"]) == {"codec_encoder", "codec_decoder"}
    with pytest.raises(ReportError, match="no verified plan of theirs to install"):
        install(report, tmp_path / "other", export_run.checkpoint, {"codec_decoder_trt": {"instance_count": 2}})
    assert not (tmp_path / "other").exists()  # refused before anything was built


def test_onnx_codec_models_run_on_cpu_instances_unless_told_otherwise(export_run: Any, tmp_path: Path) -> None:
    config = (export_run.repository / "codec_decoder" / "config.pbtxt").read_text()
    assert "kind: KIND_CPU" in config  # this onnxruntime has only the CPU provider
    report = _report_copy(export_run, tmp_path)
    install(report, tmp_path / "repo", export_run.checkpoint, {"codec_decoder": {"runtime": "torch"}})
    assert 'string_value: "torch"' in (tmp_path / "repo" / "codec_decoder" / "config.pbtxt").read_text()
