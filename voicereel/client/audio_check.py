"""Client-side checks of a reference-audio file before it is uploaded.

The gateway decodes and judges the audio itself; here we only catch what can be told without decoding, so the
user learns about a typo'd path or a video file at once instead of after an upload: the file exists, is
readable, is not empty, fits the upload limit, and starts like one of the accepted containers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voicereel.client.errors import InvalidRequestError

DEFAULT_MAX_UPLOAD_BYTES = 30 * 1024 * 1024

# Containers the gateway decodes (libsndfile): name -> content type.
ACCEPTED_CONTAINERS = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mp3": "audio/mpeg",
}


@dataclass(frozen=True)
class ReferenceAudio:
    filename: str
    data: bytes
    container: str

    @property
    def content_type(self) -> str:
        return ACCEPTED_CONTAINERS[self.container]


def sniff_container(head: bytes) -> str | None:
    """The container named by the first bytes of a file, or None if it is none we accept."""
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3":
        return "mp3"
    # An MPEG audio frame header: 11 sync bits, then a layer that is not the reserved 00.
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0:
        return "mp3"
    return None


def check_reference_audio(path: Path, *, max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> ReferenceAudio:
    if not path.exists():
        raise InvalidRequestError(f"reference audio {path} does not exist")
    if not path.is_file():
        raise InvalidRequestError(f"reference audio {path} is not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise InvalidRequestError(f"reference audio {path} is empty")
    if size > max_bytes:
        raise InvalidRequestError(
            f"reference audio {path} is {size / 2**20:.1f} MiB; uploads are limited to {max_bytes / 2**20:.0f} MiB"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidRequestError(f"cannot read reference audio {path}: {exc.strerror or exc}") from exc
    container = sniff_container(data[:16])
    if container is None:
        accepted = ", ".join(sorted(ACCEPTED_CONTAINERS))
        raise InvalidRequestError(f"reference audio {path} is not in a supported format (accepted: {accepted})")
    return ReferenceAudio(filename=path.name, data=data, container=container)
