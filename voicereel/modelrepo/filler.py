"""Strict template filling: `${name}` placeholders, every one declared, every declared knob used, no leftovers.

A placeholder may also name a rendered block (`Block`): text computed from several knobs at once (the
`instance_group` of `voicereel.modelrepo.placement`). The knobs a block consumes count as used, and may not
appear in the template on their own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voicereel.modelrepo.knobs import Knob, KnobError, render

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Block:
    """Rendered text for placeholder `${<name>}`, made from the knobs in `consumes`."""

    text: str
    consumes: frozenset[str]


def placeholders(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))


def fill(
    template: str,
    knobs: Mapping[str, Knob],
    values: Mapping[str, Any],
    where: str,
    blocks: Mapping[str, Block] | None = None,
) -> str:
    """Replace `${name}` by the rendered value of knob `name`, or by the text of block `name`.

    Fails (KnobError) when the template names an undeclared knob, when a declared knob is not in the template
    (nor consumed by a block in it), when `values` has a key that is not a declared knob, when a knob has no value,
    when a `$` is left over, when a block is missing from the template, shares a knob's name, or consumes a knob
    that is undeclared or also in the template on its own.
    """
    blocks = dict(blocks or {})
    used = placeholders(template)
    clash = sorted(set(blocks) & set(knobs))
    if clash:
        raise KnobError(f"{where}: blocks {clash} have the names of declared knobs")
    absent = sorted(set(blocks) - used)
    if absent:
        raise KnobError(f"{where}: the template has no placeholder for blocks {absent}")
    consumed = {name for block in blocks.values() for name in block.consumes}
    undeclared_consumed = sorted(consumed - set(knobs))
    if undeclared_consumed:
        raise KnobError(f"{where}: blocks consume undeclared knobs {undeclared_consumed}")
    twice = sorted(consumed & used)
    if twice:
        raise KnobError(f"{where}: knobs {twice} are rendered by a block and may not appear in the template too")
    used -= set(blocks)
    undeclared = sorted(used - set(knobs))
    if undeclared:
        raise KnobError(f"{where}: template uses undeclared knobs {undeclared}")
    unused = sorted(set(knobs) - used - consumed)
    if unused:
        raise KnobError(f"{where}: declared knobs {unused} do not appear in the template")
    unknown = sorted(set(values) - set(knobs))
    if unknown:
        raise KnobError(f"{where}: values given for unknown knobs {unknown}")
    missing = sorted(name for name in knobs if name not in values)
    if missing:
        raise KnobError(f"{where}: no value for knobs {missing}")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in blocks:
            return blocks[name].text
        return render(knobs[name], values[name])

    text = PLACEHOLDER.sub(substitute, template)
    if "$" in PLACEHOLDER.sub("", template):
        raise KnobError(f"{where}: stray '$' in the template (placeholders are written ${{name}})")
    return text
