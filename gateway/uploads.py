"""Reference-audio uploads: a streaming multipart reader with the size cap enforced while reading, container
sniffing, and a decode probe bounded in samples.

Nothing is stored or queued by this module: the caller stores the bytes only after `probe_audio` passed.

- The cap applies as bytes arrive (a lying or absent Content-Length changes nothing); past it the request is
  413 before the rest is read. The file part spools to a temporary file past 1 MiB.
- The multipart body must end with its closing boundary: a truncated upload is 400, not a shorter file.
- The container is recognised from its first bytes (WAV/RF64, FLAC, Ogg, MP3), never from the file name; anything
  else is 415.
- Decoding reads blocks and stops as soon as the decoded length passes `max_reference_decoded_s`, so a small
  compressed file that would expand to gigabytes costs one bounded read (413).
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from dataclasses import dataclass, field
from typing import IO

import numpy as np
import soundfile as sf
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

from voicereel.errors import ErrorCode, VoiceReelError

SPOOL_BYTES = 1 << 20
FORM_OVERHEAD_BYTES = 256 << 10  # boundaries, part headers and the text fields around the file
MAX_FIELD_BYTES = 64 << 10


@dataclass
class MultipartForm:
    fields: dict[str, str] = field(default_factory=dict)
    file: IO[bytes] | None = None
    file_field: str | None = None
    filename: str | None = None
    file_size: int = 0
    body_sha256: str = ""  # of the raw body, for the request signature
    file_sha256: str = ""

    @property
    def content_sha256(self) -> str:
        """What the form says, independent of its encoding (boundary, part order): for Idempotency-Key, so that a
        client re-encoding its retry is still recognised as the same request."""
        described = json.dumps({"fields": self.fields, "file": [self.file_field, self.file_sha256]}, sort_keys=True)
        return hashlib.sha256(described.encode()).hexdigest()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _bad(message: str, **details: object) -> VoiceReelError:
    return VoiceReelError(ErrorCode.INVALID_INPUT, message, dict(details))


def _too_large(limit: int) -> VoiceReelError:
    return VoiceReelError(
        ErrorCode.PAYLOAD_TOO_LARGE,
        f"upload exceeds the limit of {limit} bytes",
        {"limit_bytes": limit},
    )


async def read_multipart(
    request: Request, *, max_file_bytes: int, file_fields: set[str], text_fields: set[str]
) -> MultipartForm:
    """Parse a multipart/form-data body as it streams in. One file part at most; only the named fields."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise VoiceReelError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send the upload as multipart/form-data")
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise _bad("multipart/form-data needs a boundary parameter")
    max_body = max_file_bytes + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise _too_large(max_file_bytes)

    form = MultipartForm()
    file_digest = hashlib.sha256()
    part: dict[str, object] = {}
    headers: dict[str, bytes] = {}
    header_name = bytearray()
    header_value = bytearray()
    text = bytearray()

    def on_part_begin() -> None:
        part.clear()
        headers.clear()
        text.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_name).lower().decode("latin-1")] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, options = parse_options_header(headers.get("content-disposition", b""))
        raw_name = options.get(b"name")
        if raw_name is None:
            raise _bad("every multipart part needs a name")
        name = raw_name.decode("utf-8", errors="replace")
        if name in form.fields or name == form.file_field:
            raise _bad(f"field {name!r} appears more than once", field=name)
        if name in file_fields:
            if form.file is not None:
                raise _bad("only one file may be uploaded")
            form.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by the caller)
            form.file_field = name
            filename = options.get(b"filename")
            form.filename = filename.decode("utf-8", errors="replace") if filename is not None else None
        elif name in text_fields:
            part["text"] = True
        else:
            raise _bad(f"unknown field {name!r}", field=name, allowed=sorted(file_fields | text_fields))
        part["name"] = name

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part.get("text"):
            text.extend(data[start:end])
            if len(text) > MAX_FIELD_BYTES:
                raise _bad(f"field {part['name']!r} is longer than {MAX_FIELD_BYTES} bytes", field=part["name"])
        else:
            assert form.file is not None
            form.file_size += end - start
            if form.file_size > max_file_bytes:
                raise _too_large(max_file_bytes)
            form.file.write(data[start:end])
            file_digest.update(data[start:end])

    def on_part_end() -> None:
        if part.get("text"):
            name = str(part["name"])
            try:
                form.fields[name] = text.decode("utf-8")
            except UnicodeDecodeError:
                raise _bad(f"field {name!r} is not UTF-8 text", field=name) from None

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    digest = hashlib.sha256()
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_body:
                raise _too_large(max_file_bytes)
            digest.update(chunk)
            parser.write(chunk)
        if parser.state is not MultipartState.END:
            raise _bad("multipart body is truncated (no closing boundary)")
    except MultipartParseError as exc:
        form.close()
        raise _bad("malformed multipart body", reason=str(exc)[:200]) from None
    except BaseException:
        form.close()
        raise
    form.body_sha256 = digest.hexdigest()
    form.file_sha256 = file_digest.hexdigest()
    if form.file is not None:
        form.file.seek(0)
    return form


# --- audio --------------------------------------------------------------------------------------------------

CONTENT_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "mp3": "audio/mpeg"}


def sniff_container(head: bytes) -> str | None:
    """The audio container from the first bytes, or None. Names and declared content types are not trusted."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3":
        return "mp3"
    # An MPEG audio frame header: 11 sync bits, then a version that is not 'reserved' and layer I, II or III
    # (ADTS AAC has layer 0 and is not decodable here).
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and (head[1] >> 3) & 3 != 1 and (head[1] >> 1) & 3:
        return "mp3"
    return None


@dataclass(frozen=True)
class AudioProbe:
    container: str
    sample_rate: int
    channels: int
    duration_s: float
    peak: float
    rms_dbfs: float

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.container]


def probe_audio(
    file: IO[bytes],
    *,
    max_decoded_s: float,
    min_duration_s: float,
    block_frames: int = 1 << 16,
) -> AudioProbe:
    """Sniff and decode the whole file in bounded blocks (blocking: run in a thread)."""
    file.seek(0)
    container = sniff_container(file.read(16))
    if container is None:
        raise VoiceReelError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "reference_audio is not a supported audio file (WAV, FLAC, Ogg Vorbis/Opus or MP3)",
            {"supported": sorted(CONTENT_TYPES)},
        )
    file.seek(0)
    frames = 0
    peak = 0.0
    sum_squares = 0.0
    try:
        with sf.SoundFile(file) as snd:
            rate, channels = snd.samplerate, snd.channels
            if not 8000 <= rate <= 192_000 or not 1 <= channels <= 8:
                raise _bad("unsupported audio layout", sample_rate=rate, channels=channels)
            limit = math.ceil(max_decoded_s * rate)
            while True:
                block = snd.read(block_frames, dtype="float32", always_2d=True)
                if not len(block):
                    break
                frames += len(block)
                if frames > limit:
                    raise VoiceReelError(
                        ErrorCode.PAYLOAD_TOO_LARGE,
                        f"reference audio decodes to more than {max_decoded_s:g} s",
                        {"max_decoded_s": max_decoded_s},
                    )
                mono = block.mean(axis=1, dtype=np.float64)
                peak = max(peak, float(np.abs(mono).max()))
                sum_squares += float(np.dot(mono, mono))
    except VoiceReelError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, EOFError) as exc:
        raise _bad("reference_audio could not be decoded", reason=str(exc)[:200]) from None
    duration = frames / rate if frames else 0.0
    if duration < min_duration_s:
        raise VoiceReelError(
            ErrorCode.INSUFFICIENT_REF,
            f"reference audio is {duration:.1f} s long; at least {min_duration_s:g} s are needed",
            {"duration_s": round(duration, 3), "min_duration_s": min_duration_s},
        )
    rms = math.sqrt(sum_squares / frames) if frames else 0.0
    if peak == 0.0:
        raise VoiceReelError(ErrorCode.INSUFFICIENT_REF, "reference audio is silent", {"duration_s": duration})
    return AudioProbe(
        container=container,
        sample_rate=rate,
        channels=channels,
        duration_s=round(duration, 3),
        peak=round(peak, 4),
        rms_dbfs=round(20 * math.log10(max(rms, 1e-10)), 2),
    )
