"""Build a servable Triton model repository from `model_repository/` (templates + knob declarations).

Every model folder with a `config.pbtxt.tmpl` is copied to `dest/<model>/` (its `1/model.py` and any other file,
minus the template and `knobs.toml`) and gets a `config.pbtxt` filled by the strict filler, unless its `[ensemble]`
rule applies: then it is an ensemble of one step (`voicereel.modelrepo.ensemble`) with an empty version folder.
The shared knob `checkpoint_dir` comes from the `checkpoint_dir` argument; every other value is its declared
default unless `overrides` sets it: `{"<model>": {"<knob>": value}, "shared": {"<knob>": value}}`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from voicereel.modelrepo.ensemble import ensemble_config
from voicereel.modelrepo.filler import fill
from voicereel.modelrepo.knobs import Knob, KnobError, ModelDeclaration, load_declaration, load_shared
from voicereel.modelrepo.placement import BLOCK, placement_block

SOURCE = Path(__file__).resolve().parents[2] / "model_repository"
TEMPLATE = "config.pbtxt.tmpl"
DECLARATION = "knobs.toml"
SHARED_SCOPE = "shared"
MARKER = ".voicereel-model-repository"  # lets a rebuild clear a repository we made, and nothing else
_NOT_COPIED = shutil.ignore_patterns(TEMPLATE, DECLARATION, "__pycache__", "*.pyc")


def discover(source: Path = SOURCE) -> list[Path]:
    """Model folders of `source` (those with a template), sorted by name."""
    found = []
    for child in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        has_template, has_declaration = (child / TEMPLATE).is_file(), (child / DECLARATION).is_file()
        if has_template != has_declaration:
            raise KnobError(f"{child}: a model needs both {TEMPLATE} and {DECLARATION}")
        if has_template:
            found.append(child)
    return found


def resolve_instance_kind(value: str) -> str:
    if value != "auto":
        return value
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def resolve_values(knobs: Mapping[str, Knob], given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Defaults, then `given` (checked against the declarations); required knobs must end up with a value."""
    unknown = sorted(set(given) - set(knobs))
    if unknown:
        raise KnobError(f"{where}: unknown knobs {unknown}; declared: {sorted(knobs)}")
    values = {name: knob.default for name, knob in knobs.items() if not knob.required}
    values.update({name: knobs[name].coerce(value, where) for name, value in given.items()})
    missing = sorted(name for name in knobs if name not in values)
    if missing:
        raise KnobError(f"{where}: required knobs {missing} have no value")
    for name, knob in knobs.items():
        if knob.type == "instance_kind":
            values[name] = resolve_instance_kind(values[name])
    return values


def render_configs(
    checkpoint_dir: Path,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    source: Path = SOURCE,
    models: Iterable[str] | None = None,
) -> dict[str, str]:
    """The filled `config.pbtxt` text of each selected model (all by default), by model name."""
    overrides = dict(overrides or {})
    shared_knobs = load_shared(source / DECLARATION)
    declarations = {d.name: load_declaration(d, shared_knobs) for d in discover(source)}
    selected = sorted(declarations) if models is None else list(models)
    unknown_models = sorted(set(selected) - set(declarations))
    if unknown_models:
        raise KnobError(f"unknown models {unknown_models}; {source} has {sorted(declarations)}")
    unknown_scopes = sorted(set(overrides) - set(selected) - {SHARED_SCOPE})
    if unknown_scopes:
        raise KnobError(f"overrides for models that are not being built: {unknown_scopes}")
    used_shared = {name for d in declarations.values() for name in d.shared}
    unused_shared = sorted(set(shared_knobs) - used_shared)
    if unused_shared:
        raise KnobError(f"{source / DECLARATION}: shared knobs {unused_shared} are used by no model")

    shared_given = {"checkpoint_dir": checkpoint_dir, **overrides.get(SHARED_SCOPE, {})}
    shared_values = resolve_values(shared_knobs, shared_given, "shared knobs")
    configs = {name: _render(declarations[name], shared_knobs, shared_values, overrides, source) for name in selected}
    for name in selected:
        rule = declarations[name].ensemble
        if rule is not None and rule.applies(shared_values):
            if rule.step not in configs:
                raise KnobError(f"model {name} is an ensemble of {rule.step} here: build {rule.step} too")
            configs[name] = ensemble_config(name, rule, configs[rule.step])
    return configs


def is_ensemble(config: str) -> bool:
    return 'platform: "ensemble"' in config


def _render(
    declaration: ModelDeclaration,
    shared_knobs: Mapping[str, Knob],
    shared_values: Mapping[str, Any],
    overrides: Mapping[str, Mapping[str, Any]],
    source: Path,
) -> str:
    where = f"model {declaration.name}"
    given = overrides.get(declaration.name, {})
    values = resolve_values(declaration.knobs, given, where)
    knobs = {**declaration.knobs, **{name: shared_knobs[name] for name in declaration.shared}}
    values.update({name: shared_values[name] for name in declaration.shared})
    template = (source / declaration.name / TEMPLATE).read_text()
    block = placement_block(declaration.knobs, declaration.shared, values, given, where)
    return fill(template, knobs, values, where, {BLOCK: block} if block else None)


def build_repository(
    dest: Path,
    checkpoint_dir: Path,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    source: Path = SOURCE,
    models: Iterable[str] | None = None,
) -> Path:
    """Write the servable repository to `dest` (replacing one we built before) and return `dest`."""
    from voicereel.engine.checkpoints import inspect_checkpoint

    checkpoint_dir = inspect_checkpoint(checkpoint_dir).root.resolve()  # fail here, not in Triton's log
    configs = render_configs(checkpoint_dir, overrides, source=source, models=models)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        if not (dest / MARKER).exists():
            raise KnobError(f"{dest} is not empty and was not built by voicereel.modelrepo; refusing to replace it")
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MARKER).write_text(f"built from {source} with checkpoint {checkpoint_dir}\n")
    for name, config in configs.items():
        if is_ensemble(config):  # no code of its own; Triton wants the version folder
            (dest / name / "1").mkdir(parents=True)
        else:
            shutil.copytree(source / name, dest / name, ignore=_NOT_COPIED)
        (dest / name / "config.pbtxt").write_text(config)
    return dest
