"""[ensemble] in a model's knobs.toml: the model becomes an ensemble of one step when its rule's shared knobs match."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voicereel.modelrepo import KnobError, build_repository, render_configs
from voicereel.modelrepo.build import is_ensemble

SHARED = """
[knobs.checkpoint_dir]
type = "path"
description = "ckpt"

[knobs.mode]
type = "choice"
choices = ["plain", "direct"]
default = "plain"
description = "plain: front has code of its own; direct: front forwards back's stream"
"""

BACK_TEMPLATE = """name: "back"
backend: "python"
# inputs and outputs, with comments [ and braces { in them ] }
input [
  {
    name: "words"
    data_type: TYPE_UINT8
    dims: [ -1 ]
    optional: true
  },
  {
    # a comment inside an entry
    name: "level"
    data_type: TYPE_FP32
    dims: [ -1, -1 ]
  }
]
output [
  { name: "tokens" data_type: TYPE_INT32 dims: [ 10, -1 ] },
  { name: "audio" data_type: TYPE_FP32 dims: [ -1 ] }
]
parameters [
  { key: "mode", value: { string_value: "${mode}" } },
  { key: "c", value: { string_value: "${checkpoint_dir}" } }
]
"""

FRONT_RULE = """
[ensemble]
when = { mode = "direct" }
step = "back"
outputs = ["audio"]
"""


def source_with(root: Path, rule: str = FRONT_RULE) -> Path:
    source = root / "source"
    for name in ("front", "back"):
        (source / name / "1").mkdir(parents=True)
        (source / name / "1" / "model.py").write_text(f"# {name}\n")
    (source / "knobs.toml").write_text(SHARED)
    (source / "back" / "knobs.toml").write_text('shared = ["checkpoint_dir", "mode"]\n')
    (source / "back" / "config.pbtxt.tmpl").write_text(BACK_TEMPLATE)
    (source / "front" / "knobs.toml").write_text('shared = ["checkpoint_dir"]\n' + rule)
    (source / "front" / "config.pbtxt.tmpl").write_text('name: "front"\nbackend: "python"\n# ${checkpoint_dir}\n')
    return source


def test_the_rule_off_builds_the_model_from_its_template(tmp_path: Path) -> None:
    configs = render_configs(tmp_path, None, source=source_with(tmp_path))
    assert not is_ensemble(configs["front"]) and 'backend: "python"' in configs["front"]


def test_the_rule_on_builds_an_ensemble_with_the_steps_inputs_and_the_named_outputs(tmp_path: Path) -> None:
    front = render_configs(tmp_path, {"shared": {"mode": "direct"}}, source=source_with(tmp_path))["front"]
    assert is_ensemble(front) and 'name: "front"' in front and "backend" not in front
    inputs = front[front.index("input [") : front.index("output [")]
    assert re.findall(r'name: "(\w+)"', inputs) == ["words", "level"]
    assert "optional: true" in inputs and "dims: [ -1, -1 ]" in inputs and "comment" not in inputs
    outputs = front[front.index("output [") : front.index("ensemble_scheduling")]
    assert re.findall(r'name: "(\w+)"', outputs) == ["audio"]
    maps = re.findall(r'(input|output)_map \{ key: "(\w+)" value: "(\w+)" \}', front)
    assert maps == [("input", "words", "words"), ("input", "level", "level"), ("output", "audio", "audio")]
    assert 'model_name: "back"' in front


def test_an_ensemble_gets_an_empty_version_folder_and_no_code(tmp_path: Path, tiny_checkpoint: Path) -> None:
    source = source_with(tmp_path)
    built = build_repository(tmp_path / "repo", tiny_checkpoint, {"shared": {"mode": "direct"}}, source=source)
    assert list((built / "front" / "1").iterdir()) == []
    assert is_ensemble((built / "front" / "config.pbtxt").read_text())
    assert (built / "back" / "1" / "model.py").is_file()


@pytest.mark.parametrize(
    ("rule", "overrides", "message"),
    [
        ('[ensemble]\nwhen = { size = 1 }\nstep = "back"\noutputs = ["audio"]\n', None, "not shared knobs"),
        ('[ensemble]\nwhen = { mode = "drect" }\nstep = "back"\noutputs = ["audio"]\n', None, "drect"),
        ('[ensemble]\nwhen = { mode = "direct" }\noutputs = ["audio"]\n', None, "needs `step`"),
        ('[ensemble]\nwhen = { mode = "direct" }\nstep = "back"\n', None, "needs `outputs`"),
        ('[ensemble]\nwhen = { mode = "direct" }\nstep = "back"\noutputs = ["x"]\nextra = 1\n', None, "unknown keys"),
        ('[ensemble]\nwhen = { mode = "direct" }\nstep = "back"\noutputs = ["video"]\n', "direct", "no outputs"),
        ('[ensemble]\nwhen = { mode = "direct" }\nstep = "nowhere"\noutputs = ["audio"]\n', "direct", "build nowhere"),
    ],
)
def test_bad_rules_fail(tmp_path: Path, rule: str, overrides: str | None, message: str) -> None:
    given = {"shared": {"mode": overrides}} if overrides else None
    with pytest.raises(KnobError, match=message):
        render_configs(tmp_path, given, source=source_with(tmp_path, rule))


def test_the_step_must_be_built_with_its_ensemble(tmp_path: Path) -> None:
    with pytest.raises(KnobError, match="build back too"):
        render_configs(tmp_path, {"shared": {"mode": "direct"}}, source=source_with(tmp_path), models=["front"])
