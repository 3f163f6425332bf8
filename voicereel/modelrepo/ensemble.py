"""A model served as a Triton ensemble of one step: another model's responses, forwarded by Triton's core.

A model folder's ``knobs.toml`` may declare ``[ensemble]``: when the shared knobs in ``when`` have those values,
the model is built as an ensemble whose one step is model ``step``, with the step's inputs (copied from the step's
filled config, so the two cannot drift apart) and the step's ``outputs`` named there. Every response the step sends,
a decoupled step's stream included, goes to the caller without a Python process in between. ``tts`` is one
when shared knob ``pcm_decoding`` = text2semantic: text2semantic renders the PCM itself, and relaying it through
tts's stub added a process hop for every response (and, on the H200 at 16 streams, lost responses).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from voicereel.modelrepo.knobs import Knob, KnobError

_COMMENT = re.compile(r"^\s*#.*$", re.MULTILINE)
_NAME = re.compile(r'\bname:\s*"([^"]+)"')


@dataclass(frozen=True)
class EnsembleRule:
    """``[ensemble]`` of a model's knobs.toml."""

    when: Mapping[str, Any]  # shared knob -> the value that makes the model an ensemble
    step: str
    outputs: tuple[str, ...]

    def applies(self, shared_values: Mapping[str, Any]) -> bool:
        return all(shared_values.get(knob) == value for knob, value in self.when.items())


def parse_rule(data: Mapping[str, Any], shared: Mapping[str, Knob], where: str) -> EnsembleRule:
    unknown = sorted(set(data) - {"when", "step", "outputs"})
    if unknown:
        raise KnobError(f"{where}: [ensemble] has unknown keys {unknown}")
    when, step, outputs = data.get("when"), data.get("step"), data.get("outputs")
    if not isinstance(when, dict) or not when:
        raise KnobError(f"{where}: [ensemble] needs `when`, a table of shared knobs and values")
    undeclared = sorted(set(when) - set(shared))
    if undeclared:
        raise KnobError(f"{where}: [ensemble] `when` names knobs {undeclared} that are not shared knobs")
    when = {knob: shared[knob].coerce(value, f"{where}: [ensemble] `when`") for knob, value in when.items()}
    if not isinstance(step, str) or not step:
        raise KnobError(f"{where}: [ensemble] needs `step`, the model it forwards")
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
        raise KnobError(f"{where}: [ensemble] needs `outputs`, a list of the step's output names")
    return EnsembleRule(when=dict(when), step=step, outputs=tuple(outputs))


def _list_block(config: str, key: str) -> str:
    """The text inside the top-level ``key [ ... ]`` of a config (brackets matched)."""
    match = re.search(rf"^{key}\s*\[", config, re.MULTILINE)
    if match is None:
        raise KnobError(f"the step's config has no `{key} [` list")
    depth, start = 1, match.end()
    for index in range(start, len(config)):
        depth += {"[": 1, "]": -1}.get(config[index], 0)
        if depth == 0:
            return config[start:index]
    raise KnobError(f"the step's `{key} [` list is not closed")


def _entries(block: str) -> list[str]:
    """The top-level ``{ ... }`` entries of a list block."""
    entries, depth, start = [], 0, 0
    for index, char in enumerate(block):
        if char == "{":
            depth += 1
            if depth == 1:
                start = index
        elif char == "}":
            depth -= 1
            if depth == 0:
                entries.append(block[start : index + 1])
    return entries


def _entry_name(entry: str) -> str:
    match = _NAME.search(entry)
    if match is None:
        raise KnobError(f"a tensor entry has no name: {entry}")
    return match.group(1)


def ensemble_config(name: str, rule: EnsembleRule, step_config: str) -> str:
    """The ensemble's config.pbtxt, from the step's filled config."""
    config = _COMMENT.sub("", step_config)
    inputs = _entries(_list_block(config, "input"))
    by_name = {_entry_name(entry): entry for entry in _entries(_list_block(config, "output"))}
    missing = sorted(set(rule.outputs) - set(by_name))
    if missing:
        raise KnobError(f"ensemble {name}: step {rule.step} has no outputs {missing}")
    input_names = [_entry_name(entry) for entry in inputs]
    maps = [f'      input_map {{ key: "{n}" value: "{n}" }}' for n in input_names]
    maps += [f'      output_map {{ key: "{n}" value: "{n}" }}' for n in rule.outputs]
    joined_inputs = ",\n  ".join(" ".join(entry.split()) for entry in inputs)
    joined_outputs = ",\n  ".join(" ".join(by_name[n].split()) for n in rule.outputs)
    return "\n".join(
        [
            f"# Built by voicereel.modelrepo: an ensemble of one step ({rule.step}), when "
            + ", ".join(f"{knob} = {value}" for knob, value in rule.when.items())
            + ".",
            f"# Inputs copied from {rule.step}'s config; Triton's core forwards every response of the step.",
            f'name: "{name}"',
            'platform: "ensemble"',
            "max_batch_size: 0",
            f"input [\n  {joined_inputs}\n]",
            f"output [\n  {joined_outputs}\n]",
            "ensemble_scheduling {",
            "  step [",
            "    {",
            f'      model_name: "{rule.step}"',
            "      model_version: -1",
            *maps,
            "    }",
            "  ]",
            "}",
            "",
        ]
    )
