"""Where the CLI's connection settings come from: command-line options, then `VOICEREEL_*` environment variables
(Typer reads those into the same options), then the config file, then defaults.

Config file: `--config PATH`, else `$XDG_CONFIG_HOME/voicereel/config.toml` (`~/.config/voicereel/config.toml`):

    base_url = "https://voicereel.example.com"
    api_key = "vr_..."
    signing_secret = "vrs_..."   # only for keys that require signed requests
    timeout_s = 30
"""

from __future__ import annotations

import os
import stat
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicereel.client.errors import InvalidRequestError
from voicereel.client.transport import DEFAULT_BASE_URL

CONFIG_KEYS: dict[str, tuple[type, ...]] = {
    "base_url": (str,),
    "api_key": (str,),
    "signing_secret": (str,),
    "timeout_s": (int, float),
}


def default_config_path() -> Path:
    root = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(root) / "voicereel" / "config.toml"


@dataclass(frozen=True)
class CliConfig:
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    signing_secret: str | None = None
    timeout_s: float = 30.0
    source: Path | None = None


def read_config_file(path: Path, *, required: bool) -> dict[str, Any]:
    """The config file's settings; `{}` when the default file does not exist. Unknown keys are an error (a typo
    like `apikey` must not silently fall back to no key)."""
    if not path.exists():
        if required:
            raise InvalidRequestError(f"config file {path} does not exist")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequestError(f"config file {path} is not valid TOML: {exc}") from exc
    unknown = set(data) - set(CONFIG_KEYS)
    if unknown:
        raise InvalidRequestError(
            f"config file {path}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(CONFIG_KEYS)}"
        )
    for key, kind in CONFIG_KEYS.items():
        if key in data and (not isinstance(data[key], kind) or isinstance(data[key], bool)):
            raise InvalidRequestError(f"config file {path}: {key} has the wrong type")
    if ("api_key" in data or "signing_secret" in data) and _readable_by_others(path):
        print(f"warning: {path} holds secrets but others can read it (chmod 600 it)", file=sys.stderr)
    return data


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False


def resolve_config(
    *,
    config_path: Path | None,
    base_url: str | None,
    api_key: str | None,
    signing_secret: str | None,
    timeout_s: float | None,
) -> CliConfig:
    """Options (already merged with the environment by Typer) over the config file over defaults."""
    path = config_path or default_config_path()
    file = read_config_file(path, required=config_path is not None)
    return CliConfig(
        base_url=(base_url or file.get("base_url") or DEFAULT_BASE_URL).rstrip("/"),
        api_key=api_key or file.get("api_key"),
        signing_secret=signing_secret or file.get("signing_secret"),
        timeout_s=float(timeout_s if timeout_s is not None else file.get("timeout_s", 30.0)),
        source=path if file else None,
    )
