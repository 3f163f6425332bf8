"""Streaming a result file to disk: written to `<dest>.part` and renamed when complete, so `dest` is never a
truncated file; progress is reported in bytes received over the wire against `Content-Length`."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Literal

import httpx

from voicereel.client.errors import InvalidRequestError, TransportError
from voicereel.client.models import Job
from voicereel.client.transport import ByteProgress


class DownloadTarget:
    def __init__(self, dest: Path, progress: ByteProgress | None) -> None:
        self.dest = dest
        self.part = dest.with_name(dest.name + ".part")
        self.progress = progress
        self.total: int | None = None
        self.response: httpx.Response | None = None
        self._file: BinaryIO | None = None
        self._done = False

    def write(self, chunk: bytes) -> None:
        assert self._file is not None and self.response is not None
        self._file.write(chunk)
        if self.progress is not None:
            self.progress(self.response.num_bytes_downloaded, self.total)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.part.unlink(missing_ok=True)

    def close(self) -> None:
        if not self._done:
            self.discard()


def start_download(target: DownloadTarget, response: httpx.Response) -> None:
    length = response.headers.get("content-length")
    target.total = int(length) if length and length.isdigit() else None
    target.response = response
    target.dest.parent.mkdir(parents=True, exist_ok=True)
    target._file = target.part.open("wb")
    if target.progress is not None:
        target.progress(0, target.total)


def finish_download(target: DownloadTarget) -> Path:
    assert target._file is not None and target.response is not None
    received = target.response.num_bytes_downloaded
    if target.total is not None and received != target.total:
        target.discard()
        raise TransportError(f"download of {target.dest.name} truncated: {received} of {target.total} bytes")
    target._file.close()
    target._file = None
    target.part.replace(target.dest)
    target._done = True
    return target.dest


def job_artifact_url(job: Job, artifact: Literal["audio", "captions"]) -> str:
    url = job.audio_url if artifact == "audio" else job.caption_url
    if url:
        return url
    if job.status != "succeeded":
        raise InvalidRequestError(f"job {job.id} is {job.status}; only a succeeded job has {artifact} to download")
    raise InvalidRequestError(f"job {job.id} has no {artifact} URL (its artifacts may have expired)")
