"""Declared knobs of the Triton models: each has a type, a default (or is required) and a description.

Declarations live in TOML: `model_repository/knobs.toml` holds the repository-wide (shared) knobs, and each
`model_repository/<model>/knobs.toml` the model's own knobs plus the list of shared knobs it uses:

    shared = ["checkpoint_dir"]

    [knobs.max_batch_size]
    type = "int"
    default = 16
    min = 1
    description = "Largest batch the dynamic batcher forms."

Types: int, float, bool, str, path (rendered absolute), choice (`choices = [...]`), instance_kind
(auto | cpu | gpu, rendered KIND_CPU / KIND_GPU; auto means gpu when CUDA is visible at build time) and gpu_ids
(GPU ids: `"0,1,2"`, `[0, 1, 2]` or one int; `""` = none; unique and non-negative; rendered `0, 1, 2`).
A knob without `default` is required: build_repository or the overrides must give it a value.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voicereel.modelrepo.ensemble import EnsembleRule

KNOB_TYPES = ("int", "float", "bool", "str", "path", "choice", "instance_kind", "gpu_ids")
_KNOB_FIELDS = {"type", "default", "description", "min", "max", "choices"}


class KnobError(ValueError):
    """A declaration, an override or a template does not match the declared knobs."""


@dataclass(frozen=True)
class Knob:
    name: str
    type: str
    description: str
    default: Any = None
    required: bool = False
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()

    def coerce(self, value: Any, where: str) -> Any:
        """Check `value` against the declaration; return it in canonical Python form."""
        label = f"{where}: knob {self.name!r} ({self.type})"
        if self.type == "bool":
            if not isinstance(value, bool):
                raise KnobError(f"{label} needs true or false, got {value!r}")
            return value
        if self.type in ("int", "float"):
            return self._number(value, label)
        if self.type == "instance_kind":
            if value not in ("auto", "cpu", "gpu"):
                raise KnobError(f"{label} must be auto, cpu or gpu, got {value!r}")
            return value
        if self.type == "gpu_ids":
            return parse_gpu_ids(value, label)
        if not isinstance(value, str | Path):
            raise KnobError(f"{label} needs a string, got {value!r}")
        text = str(value)
        if any(ch in text for ch in '"\\\n\r'):
            raise KnobError(f"{label} may not contain quotes, backslashes or newlines: {text!r}")
        if self.type == "choice" and text not in self.choices:
            raise KnobError(f"{label} must be one of {list(self.choices)}, got {text!r}")
        if self.type == "path":
            return str(Path(text).expanduser().resolve())
        return text

    def _number(self, value: Any, label: str) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise KnobError(f"{label} needs a number, got {value!r}")
        if self.type == "int" and not isinstance(value, int):
            raise KnobError(f"{label} needs an integer, got {value!r}")
        if not math.isfinite(value):
            raise KnobError(f"{label} must be finite, got {value!r}")
        if self.min is not None and value < self.min:
            raise KnobError(f"{label} must be >= {self.min}, got {value}")
        if self.max is not None and value > self.max:
            raise KnobError(f"{label} must be <= {self.max}, got {value}")
        return int(value) if self.type == "int" else float(value)


def parse_gpu_ids(value: Any, label: str) -> tuple[int, ...]:
    """GPU ids from `"0,1"`, `[0, 1]` or `0` (the CLI reads `--set shared.gpus=0` as an int); `""` or `[]`: none."""
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",")] if value.strip() else []
        try:
            ids = [int(part) for part in parts]
        except ValueError:
            raise KnobError(f'{label} needs comma-separated GPU ids like "0,1", got {value!r}') from None
    elif isinstance(value, int) and not isinstance(value, bool):
        ids = [value]
    elif isinstance(value, list | tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        ids = list(value)
    else:
        raise KnobError(f'{label} needs GPU ids ("0,1" or [0, 1]), got {value!r}')
    negative = [gpu for gpu in ids if gpu < 0]
    if negative:
        raise KnobError(f"{label}: GPU ids must be non-negative, got {negative}")
    repeated = sorted({gpu for gpu in ids if ids.count(gpu) > 1})
    if repeated:
        raise KnobError(f"{label}: GPU ids must be unique, {repeated} repeated")
    return tuple(ids)


def render(knob: Knob, value: Any) -> str:
    """The text that replaces `${name}` in a template."""
    if knob.type == "bool":
        return "true" if value else "false"
    if knob.type == "instance_kind":
        return {"cpu": "KIND_CPU", "gpu": "KIND_GPU"}[value]
    if knob.type == "float":
        return repr(float(value))
    if knob.type == "gpu_ids":
        return ", ".join(str(gpu) for gpu in value)
    return str(value)


def parse_knobs(table: Mapping[str, Any], where: str) -> dict[str, Knob]:
    knobs: dict[str, Knob] = {}
    for name, spec in table.items():
        if not isinstance(spec, Mapping):
            raise KnobError(f"{where}: knob {name!r} must be a table")
        unknown = set(spec) - _KNOB_FIELDS
        if unknown:
            raise KnobError(f"{where}: knob {name!r} has unknown fields {sorted(unknown)}")
        kind = spec.get("type")
        if kind not in KNOB_TYPES:
            raise KnobError(f"{where}: knob {name!r} has type {kind!r}, expected one of {list(KNOB_TYPES)}")
        if not spec.get("description"):
            raise KnobError(f"{where}: knob {name!r} needs a description")
        if (kind == "choice") != ("choices" in spec):
            raise KnobError(f"{where}: knob {name!r}: `choices` goes with type choice, and only there")
        knob = Knob(
            name=name,
            type=kind,
            description=str(spec["description"]),
            required="default" not in spec,
            min=spec.get("min"),
            max=spec.get("max"),
            choices=tuple(spec.get("choices", ())),
        )
        if not knob.required:
            knob = Knob(**{**knob.__dict__, "default": knob.coerce(spec["default"], where)})
        knobs[name] = knob
    return knobs


@dataclass(frozen=True)
class ModelDeclaration:
    """A model's own knobs and the shared knobs its template uses."""

    name: str
    knobs: Mapping[str, Knob]
    shared: tuple[str, ...]
    ensemble: EnsembleRule | None = None  # [ensemble]: built as an ensemble of one step when its rule applies


def load_shared(path: Path) -> dict[str, Knob]:
    data = tomllib.loads(path.read_text())
    unknown = set(data) - {"knobs"}
    if unknown:
        raise KnobError(f"{path}: unknown top-level keys {sorted(unknown)}")
    return parse_knobs(data.get("knobs", {}), str(path))


def load_declaration(model_dir: Path, shared: Mapping[str, Knob]) -> ModelDeclaration:
    path = model_dir / "knobs.toml"
    data = tomllib.loads(path.read_text())
    unknown = set(data) - {"knobs", "shared", "ensemble"}
    if unknown:
        raise KnobError(f"{path}: unknown top-level keys {sorted(unknown)}")
    knobs = parse_knobs(data.get("knobs", {}), str(path))
    uses = tuple(data.get("shared", ()))
    undeclared = [name for name in uses if name not in shared]
    if undeclared:
        raise KnobError(f"{path}: uses shared knobs {undeclared} that model_repository/knobs.toml does not declare")
    clash = sorted(set(uses) & set(knobs))
    if clash:
        raise KnobError(f"{path}: knobs {clash} are both shared and the model's own")
    from voicereel.modelrepo.ensemble import parse_rule  # ensemble.py imports this module

    ensemble = parse_rule(data["ensemble"], shared, str(path)) if "ensemble" in data else None
    return ModelDeclaration(name=model_dir.name, knobs=knobs, shared=uses, ensemble=ensemble)
