"""Reference-audio probes in a child process: same verdicts as in-process, and a decoder that crashes or hangs
costs only its own request (400), never the gateway process."""

from __future__ import annotations

import importlib
import io
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from gateway.probe_sandbox import probe_isolated
from gateway.uploads import probe_audio
from voicereel.errors import ErrorCode, VoiceReelError

LIMITS = {"max_decoded_s": 600.0, "min_duration_s": 30.0}


@pytest.fixture
def misbehaving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Child targets that die by SIGSEGV or never answer, in a module the forkserver's children can import."""
    (tmp_path / "voicereel_misbehaving_probe.py").write_text(
        textwrap.dedent(
            """
            import os, signal, time

            def segfault(conn, data, limits):
                os.kill(os.getpid(), signal.SIGSEGV)

            def hang(conn, data, limits):
                time.sleep(600)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module("voicereel_misbehaving_probe")


def test_isolated_probe_measures_like_the_in_process_one(audio) -> None:
    data = audio.encode(audio.tone(31.0, 16000), 16000, "FLAC")
    isolated = probe_isolated(io.BytesIO(data), timeout_s=30, **LIMITS)
    assert isolated == probe_audio(io.BytesIO(data), **LIMITS)
    assert isolated.container == "flac" and 30.9 <= isolated.duration_s <= 31.2


def test_verdicts_come_back_unchanged(audio) -> None:
    cases = [
        (audio.encode(audio.tone(5.0), 16000, "WAV"), ErrorCode.INSUFFICIENT_REF),
        (b"hello, I am a text file named voice.wav", ErrorCode.UNSUPPORTED_MEDIA_TYPE),
        (audio.encode(np.full(7200 * 8000, 0.25, dtype=np.float32), 8000, "FLAC"), ErrorCode.PAYLOAD_TOO_LARGE),
        (b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk", ErrorCode.INVALID_INPUT),
    ]
    for data, code in cases:
        with pytest.raises(VoiceReelError) as caught:
            probe_isolated(io.BytesIO(data), timeout_s=30, **LIMITS)
        assert caught.value.code is code


def test_a_crashing_decoder_is_a_400_for_its_request_only(audio, misbehaving: ModuleType) -> None:
    data = audio.encode(audio.tone(31.0, 16000), 16000, "WAV")
    with pytest.raises(VoiceReelError) as caught:
        probe_isolated(io.BytesIO(data), timeout_s=30, target=misbehaving.segfault, **LIMITS)
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert "exit code -11" in caught.value.details["reason"]
    assert probe_isolated(io.BytesIO(data), timeout_s=30, **LIMITS).duration_s > 30  # and we are still here


def test_a_hanging_decoder_is_killed_at_the_time_limit(audio, misbehaving: ModuleType) -> None:
    data = audio.encode(audio.tone(31.0, 16000), 16000, "WAV")
    with pytest.raises(VoiceReelError) as caught:
        probe_isolated(io.BytesIO(data), timeout_s=1.0, target=misbehaving.hang, **LIMITS)
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert "longer than 1 s" in caught.value.details["reason"]
