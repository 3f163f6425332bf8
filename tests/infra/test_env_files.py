"""infra/env/<profile>.env: real settings that Settings accepts, no secrets in the prod-like profiles (placeholders
only), and an entry point that refuses to start while a placeholder is left."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from voicereel.settings import _DEV_SECRET, PROD_REQUIRED_SECRETS, Profile, Settings
from voicereel.stack import REPO_ROOT

ENV_DIR = REPO_ROOT / "infra" / "env"
ENTRYPOINT = REPO_ROOT / "infra" / "docker" / "entrypoint.sh"
PLACEHOLDER = "CHANGE_ME"
PROD_LIKE = ["staging.env", "prod.env"]
SECRET_FIELDS = sorted(name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation))
# Non-VR variables that carry credentials (PostgreSQL/MinIO/AWS/exporter/Grafana).
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|DATA_SOURCE_NAME|DSN")
URL_PASSWORD = re.compile(r"://[^/:@\s]*:([^@/\s]+)@")


def read_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"{path.name}:{number}: not KEY=value: {line!r}"
        assert key not in values, f"{path.name}:{number}: {key} set twice"
        values[key] = value
    return values


def env_files() -> list[str]:
    return sorted(p.name for p in ENV_DIR.glob("*.env"))


def test_profiles_exist() -> None:
    assert env_files() == ["dev.env", "prod.env", "staging.env"]


@pytest.mark.parametrize("name", env_files())
def test_vr_variables_are_settings_fields_that_validate(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    values = read_env(ENV_DIR / name)
    fields = {f"VR_{field.upper()}" for field in Settings.model_fields}
    unknown = sorted(key for key in values if key.startswith("VR_") and key not in fields)
    assert not unknown, f"{name}: {unknown} are not Settings fields (typo, or a field that was removed)"
    for key in list(os.environ):
        if key.startswith("VR_"):
            monkeypatch.delenv(key)
    settings = Settings(_env_file=ENV_DIR / name)
    for key, raw in values.items():  # the file's values are the ones Settings ends up with
        if not key.startswith("VR_"):
            continue
        value = getattr(settings, key[3:].lower())
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str | int) and not isinstance(value, bool):
            assert str(value) == raw, key
    expected = Profile.dev if name == "dev.env" else Profile.prod
    assert settings.profile is expected
    if expected is Profile.prod:
        assert not settings.debug


@pytest.mark.parametrize("name", PROD_LIKE)
def test_prod_like_profiles_hold_placeholders_not_secrets(name: str) -> None:
    values = read_env(ENV_DIR / name)
    for field in SECRET_FIELDS:  # required ones must be there; optional ones (metrics_token) may be left out
        if field in PROD_REQUIRED_SECRETS or f"VR_{field.upper()}" in values:
            assert values.get(f"VR_{field.upper()}") == PLACEHOLDER, f"{name}: VR_{field.upper()} must be {PLACEHOLDER}"
    for key, value in values.items():
        assert _DEV_SECRET not in value, f"{name}: {key} holds the dev secret"
        if SECRET_NAME.search(key):
            assert PLACEHOLDER in value, f"{name}: {key} must be a {PLACEHOLDER} placeholder"
        for password in URL_PASSWORD.findall(value):
            assert password == PLACEHOLDER, f"{name}: {key} embeds a password"


def test_dev_profile_keeps_compose_credentials_consistent() -> None:
    """The DSN the app uses, the exporter's and the PostgreSQL container's user/password/database agree, and the
    app's S3 keys are MinIO's root pair."""
    values = read_env(ENV_DIR / "dev.env")
    user, password, db = values["POSTGRES_USER"], values["POSTGRES_PASSWORD"], values["POSTGRES_DB"]
    assert f"://{user}:{password}@postgres:5432/{db}" in values["VR_DATABASE_URL"]
    assert f"://{user}:{password}@postgres:5432/{db}" in values["DATA_SOURCE_NAME"]
    assert (values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"]) == (
        values["MINIO_ROOT_USER"],
        values["MINIO_ROOT_PASSWORD"],
    )


def run_entrypoint(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ENTRYPOINT), *command],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("name", PROD_LIKE)
def test_entrypoint_refuses_to_start_with_placeholders(name: str) -> None:
    values = read_env(ENV_DIR / name)
    result = run_entrypoint(values, "echo", "started")
    assert result.returncode == 78, result
    assert "started" not in result.stdout
    for key, value in values.items():
        if PLACEHOLDER in value:
            assert key in result.stderr, f"{key} not named in {result.stderr!r}"


def test_entrypoint_runs_the_command_once_secrets_are_set() -> None:
    values = {
        key: value.replace(PLACEHOLDER, f"real-{key.lower()}") for key, value in read_env(ENV_DIR / "prod.env").items()
    }
    result = run_entrypoint(values, "sh", "-c", 'echo "started as $VR_PROFILE"')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started as prod"
