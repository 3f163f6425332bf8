"""The strict filler: undeclared, unused, unknown and missing keys all fail."""

from __future__ import annotations

import pytest

from voicereel.modelrepo.filler import Block, fill, placeholders
from voicereel.modelrepo.knobs import KnobError, parse_knobs

KNOBS = parse_knobs(
    {
        "batch": {"type": "int", "default": 8, "description": "d"},
        "kind": {"type": "instance_kind", "default": "cpu", "description": "d"},
    },
    "test",
)
TEMPLATE = "max_batch_size: ${batch}\nkind: ${kind}\n"


def test_fills_every_placeholder() -> None:
    assert placeholders(TEMPLATE) == {"batch", "kind"}
    assert fill(TEMPLATE, KNOBS, {"batch": 4, "kind": "gpu"}, "m") == "max_batch_size: 4\nkind: KIND_GPU\n"


@pytest.mark.parametrize(
    ("template", "values", "message"),
    [
        (TEMPLATE + "x: ${other}\n", {"batch": 1, "kind": "cpu"}, r"undeclared knobs \['other'\]"),
        ("max_batch_size: ${batch}\n", {"batch": 1, "kind": "cpu"}, r"\['kind'\] do not appear"),
        (TEMPLATE, {"batch": 1, "kind": "cpu", "typo": 2}, r"unknown knobs \['typo'\]"),
        (TEMPLATE, {"batch": 1}, r"no value for knobs \['kind'\]"),
        (TEMPLATE + "y: $batch\n", {"batch": 1, "kind": "cpu"}, "stray"),
    ],
)
def test_strictness(template: str, values: dict[str, object], message: str) -> None:
    with pytest.raises(KnobError, match=message):
        fill(template, KNOBS, values, "m")


def test_a_block_consumes_its_knobs() -> None:
    block = Block("instance_group [ { count: 2 } ]", frozenset({"kind"}))
    text = fill("max_batch_size: ${batch}\n${group}\n", KNOBS, {"batch": 4, "kind": "gpu"}, "m", {"group": block})
    assert text == "max_batch_size: 4\ninstance_group [ { count: 2 } ]\n"


@pytest.mark.parametrize(
    ("template", "blocks", "message"),
    [
        (TEMPLATE, {"group": Block("g", frozenset())}, r"no placeholder for blocks \['group'\]"),
        (TEMPLATE, {"batch": Block("g", frozenset())}, r"blocks \['batch'\] have the names of declared knobs"),
        ("${batch}\n${group}\n", {"group": Block("g", frozenset({"kind", "nope"}))}, r"undeclared knobs \['nope'\]"),
        (TEMPLATE + "${group}\n", {"group": Block("g", frozenset({"kind"}))}, r"\['kind'\] are rendered by a block"),
        ("${batch}\n${group}\n", {"group": Block("g", frozenset())}, r"\['kind'\] do not appear"),
    ],
)
def test_block_strictness(template: str, blocks: dict[str, Block], message: str) -> None:
    with pytest.raises(KnobError, match=message):
        fill(template, KNOBS, {"batch": 1, "kind": "cpu"}, "m", blocks)
