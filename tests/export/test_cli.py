"""`python -m export` on the tiny checkpoint: stages, their exit codes, and the figures it reports."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from export.names import ALL_GRAPHS
from export.pipeline import ExitCode
from export.verify import TOLERANCES

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def test_full_run_without_tensorrt_exports_verifies_and_installs(export_run: Any) -> None:
    assert export_run.returncode == ExitCode.OK, export_run.output
    report = export_run.report
    assert report["checkpoint"]["kind"] == "tiny" and report["checkpoint"]["random_weights"] is True
    for graph in ALL_GRAPHS:
        entry = report["graphs"][graph]
        assert export_run.onnx(graph).is_file()
        assert entry["onnx"]["opset"] == 17
        verification = entry["verify_onnx"]
        assert verification["passed"] is True, verification["failures"]
        kinds = {case["kind"] for case in verification["cases"]}
        assert kinds == {"fixed", "random"}
        # every compared output has figures, and each stays within the threshold stated for it
        for output, figures in verification["worst"].items():
            tolerance = TOLERANCES[graph][output]["float32"]
            if figures["match"] is not None:
                assert figures["match"] >= tolerance.min_match
            else:
                snr = float("inf") if figures["snr_db"] == "inf" else figures["snr_db"]
                assert snr >= tolerance.min_snr_db
                limit = tolerance.max_abs * (figures["peak"] if tolerance.relative else 1.0)
                assert figures["max_abs"] <= limit
    assert "stage 3 build-trt: skipped (--skip-tensorrt)" in export_run.output
    assert "no TensorRT plan installed" in export_run.output
    installed = report["stages"]["install"]["models"]
    assert sorted(installed) == ["codec_decoder", "codec_encoder"]


def test_decode_step_is_verified_at_several_cache_lengths(export_run: Any) -> None:
    cases = export_run.report["graphs"]["t2s_slow_step"]["verify_onnx"]["cases"]
    assert {case["label"].split(",")[0] for case in cases} == {"cache 16", "cache 128", "cache 512"}
    fast = export_run.report["graphs"]["t2s_fast_step"]["verify_onnx"]["cases"]
    positions = {int(case["label"].split(",")[0].removeprefix("codebook position ")) for case in fast}
    assert positions == set(range(10))


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is importable here; its absence cannot be tested")
def test_tensorrt_stages_say_so_in_one_line_and_exit_20(export_run: Any, run_export: Any) -> None:
    for stage in ("build-trt", "verify-trt"):
        done = run_export(
            "--checkpoint",
            export_run.checkpoint,
            "--build-dir",
            export_run.build_dir,
            "--stage",
            stage,
            "--stop-stage",
            "install",
        )
        assert done.returncode == ExitCode.TENSORRT_UNAVAILABLE == 20, done.stdout + done.stderr
        lines = [line for line in done.stdout.splitlines() if line.startswith("stage")]
        assert lines == [
            f"stage {3 if stage == 'build-trt' else 4} {stage}: TensorRT is not importable here "
            "(No module named 'tensorrt'); no plan built (exit 20)"
        ]
    assert not (export_run.build_dir / "plans").exists()  # nothing pretends a plan was built


def test_stages_resume_from_the_build_dir_and_refuse_a_changed_file(
    export_run: Any, run_export: Any, tmp_path: Path
) -> None:
    copy = tmp_path / "build"
    shutil.copytree(export_run.build_dir, copy)
    only_verify = ["--checkpoint", export_run.checkpoint, "--build-dir", copy, "--stage", "2", "--stop-stage", "2"]
    done = run_export(*only_verify, "--graphs", "t2s_fast_step")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "stage 1" not in done.stdout and "stage 3" not in done.stdout
    assert "t2s_fast_step [float32] ok" in done.stdout

    model = copy / "onnx" / "t2s_fast_step.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    done = run_export(*only_verify, "--graphs", "t2s_fast_step")
    assert done.returncode == ExitCode.ONNX_VERIFY == 12
    assert "changed since stage 1" in done.stdout

    # a file that is not ONNX at all (its hash recorded as if stage 1 wrote it) fails stage 2 with its code too
    model.write_bytes(b"not an onnx model")
    report = json.loads((copy / "report.json").read_text())
    report["graphs"]["t2s_fast_step"]["onnx"]["sha256"] = hashlib.sha256(b"not an onnx model").hexdigest()
    (copy / "report.json").write_text(json.dumps(report))
    done = run_export(*only_verify, "--graphs", "t2s_fast_step")
    assert done.returncode == ExitCode.ONNX_VERIFY and "FAILED (exit 12): InvalidProtobuf" in done.stdout


def test_each_failure_has_its_own_exit_code(export_run: Any, run_export: Any, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    done = run_export("--checkpoint", export_run.checkpoint, "--build-dir", empty, "--stage", "verify-onnx")
    assert done.returncode == ExitCode.ONNX_VERIFY and "run stage 1 (onnx) first" in done.stdout

    done = run_export("--checkpoint", export_run.checkpoint, "--build-dir", empty, "--stage", "install")
    assert done.returncode == ExitCode.INSTALL and "run stage 1 (onnx) first" in done.stdout

    done = run_export("--checkpoint", tmp_path / "nowhere", "--build-dir", empty)
    assert done.returncode == ExitCode.CHECKPOINT and "does not exist" in done.stdout

    done = run_export("--stage", "install", "--stop-stage", "onnx")
    assert done.returncode == ExitCode.USAGE
    done = run_export("--stage", "packaging")
    assert done.returncode == ExitCode.USAGE and "unknown stage 'packaging'" in done.stderr


def test_a_failed_threshold_fails_stage_2_loudly(export_run: Any, run_export: Any, tmp_path: Path) -> None:
    """Verification against another checkpoint's weights: the export is of checkpoint A, the reference B."""
    other = tmp_path / "other"
    from voicereel.engine.checkpoints import make_tiny_checkpoint

    make_tiny_checkpoint(other, seed=1)
    copy = tmp_path / "build"
    shutil.copytree(export_run.build_dir, copy)
    report = json.loads((copy / "report.json").read_text())
    report["checkpoint"]["path"] = str(other.resolve())  # as if these files had been exported from `other`
    (copy / "report.json").write_text(json.dumps(report))
    done = run_export(
        "--checkpoint", other, "--build-dir", copy, "--stage", "2", "--stop-stage", "2", "--graphs", "codec_decoder"
    )
    assert done.returncode == ExitCode.ONNX_VERIFY, done.stdout
    assert "codec_decoder [float32] FAILED" in done.stdout and "stage 2 verify-onnx FAILED (exit 12)" in done.stdout
