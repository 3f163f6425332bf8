"""The upload reader and the audio probe on their own: the cap while streaming, truncation, sniffing, the decode
bound, length and silence checks."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from starlette.requests import Request

from gateway.uploads import FORM_OVERHEAD_BYTES, probe_audio, read_multipart, sniff_container
from voicereel.errors import ErrorCode, VoiceReelError

pytestmark = pytest.mark.anyio

BOUNDARY = "vr-test-boundary"


def multipart(fields: dict[str, str], file_bytes: bytes | None, *, close: bool = True) -> bytes:
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    if file_bytes is not None:
        out.write(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="reference_audio"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n".encode()
        )
        out.write(file_bytes + b"\r\n")
    if close:
        out.write(f"--{BOUNDARY}--\r\n".encode())
    return out.getvalue()


class StreamedBody:
    """An ASGI receive() that hands the body over in chunks and records how much the app pulled."""

    def __init__(self, body: bytes, chunk: int = 64 * 1024) -> None:
        self.chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
        self.pulled = 0

    async def receive(self) -> dict:
        chunk = self.chunks[self.pulled]
        self.pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": self.pulled < len(self.chunks)}


def request_for(stream: StreamedBody, headers: dict[str, str]) -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/speakers",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "query_string": b"",
    }
    return Request(scope, stream.receive)


async def read(body: bytes, *, max_file_bytes: int = 1 << 20, headers: dict[str, str] | None = None):
    stream = StreamedBody(body)
    request = request_for(stream, headers or {"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
    form = await read_multipart(
        request, max_file_bytes=max_file_bytes, file_fields={"reference_audio"}, text_fields={"name", "lang"}
    )
    return form, stream


async def test_reads_fields_file_and_digest() -> None:
    import hashlib

    body = multipart({"name": "Ann", "lang": "en"}, b"RIFF0000WAVEdata")
    form, _ = await read(body)
    assert form.fields == {"name": "Ann", "lang": "en"}
    assert form.file is not None and form.file.read() == b"RIFF0000WAVEdata"
    assert form.filename == "a.wav" and form.file_size == 16
    assert form.body_sha256 == hashlib.sha256(body).hexdigest()
    form.close()


async def test_cap_is_enforced_while_streaming_without_content_length() -> None:
    """No Content-Length: the reader stops pulling soon after the cap, long before the end of the body."""
    cap = 256 * 1024
    body = multipart({"name": "Ann"}, b"\x00" * (8 * cap))
    stream = StreamedBody(body)
    request = request_for(stream, {"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
    with pytest.raises(VoiceReelError) as caught:
        await read_multipart(request, max_file_bytes=cap, file_fields={"reference_audio"}, text_fields={"name"})
    assert caught.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert stream.pulled * 64 * 1024 <= cap + FORM_OVERHEAD_BYTES + 64 * 1024
    assert stream.pulled < len(stream.chunks) / 2


async def test_declared_oversize_is_refused_before_reading() -> None:
    stream = StreamedBody(b"x" * 10)
    request = request_for(
        stream, {"content-type": f"multipart/form-data; boundary={BOUNDARY}", "content-length": str(10**9)}
    )
    with pytest.raises(VoiceReelError) as caught:
        await read_multipart(request, max_file_bytes=1024, file_fields={"reference_audio"}, text_fields=set())
    assert caught.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert stream.pulled == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (multipart({"name": "Ann"}, b"RIFF", close=False), "truncated"),
        (multipart({"name": "Ann"}, b"RIFF")[:-40], "truncated"),
        (b"not multipart at all", "malformed"),
        (multipart({"surprise": "x"}, None), "unknown field"),
        (multipart({"name": "a"}, None, close=False) + multipart({"name": "b"}, None), "more than once"),
        (multipart({}, b"RIFF", close=False) + multipart({}, b"RIFF"), "more than once"),
        (multipart({"name": "x" * 70_000}, None), "longer than"),
    ],
)
async def test_malformed_multipart_is_400(body: bytes, message: str) -> None:
    with pytest.raises(VoiceReelError) as caught:
        await read(body)
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert message in caught.value.message


async def test_non_multipart_content_type_is_415() -> None:
    with pytest.raises(VoiceReelError) as caught:
        await read(json.dumps({"name": "x"}).encode(), headers={"content-type": "application/json"})
    assert caught.value.code is ErrorCode.UNSUPPORTED_MEDIA_TYPE


# --- audio ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "container"),
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "wav"),
        (b"RF64\xff\xff\xff\xffWAVEds64", "wav"),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"OggS\x00\x02", "ogg"),
        (b"ID3\x04\x00", "mp3"),
        (b"\xff\xfb\x90\x64", "mp3"),  # MPEG-1 layer III frame header
        (b"\xff\xf1\x50\x80", None),  # ADTS AAC: not decodable here
        (b"RIFF\x00\x00\x00\x00AVI LIST", None),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_sniff_container(head: bytes, container: str | None) -> None:
    assert sniff_container(head) == container


@pytest.mark.parametrize(
    ("fmt", "subtype", "container"),
    [("WAV", None, "wav"), ("FLAC", None, "flac"), ("OGG", "VORBIS", "ogg"), ("MP3", None, "mp3")],
)
def test_probe_measures_every_container(audio, fmt: str, subtype: str | None, container: str) -> None:
    data = audio.encode(audio.tone(31.0, 16000), 16000, fmt, subtype)
    probe = probe_audio(io.BytesIO(data), max_decoded_s=600, min_duration_s=30)
    assert probe.container == container and probe.sample_rate == 16000 and probe.channels == 1
    assert 30.9 <= probe.duration_s <= 31.2
    assert -30 < probe.rms_dbfs < 0


def test_decompression_bomb_stops_at_the_bound(audio) -> None:
    """180 KB of FLAC that decodes to two hours: refused after reading just past the bound."""
    data = audio.encode(np.full(7200 * 8000, 0.25, dtype=np.float32), 8000, "FLAC")
    assert len(data) < 300_000
    with pytest.raises(VoiceReelError) as caught:
        probe_audio(io.BytesIO(data), max_decoded_s=600, min_duration_s=30)
    assert caught.value.code is ErrorCode.PAYLOAD_TOO_LARGE


def test_short_silent_and_undecodable_audio(audio) -> None:
    with pytest.raises(VoiceReelError) as short:
        probe_audio(io.BytesIO(audio.encode(audio.tone(5.0), 16000, "WAV")), max_decoded_s=600, min_duration_s=30)
    assert short.value.code is ErrorCode.INSUFFICIENT_REF and short.value.details["duration_s"] == 5.0
    silent = audio.encode(np.zeros(16000 * 31, dtype=np.float32), 16000, "WAV")
    with pytest.raises(VoiceReelError) as quiet:
        probe_audio(io.BytesIO(silent), max_decoded_s=600, min_duration_s=30)
    assert quiet.value.code is ErrorCode.INSUFFICIENT_REF
    with pytest.raises(VoiceReelError) as junk:
        probe_audio(io.BytesIO(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk"), max_decoded_s=600, min_duration_s=30)
    assert junk.value.code is ErrorCode.INVALID_INPUT
    with pytest.raises(VoiceReelError) as text:
        probe_audio(io.BytesIO(b"hello, I am a text file named voice.wav"), max_decoded_s=600, min_duration_s=30)
    assert text.value.code is ErrorCode.UNSUPPORTED_MEDIA_TYPE
