"""TensorRT stages: named MIN/OPT/MAX profiles from the serving knobs; a plan built and verified where TensorRT
and a GPU exist (marked gpu), and a clear refusal where they do not."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from export.install import knob_values
from export.tensorrt import TensorRTUnavailable, codec_profiles, load_tensorrt

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def test_profiles_follow_the_serving_knobs(tiny_checkpoint: Path) -> None:
    encoder = knob_values("codec_encoder_trt", {"codec_encoder_trt": {"max_batch_size": 4}}, tiny_checkpoint)
    decoder = knob_values("codec_decoder_trt", {}, tiny_checkpoint)
    profiles = codec_profiles(encoder, decoder, window_frames=128)
    enc, dec = profiles["codec_encoder"], profiles["codec_decoder"]
    assert (enc.name, enc.input) == ("reference_clips", "pcm")
    assert enc.min == (1, 2048) and enc.opt == (1, 646 * 2048) and enc.max == (4, 1938 * 2048)  # 30 s, 90 s
    assert (dec.name, dec.input) == ("decode_windows", "codes")
    assert dec.min == (1, 10, 1) and dec.opt == (16, 10, 128) and dec.max == (32, 10, 512)
    assert dec.limits.max_batch == 32 and dec.limits.max_frames == 512
    assert enc.as_json()["OPT"] == enc.opt


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is importable here")
def test_without_tensorrt_loading_it_says_why() -> None:
    with pytest.raises(TensorRTUnavailable, match=r"TensorRT is not importable here \(No module named 'tensorrt'\)"):
        load_tensorrt()


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_TENSORRT, reason="TensorRT is not installed here (NVIDIA's index, not PyPI)")
def test_plans_are_built_verified_and_installed(export_run: Any, run_export: Any, tmp_path: Path) -> None:
    import shutil

    build = tmp_path / "build"
    shutil.copytree(export_run.build_dir, build)
    done = run_export(
        "--checkpoint",
        export_run.checkpoint,
        "--build-dir",
        build,
        "--out",
        tmp_path / "repo",
        "--stage",
        "build-trt",
        "--graphs",
        "codec_encoder,codec_decoder",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for model in ("codec_encoder_trt", "codec_decoder_trt"):
        config = (tmp_path / "repo" / model / "config.pbtxt").read_text()
        assert 'platform: "tensorrt_plan"' in config and (tmp_path / "repo" / model / "1" / "model.plan").is_file()
