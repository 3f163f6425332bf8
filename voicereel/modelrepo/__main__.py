"""CLI: `python -m voicereel.modelrepo build --checkpoint DIR --out DIR [--set scope.knob=value ...]`.

`scope` is a model name or `shared`; values are TOML literals (`32`, `0.5`, `true`, `"text"`; bare words are
taken as strings). `python -m voicereel.modelrepo knobs` lists every declared knob with its default.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voicereel.modelrepo.build import DECLARATION, SOURCE, build_repository, discover
from voicereel.modelrepo.knobs import KnobError, load_declaration, load_shared


def parse_setting(text: str) -> tuple[str, str, Any]:
    target, sep, raw = text.partition("=")
    scope, dot, knob = target.partition(".")
    if not sep or not dot or not scope or not knob:
        raise KnobError(f"--set {text!r}: expected scope.knob=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return scope, knob, value


def list_knobs() -> None:
    shared = load_shared(SOURCE / DECLARATION)
    scopes = [("shared", shared)] + [(d.name, load_declaration(d, shared).knobs) for d in discover()]
    for scope, knobs in scopes:
        for knob in knobs.values():
            default = "(required)" if knob.required else repr(knob.default)
            print(f"{scope}.{knob.name}  {knob.type}  {default}  {knob.description}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voicereel.modelrepo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="fill every model's config and write the repository")
    build.add_argument("--checkpoint", type=Path, required=True)
    build.add_argument("--out", type=Path, required=True)
    build.add_argument("--set", dest="settings", action="append", default=[], metavar="SCOPE.KNOB=VALUE")
    build.add_argument("--model", dest="models", action="append", help="build only these models (repeatable)")
    sub.add_parser("knobs", help="list the declared knobs")
    args = parser.parse_args(argv)
    from voicereel.engine.checkpoints import CheckpointError

    try:
        if args.command == "knobs":
            list_knobs()
            return 0
        overrides: dict[str, dict[str, Any]] = {}
        for text in args.settings:
            scope, knob, value = parse_setting(text)
            overrides.setdefault(scope, {})[knob] = value
        out = build_repository(args.out, args.checkpoint, overrides, models=args.models)
    except (KnobError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"model repository written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
