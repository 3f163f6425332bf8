from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicereel.client.audio_check import check_reference_audio, sniff_container
from voicereel.client.errors import InvalidRequestError


@pytest.mark.parametrize(
    ("fmt", "subtype", "container"),
    [("WAV", "PCM_16", "wav"), ("FLAC", "PCM_16", "flac"), ("OGG", "VORBIS", "ogg"), ("MP3", "MPEG_LAYER_III", "mp3")],
)
def test_real_files_are_recognised(tmp_path: Path, fmt: str, subtype: str, container: str) -> None:
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile cannot write {fmt}")
    path = tmp_path / f"ref.{container}"
    tone = 0.1 * np.sin(np.linspace(0, 2 * np.pi * 440, 44100)).astype(np.float32)
    sf.write(path, tone, 44100, format=fmt, subtype=subtype)
    audio = check_reference_audio(path)
    assert audio.container == container
    assert audio.filename == path.name
    assert audio.data == path.read_bytes()


@pytest.mark.parametrize(
    "head",
    [b"\x1aE\xdf\xa3webm....", b"\x00\x00\x00\x20ftypM4A ", b"%PDF-1.7", b"RIFF\x00\x00\x00\x00AVI "],
)
def test_other_containers_are_refused(head: bytes) -> None:
    assert sniff_container(head) is None


def test_unsupported_format_named_in_error(tmp_path: Path) -> None:
    path = tmp_path / "clip.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 100)
    with pytest.raises(InvalidRequestError, match="not in a supported format"):
        check_reference_audio(path)


def test_missing_empty_directory_and_too_large(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="does not exist"):
        check_reference_audio(tmp_path / "nope.wav")
    with pytest.raises(InvalidRequestError, match="not a regular file"):
        check_reference_audio(tmp_path)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(InvalidRequestError, match="is empty"):
        check_reference_audio(empty)
    big = tmp_path / "big.wav"
    big.write_bytes(b"RIFF\x00\x00\x00\x00WAVE" + b"\x00" * 2048)
    with pytest.raises(InvalidRequestError, match="limited to"):
        check_reference_audio(big, max_bytes=1024)


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: file permissions do not stop root from reading")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    path.chmod(0)
    with pytest.raises(InvalidRequestError, match="cannot read"):
        check_reference_audio(path)
