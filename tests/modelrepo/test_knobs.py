"""Knob declarations: types, defaults, ranges and the checks on values given for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicereel.modelrepo.knobs import Knob, KnobError, load_declaration, parse_knobs, render


def knob(**spec: object) -> Knob:
    return parse_knobs({"k": {"description": "a knob", **spec}}, "test")["k"]


def test_defaults_are_checked_and_absent_default_means_required() -> None:
    assert knob(type="int", default=3).default == 3
    assert knob(type="path").required
    with pytest.raises(KnobError, match="needs an integer"):
        knob(type="int", default=1.5)
    with pytest.raises(KnobError, match=">= 1"):
        knob(type="int", default=0, min=1)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "integer", "default": 1}, "has type 'integer'"),
        ({"type": "int", "default": 1, "unit": "s"}, "unknown fields"),
        ({"type": "choice", "default": "a"}, "choices"),
        ({"type": "str", "default": "a", "choices": ["a"]}, "choices"),
    ],
)
def test_bad_declarations_fail(spec: dict[str, object], message: str) -> None:
    with pytest.raises(KnobError, match=message):
        parse_knobs({"k": {"description": "d", **spec}}, "test")
    with pytest.raises(KnobError, match="needs a description"):
        parse_knobs({"k": {"type": "int", "default": 1}}, "test")


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        ({"type": "bool", "default": True}, "yes", "true or false"),
        ({"type": "int", "default": 1}, True, "needs a number"),
        ({"type": "float", "default": 1.0, "max": 2.0}, 3, "<= 2.0"),
        ({"type": "float", "default": 1.0}, float("nan"), "finite"),
        ({"type": "str", "default": "x"}, 'a"b', "quotes"),
        ({"type": "str", "default": "x"}, 3, "needs a string"),
        ({"type": "choice", "default": "a", "choices": ["a", "b"]}, "c", "one of"),
        ({"type": "instance_kind", "default": "auto"}, "tpu", "auto, cpu or gpu"),
    ],
)
def test_values_are_checked_against_the_declaration(spec: dict[str, object], value: object, message: str) -> None:
    with pytest.raises(KnobError, match=message):
        knob(**spec).coerce(value, "test")


def test_rendering() -> None:
    assert render(knob(type="bool", default=False), True) == "true"
    assert render(knob(type="instance_kind", default="auto"), "gpu") == "KIND_GPU"
    assert render(knob(type="float", default=1.0), 2) == "2.0"
    assert knob(type="path").coerce("rel/dir", "test") == str(Path("rel/dir").resolve())


def test_model_declaration_may_only_use_declared_shared_knobs(tmp_path: Path) -> None:
    shared = parse_knobs({"ckpt": {"type": "path", "description": "d"}}, "shared")
    (tmp_path / "knobs.toml").write_text('shared = ["ckpt", "nope"]\n')
    with pytest.raises(KnobError, match="nope"):
        load_declaration(tmp_path, shared)
    (tmp_path / "knobs.toml").write_text(
        'shared = ["ckpt"]\n[knobs.ckpt]\ntype = "int"\ndefault = 1\ndescription = "d"\n'
    )
    with pytest.raises(KnobError, match="both shared and the model's own"):
        load_declaration(tmp_path, shared)
    (tmp_path / "knobs.toml").write_text('shared = ["ckpt"]\nextra = 1\n')
    with pytest.raises(KnobError, match="unknown top-level keys"):
        load_declaration(tmp_path, shared)


@pytest.mark.parametrize(
    ("given", "ids"),
    [("0,1,2,3", (0, 1, 2, 3)), (" 2 , 3 ", (2, 3)), ("", ()), ([1, 0], (1, 0)), ([], ()), (3, (3,))],
)
def test_gpu_ids_accept_csv_lists_and_one_int(given: object, ids: tuple[int, ...]) -> None:
    gpus = knob(type="gpu_ids", default="")
    assert gpus.coerce(given, "test") == ids
    assert render(gpus, ids) == ", ".join(str(i) for i in ids)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("0,1,1", r"must be unique, \[1\] repeated"),
        ("0,-1", r"non-negative, got \[-1\]"),
        ([-2], "non-negative"),
        ("0,a", "comma-separated GPU ids"),
        (True, "needs GPU ids"),
        ([0, 1.5], "needs GPU ids"),
    ],
)
def test_gpu_ids_reject_repeats_negatives_and_garbage(given: object, message: str) -> None:
    with pytest.raises(KnobError, match=message):
        knob(type="gpu_ids", default="").coerce(given, "test")
