"""build_repository on the real model_repository/ and on small synthetic sources (strictness across models)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from voicereel.modelrepo import KnobError, build_repository, render_configs
from voicereel.modelrepo.__main__ import main as cli_main
from voicereel.modelrepo.__main__ import parse_setting
from voicereel.modelrepo.build import MARKER, SOURCE, discover

SHARED = """
[knobs.checkpoint_dir]
type = "path"
description = "ckpt"

[knobs.window]
type = "int"
default = 8
description = "shared window"
"""


def synthetic_source(root: Path, model_knobs: str = "", template_extra: str = "") -> Path:
    source = root / "source"
    (source / "alpha" / "1").mkdir(parents=True)
    (source / "knobs.toml").write_text(SHARED)
    (source / "alpha" / "knobs.toml").write_text(
        'shared = ["checkpoint_dir", "window"]\n[knobs.batch]\ntype = "int"\ndefault = 4\ndescription = "b"\n'
        + model_knobs
    )
    (source / "alpha" / "config.pbtxt.tmpl").write_text(
        'name: "alpha"\nmax_batch_size: ${batch}\n# ${window} frames from ${checkpoint_dir}\n' + template_extra
    )
    (source / "alpha" / "1" / "model.py").write_text("# glue\n")
    return source


def test_every_model_in_model_repository_renders_without_leftovers(tiny_checkpoint: Path) -> None:
    configs = render_configs(tiny_checkpoint)
    assert {"codec_encoder", "codec_decoder"} <= set(configs)
    assert set(configs) == {d.name for d in discover(SOURCE)}
    for name, text in configs.items():
        assert f'name: "{name}"' in text
        assert "$" not in text
    for name in ("codec_encoder", "codec_decoder"):
        assert f'string_value: "{tiny_checkpoint.resolve()}"' in configs[name]


def test_build_writes_configs_and_code_and_replaces_its_own_build(tiny_checkpoint: Path, tmp_path: Path) -> None:
    overrides = {"codec_decoder": {"max_batch_size": 5}, "shared": {"codec_chunk_frames": 32}}
    out = build_repository(tmp_path / "repo", tiny_checkpoint, overrides, models=["codec_decoder"])
    config = (out / "codec_decoder" / "config.pbtxt").read_text()
    assert re.search(r"^max_batch_size: 5$", config, re.M)
    assert 'string_value: "32"' in config
    assert (out / "codec_decoder" / "1" / "model.py").is_file()
    assert not (out / "codec_decoder" / "knobs.toml").exists()
    assert not (out / "codec_decoder" / "config.pbtxt.tmpl").exists()
    assert (out / MARKER).exists() and not (out / "codec_encoder").exists()
    build_repository(out, tiny_checkpoint, models=["codec_encoder"])  # a rebuild replaces it
    assert (out / "codec_encoder").exists() and not (out / "codec_decoder").exists()


def test_refuses_to_replace_a_folder_it_did_not_build(tiny_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(KnobError, match="not built by"):
        build_repository(tmp_path / "mine", tiny_checkpoint)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_checkpoint_must_exist(tmp_path: Path) -> None:
    from voicereel.engine.checkpoints import CheckpointError

    with pytest.raises(CheckpointError):
        build_repository(tmp_path / "repo", tmp_path / "missing")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"alpha": {"batchsize": 2}}, r"unknown knobs \['batchsize'\]"),
        ({"beta": {"batch": 2}}, r"not being built: \['beta'\]"),
        ({"shared": {"nope": 1}}, r"unknown knobs \['nope'\]"),
        ({"alpha": {"batch": "two"}}, "needs a number"),
    ],
)
def test_unknown_or_bad_overrides_fail(tmp_path: Path, overrides: dict, message: str) -> None:
    source = synthetic_source(tmp_path)
    with pytest.raises(KnobError, match=message):
        render_configs(tmp_path, overrides, source=source)


def test_synthetic_source_renders(tmp_path: Path) -> None:
    source = synthetic_source(tmp_path)
    text = render_configs(tmp_path, {"shared": {"window": 16}}, source=source)["alpha"]
    assert "max_batch_size: 4" in text and f"# 16 frames from {tmp_path.resolve()}" in text


def test_required_model_knob_without_value_fails(tmp_path: Path) -> None:
    source = synthetic_source(tmp_path, '[knobs.name]\ntype = "str"\ndescription = "n"\n', "x: ${name}\n")
    with pytest.raises(KnobError, match=r"required knobs \['name'\]"):
        render_configs(tmp_path, source=source)
    assert "x: hello" in render_configs(tmp_path, {"alpha": {"name": "hello"}}, source=source)["alpha"]


def test_shared_knob_used_by_no_model_fails(tmp_path: Path) -> None:
    source = synthetic_source(tmp_path)
    (source / "knobs.toml").write_text(SHARED + '\n[knobs.orphan]\ntype = "int"\ndefault = 1\ndescription = "o"\n')
    with pytest.raises(KnobError, match=r"\['orphan'\] are used by no model"):
        render_configs(tmp_path, source=source)


def test_template_without_declaration_fails(tmp_path: Path) -> None:
    source = synthetic_source(tmp_path)
    shutil.copytree(source / "alpha", source / "beta")
    (source / "beta" / "knobs.toml").unlink()
    with pytest.raises(KnobError, match="needs both"):
        render_configs(tmp_path, source=source)


def test_cli(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_setting("codec_decoder.max_batch_size=16") == ("codec_decoder", "max_batch_size", 16)
    assert parse_setting("codec_encoder.dtype=bfloat16") == ("codec_encoder", "dtype", "bfloat16")
    args = ["build", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "repo")]
    assert cli_main([*args, "--set", "codec_decoder.max_batch_size=16"]) == 0
    assert "max_batch_size: 16" in (tmp_path / "repo" / "codec_decoder" / "config.pbtxt").read_text()
    assert cli_main([*args, "--set", "codec_decoder.bogus=1"]) == 2
    assert "unknown knobs ['bogus']" in capsys.readouterr().err
    assert cli_main(["knobs"]) == 0
    assert "codec_decoder.max_batch_size  int  32" in capsys.readouterr().out


def test_shared_window_defaults_match_the_engine_defaults() -> None:
    """codec_decoder's window shape knobs and ChunkPlan's defaults describe the same window."""
    from voicereel.engine.codec import ChunkPlan
    from voicereel.modelrepo.knobs import load_shared

    shared = load_shared(SOURCE / "knobs.toml")
    plan = ChunkPlan()
    assert shared["codec_chunk_frames"].default == plan.chunk_frames
    assert shared["codec_context_frames"].default == plan.context_frames
