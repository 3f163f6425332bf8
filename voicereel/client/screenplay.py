"""Reading a script from a file (JSON, YAML or a plain screenplay) and binding its speaker names to speaker ids.

Plain screenplay, one spoken line per `NAME: text` line; an indented line continues the previous one; blank
lines and `#` comments are skipped:

    # scene 1
    ALICE: Did you hear that?
    BOB: Hear what? It's three in the morning,
        go back to sleep.

JSON or YAML: a synthesis request (`{"script": [...], "output_format": "mp3", ...}`) or just the list of lines.
A line names its speaker by `speaker_id` or by `speaker` (a name bound through the speaker map); in YAML a line
may also be written `- ALICE: Did you hear that?`. A top-level `speakers: {ALICE: spk_...}` is a speaker map.

Names are matched case-insensitively. Every name must be bound (or be a `spk_` id itself) before anything is
sent; a map value that is not an id is a registered speaker's name, looked up by the caller.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from voicereel.client.errors import InvalidRequestError
from voicereel.ids import has_prefix
from voicereel.schemas import ScriptLine, SynthesisRequest

SCRIPT_FORMATS = ("json", "yaml", "screenplay")
_LINE_FIELDS = frozenset(ScriptLine.model_fields) | {"speaker"}
_REQUEST_OPTIONS = frozenset(SynthesisRequest.model_fields) - {"script"}
_SCREENPLAY_LINE = re.compile(r"^(?P<name>[^\s:#][^:]{0,59}?)\s*:\s*(?P<text>.*)$")


@dataclass
class DraftLine:
    """A script line before speaker binding: a `speaker` name or a `speaker_id`, the text and per-line options."""

    text: str
    where: str
    speaker: str | None = None
    speaker_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScriptDocument:
    lines: list[DraftLine]
    options: dict[str, Any] = field(default_factory=dict)
    speakers: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """Speaker names used, in order of first appearance."""
        seen: dict[str, None] = {}
        for line in self.lines:
            if line.speaker is not None:
                seen.setdefault(line.speaker, None)
        return list(seen)


def detect_format(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix in (".txt", ".screenplay", ".script", ".fountain"):
        return "screenplay"
    return "json" if text.lstrip().startswith(("{", "[")) else "screenplay"


def read_text_file(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidRequestError(f"{what} {path} does not exist") from None
    except UnicodeDecodeError:
        raise InvalidRequestError(f"{what} {path} is not UTF-8 text") from None
    except OSError as exc:
        raise InvalidRequestError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


def load_script(path: Path, fmt: str | None = None) -> ScriptDocument:
    text = read_text_file(path, "script")
    fmt = fmt or detect_format(path, text)
    if fmt == "screenplay":
        return ScriptDocument(parse_screenplay(text, source=path.name))
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"{path.name}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    elif fmt == "yaml":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidRequestError(f"{path.name}: invalid YAML: {exc}") from None
    else:
        raise InvalidRequestError(f"unknown script format {fmt!r}; use one of {', '.join(SCRIPT_FORMATS)}")
    return script_from_data(data, source=path.name)


def parse_screenplay(text: str, *, source: str = "<script>") -> list[DraftLine]:
    lines: list[DraftLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        where = f"{source}:{number}"
        if raw[0].isspace():
            if not lines:
                raise InvalidRequestError(f"{where}: continuation line before any 'NAME: text' line")
            lines[-1].text = f"{lines[-1].text} {stripped}".strip()
            continue
        match = _SCREENPLAY_LINE.match(raw.rstrip())
        if match is None:
            raise InvalidRequestError(f"{where}: expected 'NAME: text' (or an indented continuation), got {raw!r}")
        lines.append(DraftLine(text=match["text"].strip(), where=where, speaker=match["name"].strip()))
    for line in lines:
        if not line.text:
            raise InvalidRequestError(f"{line.where}: {line.speaker} has no text")
    if not lines:
        raise InvalidRequestError(f"{source}: the script has no lines")
    return lines


def _draft_line(item: Any, where: str) -> DraftLine:
    if isinstance(item, Mapping) and len(item) == 1:
        ((name, text),) = item.items()
        if str(name) not in _LINE_FIELDS and isinstance(text, str):
            return DraftLine(text=text, where=where, speaker=str(name))
    if not isinstance(item, Mapping):
        raise InvalidRequestError(f"{where}: a line must be an object with 'speaker' or 'speaker_id' and 'text'")
    unknown = set(map(str, item)) - _LINE_FIELDS
    if unknown:
        raise InvalidRequestError(f"{where}: unknown line field(s) {', '.join(sorted(unknown))}")
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequestError(f"{where}: 'text' must be a non-empty string")
    speaker, speaker_id = item.get("speaker"), item.get("speaker_id")
    if (speaker is None) == (speaker_id is None):
        raise InvalidRequestError(f"{where}: give exactly one of 'speaker' (a name) or 'speaker_id'")
    options = {k: v for k, v in item.items() if k not in ("text", "speaker", "speaker_id")}
    return DraftLine(
        text=text,
        where=where,
        speaker=None if speaker is None else str(speaker),
        speaker_id=None if speaker_id is None else str(speaker_id),
        options=options,
    )


def script_from_data(data: Any, *, source: str = "<script>") -> ScriptDocument:
    options: dict[str, Any] = {}
    speakers: dict[str, str] = {}
    if isinstance(data, Mapping):
        unknown = set(map(str, data)) - _REQUEST_OPTIONS - {"script", "speakers"}
        if unknown:
            raise InvalidRequestError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
        raw_speakers = data.get("speakers") or {}
        if not isinstance(raw_speakers, Mapping):
            raise InvalidRequestError(f"{source}: 'speakers' must map names to speaker ids or names")
        speakers = {str(k): str(v) for k, v in raw_speakers.items()}
        options = {k: v for k, v in data.items() if k not in ("script", "speakers")}
        items = data.get("script")
    else:
        items = data
    if not isinstance(items, list) or not items:
        raise InvalidRequestError(f"{source}: expected a non-empty list of lines ('script')")
    lines = [_draft_line(item, f"{source} line {i}") for i, item in enumerate(items, start=1)]
    return ScriptDocument(lines, options, speakers)


def parse_speaker_assignment(value: str) -> tuple[str, str]:
    """`NAME=spk_...` (or `NAME=Registered Name`) from the command line."""
    name, sep, target = value.partition("=")
    if not sep or not name.strip() or not target.strip():
        raise InvalidRequestError(f"speaker mapping must look like NAME=spk_..., got {value!r}")
    return name.strip(), target.strip()


def load_speaker_map(path: Path) -> dict[str, str]:
    """A speaker map file: a JSON, YAML or TOML table of NAME -> id/name, or `NAME=value` lines."""
    text = read_text_file(path, "speaker map")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data: Any = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            data = dict(
                parse_speaker_assignment(line.strip())
                for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            )
    except (ValueError, yaml.YAMLError) as exc:
        raise InvalidRequestError(f"speaker map {path}: cannot parse: {exc}") from None
    if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
        raise InvalidRequestError(f"speaker map {path}: expected NAME -> speaker id (or name) entries")
    return {str(k): v for k, v in data.items()}


@dataclass
class BoundScript:
    """Lines with each name resolved to a map value: a `spk_` id, or a registered speaker's name to look up."""

    document: ScriptDocument
    targets: list[str]

    @property
    def names_to_look_up(self) -> set[str]:
        return {t for t in self.targets if not has_prefix(t, "spk")}

    def to_request(self, names_to_ids: Mapping[str, str], **overrides: Any) -> SynthesisRequest:
        script = []
        for line, target in zip(self.document.lines, self.targets, strict=True):
            speaker_id = target if has_prefix(target, "spk") else names_to_ids[target]
            script.append({"speaker_id": speaker_id, "text": line.text, **line.options})
        payload = {**self.document.options, **{k: v for k, v in overrides.items() if v is not None}}
        try:
            return SynthesisRequest.model_validate({**payload, "script": script})
        except ValueError as exc:
            raise InvalidRequestError(f"invalid synthesis request: {exc}") from None


def bind_speakers(document: ScriptDocument, speaker_map: Mapping[str, str]) -> BoundScript:
    """Bind every line to a map target; raise one error naming every unknown speaker (nothing is sent)."""
    merged = {k.casefold(): v for k, v in document.speakers.items()}
    merged.update({k.casefold(): v for k, v in speaker_map.items()})
    targets: list[str] = []
    unknown: dict[str, list[str]] = {}
    for line in document.lines:
        if line.speaker_id is not None:
            if not has_prefix(line.speaker_id, "spk"):
                raise InvalidRequestError(f"{line.where}: speaker_id {line.speaker_id!r} is not a spk_ id")
            targets.append(line.speaker_id)
            continue
        assert line.speaker is not None
        target = merged.get(line.speaker.casefold())
        if target is None and has_prefix(line.speaker, "spk"):
            target = line.speaker
        if target is None:
            unknown.setdefault(line.speaker, []).append(line.where)
            targets.append("")
        else:
            targets.append(target)
    if unknown:
        described = "; ".join(f"{name} (first at {wheres[0]})" for name, wheres in unknown.items())
        raise InvalidRequestError(
            f"unknown speaker name(s): {described}. Map each with --speaker NAME=spk_... or a speaker map file"
        )
    return BoundScript(document, targets)
