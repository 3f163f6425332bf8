"""The `voicereel` command against the real gateway on uvicorn: the installed entry point in a subprocess for the
admin commands and one API round trip, the same Typer app in-process (faster) for the rest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from voicereel.cli.exit_codes import ExitCode

if TYPE_CHECKING:
    from tests.cli.conftest import Cli
    from tests.client.live_gateway import Keys, LiveServer


@pytest.fixture(scope="session")
def reference_wav(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from voicereel.speech_fixture import reference_clip

    path, transcript = reference_clip(tmp_path_factory.mktemp("cli-ref") / "reference.wav", lang="en", min_seconds=31)
    return Path(path), transcript


def test_keys_create_uses_the_gateways_admin(cli: Cli, cli_live: tuple[LiveServer, Keys]) -> None:
    server, _ = cli_live
    db = {"VR_DATABASE_URL": server.settings.effective_database_url, "VR_PROFILE": "test"}
    made = cli(
        "--json", "keys", "create", "--project", "cli-keys-test", "--rate-limit", "30", "--signing-required", env=db
    )
    assert made.code == 0, made.stderr
    issued = made.json()
    assert issued["api_key"].startswith("vr_") and issued["signing_secret"].startswith("vrs_")
    assert issued["project_created"] is True
    # the new key works against the gateway, signed with its secret (and only signed)
    api = {"VOICEREEL_BASE_URL": server.base_url, "VOICEREEL_API_KEY": issued["api_key"]}
    assert cli("speakers", "list", env=api).code == ExitCode.AUTH
    signed = cli("--json", "speakers", "list", env={**api, "VOICEREEL_SIGNING_SECRET": issued["signing_secret"]})
    assert signed.code == 0, signed.stderr
    assert signed.json()["total"] == 0
    listed = cli("keys", "list", "--project", "cli-keys-test", env=db)
    assert listed.code == 0 and issued["key_id"] in listed.stdout and "30/min" in listed.stdout
    assert cli("keys", "revoke", issued["key_id"], env=db).code == 0
    assert (
        cli("speakers", "list", env={**api, "VOICEREEL_SIGNING_SECRET": issued["signing_secret"]}).code == ExitCode.AUTH
    )


def test_speakers_add_list_show_rm(gateway_cli_subprocess: Cli, reference_wav: tuple[Path, str]) -> None:
    gateway_cli = gateway_cli_subprocess
    path, transcript = reference_wav
    transcript_file = path.with_suffix(".txt")
    transcript_file.write_text(transcript)
    added = gateway_cli(
        "--json",
        "speakers",
        "add",
        str(path),
        "--name",
        "Narrator",
        "--lang",
        "en",
        "--transcript-file",
        str(transcript_file),
    )
    assert added.code == 0, added.stderr
    speaker_id = added.json()["speaker_id"]
    listed = gateway_cli("--json", "speakers", "list")
    assert [s["id"] for s in listed.json()["data"]] == [speaker_id]
    human = gateway_cli("speakers", "list")
    assert human.code == 0 and speaker_id in human.stdout and "Narrator" in human.stdout and "pending" in human.stdout
    shown = gateway_cli("--json", "speakers", "show", speaker_id)
    assert shown.json()["status"] == "pending" and shown.json()["duration_s"] >= 30
    assert gateway_cli("speakers", "rm", speaker_id).code == 0
    gone = gateway_cli("speakers", "show", speaker_id)
    assert gone.code == ExitCode.NOT_FOUND and "NOT_FOUND" in gone.stderr and "request req_" in gone.stderr


def test_upload_progress_bar(gateway_cli: Cli, reference_wav: tuple[Path, str]) -> None:
    path, transcript = reference_wav
    result = gateway_cli(
        "--progress", "speakers", "add", str(path), "--name", "P", "--lang", "en", "--transcript", transcript
    )
    assert result.code == 0, result.stderr
    assert "uploading reference.wav" in result.stderr
    size_mb = f"{path.stat().st_size / 1e6:.1f}"
    assert f"{size_mb}/{size_mb} MB" in result.stderr or f"/{size_mb} MB" in result.stderr


def test_synth_resolves_names_and_jobs_commands(
    gateway_cli: Cli, cli_live: tuple[LiveServer, Keys], tmp_path: Path
) -> None:
    _, keys = cli_live
    key = keys.new_key()
    alice = keys.add_ready_speaker(key, "Alice Voice")
    bob = keys.add_ready_speaker(key, "Bob")
    gateway_cli.env["VOICEREEL_API_KEY"] = key.key
    script = tmp_path / "scene.txt"
    script.write_text("# a scene\nALICE: Did you hear that?\nBOB: Hear what?\n  Go back to sleep.\n")
    speakers = tmp_path / "cast.yaml"
    speakers.write_text(f"BOB: {bob}\n")
    synth = gateway_cli(
        "--json", "synth", str(script), "-o", str(tmp_path / "out.mp3"), "--captions", "srt",
        "--speaker", "ALICE=alice voice", "--speakers", str(speakers), "--no-wait", "--seed", "7",
    )  # fmt: skip
    assert synth.code == 0, synth.stderr
    job_id = synth.json()["job_id"]
    shown = gateway_cli("--json", "jobs", "show", job_id).json()
    assert (shown["status"], shown["output_format"], shown["caption_format"]) == ("queued", "mp3", "srt")
    assert shown["characters"] == len("Did you hear that?") + len("Hear what? Go back to sleep.")
    assert [j["id"] for j in gateway_cli("--json", "jobs", "list").json()["data"]] == [job_id]
    human = gateway_cli("jobs", "show", job_id)
    assert job_id in human.stdout and "queued" in human.stdout

    timed_out = gateway_cli("jobs", "show", job_id, "--wait", "--wait-timeout", "1")
    assert timed_out.code == ExitCode.TIMEOUT and "still queued" in timed_out.stderr

    assert gateway_cli("jobs", "cancel", job_id).code == 0
    failed = gateway_cli("--json", "jobs", "show", job_id, "--wait")
    assert failed.code == ExitCode.JOB_FAILED
    assert '"status": "canceled"' in failed.stderr

    # a map value naming no registered speaker is refused after the lookup, before any job is made
    missing = gateway_cli("synth", str(script), "-o", str(tmp_path / "o.wav"), "-s", "ALICE=Carol", "-s", f"BOB={bob}")
    assert missing.code == ExitCode.USAGE and "no registered speaker is named 'Carol'" in missing.stderr
    assert gateway_cli("--json", "jobs", "list").json()["total"] == 1
    del alice


def test_usage_and_config_file(gateway_cli: Cli, cli_live: tuple[LiveServer, Keys], tmp_path: Path) -> None:
    server, keys = cli_live
    key = keys.new_key(monthly_quota_chars=1234)
    config = tmp_path / "vr.toml"
    config.write_text(f'base_url = "{server.base_url}"\napi_key = "{key.key}"\n')
    config.chmod(0o600)
    result = gateway_cli(
        "--config", str(config), "--json", "usage", env={"VOICEREEL_API_KEY": "", "VOICEREEL_BASE_URL": ""}
    )
    assert result.code == 0, result.stderr
    usage = result.json()
    assert usage["project_id"] == key.project_id and usage["quota"]["quota_chars"] == 1234
    human = gateway_cli("--config", str(config), "usage", env={"VOICEREEL_API_KEY": "", "VOICEREEL_BASE_URL": ""})
    assert "0 of 1,234 characters used" in human.stdout


def test_auth_and_rate_limit_exit_codes(gateway_cli: Cli, cli_live: tuple[LiveServer, Keys]) -> None:
    _, keys = cli_live
    bad = gateway_cli("jobs", "list", env={"VOICEREEL_API_KEY": "vr_" + "z" * 43})
    assert bad.code == ExitCode.AUTH and "UNAUTHORIZED" in bad.stderr and "hint:" in bad.stderr
    limited = keys.new_key(rate_limit_per_min=1)
    env = {"VOICEREEL_API_KEY": limited.key}
    assert gateway_cli("jobs", "list", env=env).code == 0
    refused = gateway_cli("--json", "--retries", "0", "jobs", "list", env=env)
    assert refused.code == ExitCode.RATE_LIMITED
    assert '"code": "RATE_LIMITED"' in refused.stderr
