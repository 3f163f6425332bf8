from pathlib import Path

import pytest
from pydantic import ValidationError

from voicereel.settings import Profile, Settings


def test_defaults_follow_the_requirements() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.max_upload_mb == 30
    assert s.min_reference_s == 30
    assert s.presign_expiry_s == 15 * 60
    assert s.artifact_ttl_h == 48
    assert s.languages[:3] == ["ko", "en", "ja"]
    assert s.effective_database_url.startswith("sqlite:///")


def test_environment_overrides_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VR_LANGUAGES", "ko, en")
    monkeypatch.setenv("VR_CORS_ORIGINS", "https://a.example,https://b.example")
    monkeypatch.setenv("VR_PRESIGN_EXPIRY_S", "60")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.languages == ["ko", "en"]
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.presign_expiry_s == 60


SECRETS = {"url_signing_secret": "x" * 32, "admin_token": "y" * 32, "key_signing_secret": "z" * 32}


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_prod_requires_each_secret(missing: str) -> None:
    given = {k: v for k, v in SECRETS.items() if k != missing}
    with pytest.raises(ValidationError, match=f"VR_{missing.upper()} is required"):
        Settings(_env_file=None, profile=Profile.prod, **given)  # type: ignore[call-arg]


def test_prod_with_secrets_starts() -> None:
    s = Settings(_env_file=None, profile=Profile.prod, **SECRETS)  # type: ignore[call-arg]
    assert s.secret("url_signing_secret") == "x" * 32


def test_prod_refuses_wildcard_cors_and_half_tls() -> None:
    with pytest.raises(ValidationError, match="CORS"):
        Settings(  # type: ignore[call-arg]
            _env_file=None, profile=Profile.prod, cors_origins=["*"], **SECRETS
        )
    with pytest.raises(ValidationError, match="TLS"):
        Settings(_env_file=None, tls_certfile=Path("cert.pem"))  # type: ignore[call-arg]


def test_invalid_values_fail_at_start() -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, presign_expiry_s=0)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, port=70000)  # type: ignore[call-arg]


def test_active_checkpoint_falls_back_to_tiny(tmp_path: Path) -> None:
    s = Settings(_env_file=None, checkpoint_dir=tmp_path / "real", tiny_checkpoint_dir=tmp_path / "tiny")  # type: ignore[call-arg]
    assert s.active_checkpoint_dir == tmp_path / "tiny"
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "model.pth").write_bytes(b"x")
    assert s.active_checkpoint_dir == tmp_path / "real"


def test_every_field_is_documented() -> None:
    undocumented = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert undocumented == []


def test_env_example_is_generated_from_the_settings() -> None:
    from voicereel.settings import render_env_example
    from voicereel.stack import REPO_ROOT

    assert (REPO_ROOT / ".env.example").read_text() == render_env_example(), (
        "regenerate: python -m voicereel.settings > .env.example"
    )


def test_prod_treats_an_empty_secret_as_missing() -> None:
    with pytest.raises(ValidationError, match="VR_ADMIN_TOKEN is required"):
        Settings(_env_file=None, profile=Profile.prod, **{**SECRETS, "admin_token": "  "})  # type: ignore[call-arg]
