"""`VoiceReelClient`: the blocking client (httpx.Client). `AsyncVoiceReelClient` mirrors it method for method."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
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


class VoiceReelClient:
    """Blocking client of the VoiceReel API.

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
        transport: httpx.BaseTransport | None = None,
        on_retry: RetryHook | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = ClientConfig.resolve(
            base_url=base_url, api_key=api_key, signing_secret=signing_secret, timeout_s=timeout_s, retry=retry
        )
        self._factory = RequestFactory(self.config)
        self._http = httpx.Client(base_url=self.config.base_url, timeout=timeout_s, transport=transport)
        self._on_retry = on_retry
        self._sleep = sleep
        self._clock = clock

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VoiceReelClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- sending ---------------------------------------------------------------------------------------------

    def _wait_before_retry(self, attempt: int, delay: float, reason: str) -> None:
        if self._on_retry is not None:
            self._on_retry(attempt + 1, delay, reason)
        self._sleep(delay)

    def send(self, call: Call, *, upload_progress: ByteProgress | None = None) -> httpx.Response:
        """Send `call` with retries; return the (read) 2xx response or raise the typed error."""
        idempotency_key = call.idempotency_key or (calls.new_idempotency_key() if call.needs_idempotency_key else None)
        policy = self.config.retry
        attempt = 0
        while True:
            request = self._factory.build(self._http, call, idempotency_key, upload_progress)
            try:
                response = self._http.send(request)
                response.read()
            except httpx.TransportError as exc:
                delay = policy.delay_for_transport_error(attempt)
                if delay is None:
                    raise TransportError(f"{call.method} {call.path}: {type(exc).__name__}: {exc}") from exc
                self._wait_before_retry(attempt, delay, type(exc).__name__)
            else:
                if response.is_success or response.status_code in call.answer_statuses:
                    return response
                code = error_code_of(response)
                replay = idempotency_key is not None and attempt > 0
                delay = policy.delay_for_response(attempt, response, code, replaying=replay)
                if delay is None:
                    raise_for_error(response)
                    return response  # unreachable: raise_for_error raised
                self._wait_before_retry(attempt, delay, retry_reason(response, code))
            attempt += 1

    def _fetch(self, call: Call, model: type[M], upload_progress: ByteProgress | None = None) -> M:
        return parse_model(model, call, self.send(call, upload_progress=upload_progress))

    # --- speakers ------------------------------------------------------------------------------------------------

    def create_speaker(
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
        return self._fetch(call, SpeakerAccepted, upload_progress)

    def list_speakers(
        self, *, limit: int | None = None, cursor: str | None = None, status: str | None = None
    ) -> SpeakerList:
        """One page of speakers, newest first; pass `page.next_cursor` as `cursor` for the next page."""
        return self._fetch(calls.list_speakers(limit=limit, cursor=cursor, status=status), SpeakerList)

    def iter_speakers(self, *, page_size: int = 100, status: str | None = None) -> Iterator[Speaker]:
        """Every speaker, following pages."""
        cursor = None
        while True:
            page = self.list_speakers(limit=page_size, cursor=cursor, status=status)
            yield from page.data
            cursor = page.next_cursor
            if cursor is None or not page.data:
                return

    def get_speaker(self, speaker_id: str) -> Speaker:
        return self._fetch(calls.get_speaker(speaker_id), Speaker)

    def delete_speaker(self, speaker_id: str) -> None:
        self.send(calls.delete_speaker(speaker_id))

    # --- synthesis and jobs ----------------------------------------------------------------------------------

    def synthesize(
        self, request: SynthesisRequest | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> JobAccepted:
        return self._fetch(calls.synthesize(request, idempotency_key=idempotency_key), JobAccepted)

    def list_jobs(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        status: str | None = None,
        kind: str | None = None,
    ) -> JobList:
        """One page of jobs, newest first; pass `page.next_cursor` as `cursor` for the next page."""
        return self._fetch(calls.list_jobs(limit=limit, cursor=cursor, status=status, kind=kind), JobList)

    def get_job(self, job_id: str) -> Job:
        return self._fetch(calls.get_job(job_id), Job)

    def cancel_job(self, job_id: str) -> None:
        self.send(calls.cancel_job(job_id))

    def wait_for_job(
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
            job = self.get_job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.finished:
                return outcome(job, raise_on_failure)
            self._sleep(schedule.next_wait(job))

    # --- usage -------------------------------------------------------------------------------------------------

    def get_usage(self, *, month: str | None = None) -> Usage:
        return self._fetch(calls.get_usage(month=month), Usage)

    # --- operations ------------------------------------------------------------------------------------------

    def health(self) -> Health:
        """Liveness of the gateway process (no API key needed)."""
        return self._fetch(calls.health(), Health)

    def readiness(self) -> Readiness:
        """Whether the gateway's database, Redis and Triton answer; a not-ready gateway is an answer, not an error."""
        return self._fetch(calls.readiness(), Readiness)

    def metrics(self) -> str:
        """The Prometheus exposition text of `GET /metrics`."""
        return (self.send(calls.metrics())).text

    # --- downloads -------------------------------------------------------------------------------------------

    def download(self, url: str, dest: str | Path, *, progress: ByteProgress | None = None) -> Path:
        """Stream `url` (an `audio_url`/`caption_url`) into `dest`; written whole or not at all."""
        policy = self.config.retry
        attempt = 0
        while True:
            target = DownloadTarget(Path(dest), progress)
            try:
                with self._http.stream("GET", url, headers={"User-Agent": self.config.user_agent}) as response:
                    if response.is_success:
                        start_download(target, response)
                        for chunk in response.iter_bytes():
                            target.write(chunk)
                        return finish_download(target)
                    response.read()
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
            self._wait_before_retry(attempt, delay, reason)
            attempt += 1

    def download_audio(self, job: Job | str, dest: str | Path, *, progress: ByteProgress | None = None) -> Path:
        """Download a finished job's audio, fetching the job first for a fresh (unexpired) URL."""
        fresh = self.get_job(job if isinstance(job, str) else job.id)
        return self.download(job_artifact_url(fresh, "audio"), dest, progress=progress)

    def download_captions(self, job: Job | str, dest: str | Path, *, progress: ByteProgress | None = None) -> Path:
        fresh = self.get_job(job if isinstance(job, str) else job.id)
        return self.download(job_artifact_url(fresh, "captions"), dest, progress=progress)
