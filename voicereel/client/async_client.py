"""`AsyncVoiceReelClient`: the asyncio client (httpx.AsyncClient), method for method the same as `VoiceReelClient`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from voicereel.client import calls
from voicereel.client.calls import Call
from voicereel.client.downloads import DownloadTarget, finish_download, job_artifact_url, start_download
from voicereel.client.errors import TransportError
from voicereel.client.models import (
    Health,
    Job,
    JobAccepted,
    JobList,
    Readiness,
    Speaker,
    SpeakerAccepted,
    SpeakerList,
    Usage,
)
from voicereel.client.polling import JobProgress, PollSchedule, outcome
from voicereel.client.retry import RetryPolicy
from voicereel.client.transport import (
    ByteProgress,
    ClientConfig,
    M,
    RequestFactory,
    RetryHook,
    error_code_of,
    parse_model,
    raise_for_error,
    retry_reason,
)
from voicereel.schemas import SynthesisRequest


class AsyncVoiceReelClient:
    """Asyncio client of the VoiceReel API.

    Arguments left out come from `VOICEREEL_BASE_URL`, `VOICEREEL_API_KEY` and `VOICEREEL_SIGNING_SECRET`.
    With a signing secret every request is HMAC-signed. 429 RATE_LIMITED and 503 answers and connection
    failures are retried per `retry`; every POST carries one `Idempotency-Key` across its attempts.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        signing_secret: str | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        on_retry: RetryHook | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = ClientConfig.resolve(
            base_url=base_url, api_key=api_key, signing_secret=signing_secret, timeout_s=timeout_s, retry=retry
        )
        self._factory = RequestFactory(self.config)
        self._http = httpx.AsyncClient(base_url=self.config.base_url, timeout=timeout_s, transport=transport)
        self._on_retry = on_retry
        self._sleep = sleep
        self._clock = clock

    # --- lifecycle ---------------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncVoiceReelClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- sending ---------------------------------------------------------------------------------------------

    async def _wait_before_retry(self, attempt: int, delay: float, reason: str) -> None:
        if self._on_retry is not None:
            self._on_retry(attempt + 1, delay, reason)
        await self._sleep(delay)

    async def send(self, call: Call, *, upload_progress: ByteProgress | None = None) -> httpx.Response:
        """Send `call` with retries; return the (read) 2xx response or raise the typed error."""
        idempotency_key = call.idempotency_key or (calls.new_idempotency_key() if call.needs_idempotency_key else None)
        policy = self.config.retry
        attempt = 0
        while True:
            request = self._factory.build(self._http, call, idempotency_key, upload_progress)
            try:
                response = await self._http.send(request)
                await response.aread()
            except httpx.TransportError as exc:
                delay = policy.delay_for_transport_error(attempt)
                if delay is None:
                    raise TransportError(f"{call.method} {call.path}: {type(exc).__name__}: {exc}") from exc
                await self._wait_before_retry(attempt, delay, type(exc).__name__)
            else:
                if response.is_success or response.status_code in call.answer_statuses:
                    return response
                code = error_code_of(response)
                replay = idempotency_key is not None and attempt > 0
                delay = policy.delay_for_response(attempt, response, code, replaying=replay)
                if delay is None:
                    raise_for_error(response)
                    return response  # unreachable: raise_for_error raised
                await self._wait_before_retry(attempt, delay, retry_reason(response, code))
            attempt += 1

    async def _fetch(self, call: Call, model: type[M], upload_progress: ByteProgress | None = None) -> M:
        return parse_model(model, call, await self.send(call, upload_progress=upload_progress))

    # --- speakers ------------------------------------------------------------------------------------------------

    async def create_speaker(
        self,
        name: str,
        lang: str,
        reference_audio: str | Path,
        reference_script: str,
        *,
        idempotency_key: str | None = None,
        upload_progress: ByteProgress | None = None,
    ) -> SpeakerAccepted:
        """Upload reference audio; the speaker is `pending` until its registration job (`job_id`) finishes."""
        call = calls.create_speaker(
            name=name,
            lang=lang,
            reference_audio=reference_audio,
            reference_script=reference_script,
            idempotency_key=idempotency_key,
        )
        return await self._fetch(call, SpeakerAccepted, upload_progress)

    async def list_speakers(
        self, *, limit: int | None = None, cursor: str | None = None, status: str | None = None
    ) -> SpeakerList:
        """One page of speakers, newest first; pass `page.next_cursor` as `cursor` for the next page."""
        return await self._fetch(calls.list_speakers(limit=limit, cursor=cursor, status=status), SpeakerList)

    async def iter_speakers(self, *, page_size: int = 100, status: str | None = None) -> AsyncIterator[Speaker]:
        """Every speaker, following pages."""
        cursor = None
        while True:
            page = await self.list_speakers(limit=page_size, cursor=cursor, status=status)
            for speaker in page.data:
                yield speaker
            cursor = page.next_cursor
            if cursor is None or not page.data:
                return

    async def get_speaker(self, speaker_id: str) -> Speaker:
        return await self._fetch(calls.get_speaker(speaker_id), Speaker)

    async def delete_speaker(self, speaker_id: str) -> None:
        await self.send(calls.delete_speaker(speaker_id))

    # --- synthesis and jobs ----------------------------------------------------------------------------------

    async def synthesize(
        self, request: SynthesisRequest | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> JobAccepted:
        return await self._fetch(calls.synthesize(request, idempotency_key=idempotency_key), JobAccepted)

    async def list_jobs(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        status: str | None = None,
        kind: str | None = None,
    ) -> JobList:
        """One page of jobs, newest first; pass `page.next_cursor` as `cursor` for the next page."""
        return await self._fetch(calls.list_jobs(limit=limit, cursor=cursor, status=status, kind=kind), JobList)

    async def get_job(self, job_id: str) -> Job:
        return await self._fetch(calls.get_job(job_id), Job)

    async def cancel_job(self, job_id: str) -> None:
        await self.send(calls.cancel_job(job_id))

    async def wait_for_job(
        self,
        job_id: str,
        *,
        timeout_s: float = 900.0,
        on_progress: JobProgress | None = None,
        poll_interval_s: float = 0.5,
        max_poll_interval_s: float = 5.0,
        raise_on_failure: bool = True,
    ) -> Job:
        """Poll until the job finishes. Raises `JobFailedError` (unless `raise_on_failure=False`) for a job that
        did not succeed and `JobTimeoutError` after `timeout_s` (the job keeps running)."""
        schedule = PollSchedule(job_id, timeout_s, poll_interval_s, max_poll_interval_s, self._clock)
        while True:
            job = await self.get_job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.finished:
                return outcome(job, raise_on_failure)
            await self._sleep(schedule.next_wait(job))

    # --- usage -------------------------------------------------------------------------------------------------

    async def get_usage(self, *, month: str | None = None) -> Usage:
        return await self._fetch(calls.get_usage(month=month), Usage)

    # --- operations ------------------------------------------------------------------------------------------

    async def health(self) -> Health:
        """Liveness of the gateway process (no API key needed)."""
        return await self._fetch(calls.health(), Health)

    async def readiness(self) -> Readiness:
        """Whether the gateway's database, Redis and Triton answer; a not-ready gateway is an answer, not an error."""
        return await self._fetch(calls.readiness(), Readiness)

    async def metrics(self) -> str:
        """The Prometheus exposition text of `GET /metrics`."""
        return (await self.send(calls.metrics())).text

    # --- downloads -------------------------------------------------------------------------------------------

    async def download(self, url: str, dest: str | Path, *, progress: ByteProgress | None = None) -> Path:
        """Stream `url` (an `audio_url`/`caption_url`) into `dest`; written whole or not at all."""
        policy = self.config.retry
        attempt = 0
        while True:
            target = DownloadTarget(Path(dest), progress)
            try:
                async with self._http.stream("GET", url, headers={"User-Agent": self.config.user_agent}) as response:
                    if response.is_success:
                        start_download(target, response)
                        async for chunk in response.aiter_bytes():
                            target.write(chunk)
                        return finish_download(target)
                    await response.aread()
                    code = error_code_of(response)
                    delay = policy.delay_for_response(attempt, response, code)
                    if delay is None:
                        raise_for_error(response)
                    reason = retry_reason(response, code)
            except httpx.TransportError as exc:
                target.discard()
                delay = policy.delay_for_transport_error(attempt)
                if delay is None:
                    raise TransportError(f"download {url}: {type(exc).__name__}: {exc}") from exc
                reason = type(exc).__name__
            finally:
                target.close()
            assert delay is not None
            await self._wait_before_retry(attempt, delay, reason)
            attempt += 1

    async def download_audio(self, job: Job | str, dest: str | Path, *, progress: ByteProgress | None = None) -> Path:
        """Download a finished job's audio, fetching the job first for a fresh (unexpired) URL."""
        fresh = await self.get_job(job if isinstance(job, str) else job.id)
        return await self.download(job_artifact_url(fresh, "audio"), dest, progress=progress)

    async def download_captions(
        self, job: Job | str, dest: str | Path, *, progress: ByteProgress | None = None
    ) -> Path:
        fresh = await self.get_job(job if isinstance(job, str) else job.id)
        return await self.download(job_artifact_url(fresh, "captions"), dest, progress=progress)
