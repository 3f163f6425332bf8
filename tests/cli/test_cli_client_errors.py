"""Bad input is refused by the CLI itself, before any request, with a clear message and the documented exit
code. The base URL points at a listener that counts connections, so "nothing was sent" is checked, not assumed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from voicereel.cli.exit_codes import ExitCode

if TYPE_CHECKING:
    from tests.cli.conftest import Cli, ConnectionRecorder

KEY = "vr_" + "k" * 43
ALICE = "spk_01jd00000000000000000000aa"


@pytest.fixture
def offline(quick_cli: Cli, recorder: ConnectionRecorder) -> Cli:
    quick_cli.env.update({"VOICEREEL_BASE_URL": recorder.url, "VOICEREEL_API_KEY": KEY})
    return quick_cli


@pytest.fixture
def screenplay(tmp_path: Path) -> Path:
    path = tmp_path / "scene.txt"
    path.write_text("ALICE: Did you hear that?\nBOB: Hear what?\n")
    return path


def test_unknown_speaker_name(offline: Cli, recorder: ConnectionRecorder, screenplay: Path, tmp_path: Path) -> None:
    result = offline("synth", str(screenplay), "-o", str(tmp_path / "out.mp3"), "--speaker", f"ALICE={ALICE}")
    assert result.code == ExitCode.USAGE
    assert "unknown speaker name(s): BOB (first at scene.txt:2)" in result.stderr
    assert recorder.connections == 0


def test_unsupported_output_format(
    offline: Cli, recorder: ConnectionRecorder, screenplay: Path, tmp_path: Path
) -> None:
    result = offline(
        "synth", str(screenplay), "-o", str(tmp_path / "out.aac"), "-s", f"ALICE={ALICE}", "-s", f"BOB={ALICE}"
    )
    assert result.code == ExitCode.USAGE
    assert "unsupported output format '.aac'" in result.stderr
    assert recorder.connections == 0


def test_invalid_request_options_are_caught_locally(
    offline: Cli, recorder: ConnectionRecorder, screenplay: Path, tmp_path: Path
) -> None:
    result = offline(
        "synth",
        str(screenplay),
        "-o",
        str(tmp_path / "out.ogg"),
        "--speakers",
        str(_map(tmp_path)),
        "--sample-rate",
        "44100",
    )
    assert result.code == ExitCode.USAGE and "opus" in result.stderr
    assert recorder.connections == 0


def _map(tmp_path: Path) -> Path:
    path = tmp_path / "speakers.txt"
    path.write_text(f"ALICE={ALICE}\nBOB={ALICE}\n")
    return path


def test_missing_or_malformed_script(offline: Cli, recorder: ConnectionRecorder, tmp_path: Path) -> None:
    missing = offline("synth", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "o.wav"))
    assert missing.code == ExitCode.USAGE and "does not exist" in missing.stderr
    bad = tmp_path / "bad.txt"
    bad.write_text("ALICE: fine\nthis line has no speaker\n")
    result = offline("synth", str(bad), "-o", str(tmp_path / "o.wav"), "-s", f"ALICE={ALICE}")
    assert result.code == ExitCode.USAGE and "bad.txt:2: expected 'NAME: text'" in result.stderr
    bogus = offline("synth", str(bad), "-o", str(tmp_path / "o.wav"), "--format", "xml")
    assert bogus.code == ExitCode.USAGE
    assert recorder.connections == 0


def test_bad_reference_audio(offline: Cli, recorder: ConnectionRecorder, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(64))
    result = offline("speakers", "add", str(video), "--name", "A", "--lang", "en", "--transcript", "hi")
    assert result.code == ExitCode.USAGE and "not in a supported format" in result.stderr
    missing = offline(
        "speakers", "add", str(tmp_path / "nope.wav"), "--name", "A", "--lang", "en", "--transcript", "hi"
    )
    assert missing.code == ExitCode.USAGE and "does not exist" in missing.stderr
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    no_transcript = offline("speakers", "add", str(wav), "--name", "A", "--lang", "en")
    assert no_transcript.code == ExitCode.USAGE and "exactly one of --transcript" in no_transcript.stderr
    bad_id = offline("speakers", "show", "alice")
    assert bad_id.code == ExitCode.USAGE and "speaker_id must look like" in bad_id.stderr
    assert recorder.connections == 0


def test_typer_usage_errors_exit_2(offline: Cli) -> None:
    assert offline("synth").code == ExitCode.USAGE
    assert offline("jobs", "list", "--limit", "0").code == ExitCode.USAGE
    assert offline("no-such-command").code == ExitCode.USAGE


def test_missing_api_key_is_an_auth_error(quick_cli: Cli, recorder: ConnectionRecorder) -> None:
    result = quick_cli("speakers", "list", env={"VOICEREEL_BASE_URL": recorder.url})
    assert result.code == ExitCode.AUTH and "no API key" in result.stderr
    assert recorder.connections == 0


def test_bad_config_file(quick_cli: Cli, tmp_path: Path) -> None:
    cli = quick_cli
    cfg = tmp_path / "config.toml"
    cfg.write_text('apikey = "vr_typo"\n')
    result = cli("--config", str(cfg), "speakers", "list")
    assert result.code == ExitCode.USAGE and "unknown key(s) apikey" in result.stderr
    default = cli.home / ".config" / "voicereel" / "config.toml"
    default.parent.mkdir(parents=True)
    default.write_text("timeout_s = 'soon'\n")
    assert cli("speakers", "list").code == ExitCode.USAGE


def test_unreachable_gateway_exit_code_and_json_error(cli: Cli, recorder: ConnectionRecorder) -> None:
    cli.env.update({"VOICEREEL_BASE_URL": recorder.url, "VOICEREEL_API_KEY": KEY})
    result = cli("--json", "--retries", "1", "jobs", "list")
    assert result.code == ExitCode.UNAVAILABLE
    assert recorder.connections == 2  # the request and its one retry
    error = json.loads(result.stderr.strip().splitlines()[-1])["error"]
    assert error["type"] == "TransportError" and error["exit_code"] == ExitCode.UNAVAILABLE
    assert result.stdout == ""


def test_help_documents_exit_codes(cli: Cli) -> None:
    result = cli("--help")
    assert result.code == 0
    for code in ExitCode:
        assert f"{int(code)}  " in result.stdout
    assert "VOICEREEL_API_KEY" in result.stdout and "VOICEREEL_SIGNING_SECRET" in result.stdout
    assert "config.toml" in result.stdout
