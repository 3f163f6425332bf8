"""Where the CLI's settings come from: options/environment over the config file over defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicereel.cli.config import default_config_path, resolve_config
from voicereel.client.errors import InvalidRequestError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_file_values_are_used_when_no_option_is_given(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.toml",
        'base_url = "http://gw:9/"\napi_key = "vr_file"\nsigning_secret = "vrs_file"\ntimeout_s = 7\n',
    )
    resolved = resolve_config(config_path=cfg, base_url=None, api_key=None, signing_secret=None, timeout_s=None)
    assert resolved.base_url == "http://gw:9"
    assert (resolved.api_key, resolved.signing_secret, resolved.timeout_s) == ("vr_file", "vrs_file", 7.0)
    assert resolved.source == cfg


def test_options_win_over_the_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", 'base_url = "http://gw:9"\napi_key = "vr_file"\n')
    resolved = resolve_config(
        config_path=cfg, base_url="http://other:1", api_key="vr_opt", signing_secret=None, timeout_s=3
    )
    assert (resolved.base_url, resolved.api_key, resolved.timeout_s) == ("http://other:1", "vr_opt", 3.0)


def test_default_path_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_config_path() == tmp_path / "voicereel" / "config.toml"
    # absent default file: defaults, no error
    resolved = resolve_config(config_path=None, base_url=None, api_key=None, signing_secret=None, timeout_s=None)
    assert resolved.api_key is None and resolved.source is None and resolved.base_url == "http://127.0.0.1:8080"
    (tmp_path / "voicereel").mkdir()
    write(tmp_path / "voicereel" / "config.toml", 'api_key = "vr_default"\n')
    resolved = resolve_config(config_path=None, base_url=None, api_key=None, signing_secret=None, timeout_s=None)
    assert resolved.api_key == "vr_default"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('apikey = "vr_typo"\n', "unknown key"),
        ("api_key = 3\n", "wrong type"),
        ("timeout_s = true\n", "wrong type"),
        ("api_key = \n", "not valid TOML"),
    ],
)
def test_bad_config_files(tmp_path: Path, text: str, message: str) -> None:
    cfg = write(tmp_path / "c.toml", text)
    with pytest.raises(InvalidRequestError, match=message):
        resolve_config(config_path=cfg, base_url=None, api_key=None, signing_secret=None, timeout_s=None)


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="does not exist"):
        resolve_config(
            config_path=tmp_path / "nope.toml", base_url=None, api_key=None, signing_secret=None, timeout_s=None
        )


def test_world_readable_secrets_warn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write(tmp_path / "c.toml", 'api_key = "vr_x"\n')
    cfg.chmod(0o644)
    resolve_config(config_path=cfg, base_url=None, api_key=None, signing_secret=None, timeout_s=None)
    assert "others can read it" in capsys.readouterr().err
