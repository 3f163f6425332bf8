from pathlib import Path

import pytest

from voicereel.engine.weights import WeightsError, fetch_weights, main


def test_offline_fetch_fails_with_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="cannot reach the model hub"):
        fetch_weights(tmp_path / "ckpt")


def test_cli_exit_code_when_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["--out", str(tmp_path / "ckpt")]) == 1
    assert "make weights failed" in capsys.readouterr().err
