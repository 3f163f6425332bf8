"""The blocking SDK client against the real gateway (uvicorn on a free port, real Redis and PostgreSQL)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from gateway.auth import IssuedKey
from voicereel.client import (
    AuthError,
    InsufficientReferenceError,
    InvalidInputError,
    InvalidRequestError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitedError,
    RetryPolicy,
    VoiceReelClient,
)

if TYPE_CHECKING:
    from tests.client.live_gateway import Keys, LiveServer


class LoseFirstPostResponse(httpx.BaseTransport):
    """The first POST reaches the real gateway and is handled, but its response is lost on the way back (as when
    a read times out or a proxy drops the connection). Every later request goes through untouched."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []
        self.responses: list[httpx.Response] = []
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.requests.append(request)
        if request.method == "POST" and self.lost == 0:
            response.read()
            response.close()
            self.lost += 1
            raise httpx.ReadTimeout("response lost after the gateway handled the request", request=request)
        self.responses.append(response)
        return response

    def close(self) -> None:
        self.inner.close()


def no_sleep(_: float) -> None:
    return None


# --- speakers --------------------------------------------------------------------------------------------------


def test_speaker_upload_list_show_delete(client: VoiceReelClient, reference_wav: tuple[Path, str]) -> None:
    path, transcript = reference_wav
    progress: list[tuple[int, int | None]] = []
    accepted = client.create_speaker(
        "Narrator", "en", path, transcript, upload_progress=lambda d, t: progress.append((d, t))
    )
    assert accepted.speaker_id.startswith("spk_") and accepted.job_id.startswith("job_")
    total = progress[-1][1]
    assert total is not None and total > path.stat().st_size  # multipart body around the file
    assert progress[0] == (0, total) and progress[-1] == (total, total) and len(progress) > 2

    speaker = client.get_speaker(accepted.speaker_id)
    assert (speaker.name, speaker.lang, speaker.status) == ("Narrator", "en", "pending")
    assert speaker.duration_s is not None and speaker.duration_s >= 30
    job = client.get_job(accepted.job_id)
    assert job.kind == "register_speaker" and job.speaker_id == accepted.speaker_id

    page = client.list_speakers(limit=10)
    assert page.total == 1 and [s.id for s in page.data] == [accepted.speaker_id]
    assert [s.id for s in client.iter_speakers(page_size=1)] == [accepted.speaker_id]

    client.delete_speaker(accepted.speaker_id)
    with pytest.raises(NotFoundError) as err:
        client.get_speaker(accepted.speaker_id)
    assert err.value.code == "NOT_FOUND" and err.value.status == 404
    assert err.value.request_id and err.value.request_id.startswith("req_")


def test_pagination_follows_cursors(client: VoiceReelClient, keys: Keys, api_key: IssuedKey) -> None:
    made = {keys.add_ready_speaker(api_key, name=f"voice {i}") for i in range(5)}
    first = client.list_speakers(limit=2)
    assert first.total == 5 and len(first.data) == 2 and first.next_cursor is not None
    second = client.list_speakers(limit=2, cursor=first.next_cursor)
    assert not {s.id for s in first.data} & {s.id for s in second.data}
    assert {s.id for s in client.iter_speakers(page_size=2)} == made
    assert {s.id for s in client.iter_speakers(status="pending")} == set()


def test_gateway_refusals_of_uploads_are_typed(
    client: VoiceReelClient, tmp_path: Path, reference_wav: tuple[Path, str]
) -> None:
    import numpy as np
    import soundfile as sf

    short = tmp_path / "short.wav"
    sf.write(short, 0.1 * np.sin(np.linspace(0, 2000, 16000 * 2)).astype(np.float32), 16000)
    with pytest.raises(InsufficientReferenceError) as err:
        client.create_speaker("Short", "en", short, "hi")
    assert err.value.status == 422
    path, transcript = reference_wav
    with pytest.raises(InvalidInputError, match="not supported"):
        client.create_speaker("Klingon", "tl", path, transcript)
    # looks like WAV to the client's sniffing, is not decodable audio for the gateway
    fake = tmp_path / "fake.wav"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00WAVE" + b"\x00" * 4000)
    with pytest.raises(InvalidInputError, match="could not be decoded") as undecodable:
        client.create_speaker("Broken", "en", fake, "hi")
    assert undecodable.value.status == 400


# --- synthesis, jobs, usage ------------------------------------------------------------------------------------


def test_synthesize_list_show_cancel(client: VoiceReelClient, keys: Keys, api_key: IssuedKey) -> None:
    alice = keys.add_ready_speaker(api_key, "Alice")
    bob = keys.add_ready_speaker(api_key, "Bob")
    request = {
        "script": [{"speaker_id": alice, "text": "Did you hear that?"}, {"speaker_id": bob, "text": "Hear what?"}],
        "output_format": "mp3",
        "caption_format": "srt",
    }
    accepted = client.synthesize(request)
    assert accepted.status == "queued"
    job = client.get_job(accepted.job_id)
    assert (job.kind, job.status, job.output_format, job.caption_format) == ("synthesize", "queued", "mp3", "srt")
    assert job.characters == len("Did you hear that?") + len("Hear what?")
    page = client.list_jobs(kind="synthesize")
    assert [j.id for j in page.data] == [accepted.job_id]

    client.cancel_job(accepted.job_id)
    seen: list[str] = []
    with pytest.raises(JobFailedError) as err:
        client.wait_for_job(accepted.job_id, timeout_s=10, on_progress=lambda j: seen.append(j.status))
    assert err.value.status == "canceled" and seen == ["canceled"]
    final = client.wait_for_job(accepted.job_id, timeout_s=10, raise_on_failure=False)
    assert final.status == "canceled"
    assert client.list_jobs(status="canceled").total == 1


def test_wait_for_job_times_out_and_reports_progress(client: VoiceReelClient, keys: Keys, api_key: IssuedKey) -> None:
    """No worker drains this queue: the job stays queued and the wait gives up on time."""
    speaker = keys.add_ready_speaker(api_key)
    job_id = client.synthesize({"script": [{"speaker_id": speaker, "text": "Waiting."}]}).job_id
    polls: list[tuple[str, float]] = []
    started = time.monotonic()
    with pytest.raises(JobTimeoutError) as err:
        client.wait_for_job(
            job_id, timeout_s=1.5, poll_interval_s=0.2, on_progress=lambda j: polls.append((j.status, j.progress))
        )
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 5
    assert err.value.last_status == "queued" and err.value.job_id == job_id
    assert len(polls) >= 3 and all(p == ("queued", 0.0) for p in polls)


def test_unknown_speaker_in_script_is_not_found(client: VoiceReelClient, keys: Keys) -> None:
    other_project_speaker = keys.add_ready_speaker(keys.new_key())
    with pytest.raises(NotFoundError):
        client.synthesize({"script": [{"speaker_id": other_project_speaker, "text": "Not mine."}]})


def test_usage(client: VoiceReelClient, keys: Keys, api_key: IssuedKey) -> None:
    speaker = keys.add_ready_speaker(api_key)
    client.synthesize({"script": [{"speaker_id": speaker, "text": "Twelve chars"}]})
    usage = client.get_usage()
    assert usage.project_id == api_key.project_id
    assert usage.quota.api_key_id == api_key.key_id and usage.quota.used_chars == 12
    assert client.get_usage(month="2001-01").months == []


# --- idempotency -----------------------------------------------------------------------------------------------


def test_lost_response_is_retried_without_a_second_job(server: LiveServer, keys: Keys, api_key: IssuedKey) -> None:
    speaker = keys.add_ready_speaker(api_key)
    transport = LoseFirstPostResponse()
    with VoiceReelClient(server.base_url, api_key.key, transport=transport, sleep=no_sleep) as client:
        accepted = client.synthesize({"script": [{"speaker_id": speaker, "text": "Only once, please."}]})
        posts = [r for r in transport.requests if r.method == "POST"]
        assert len(posts) == 2 and transport.lost == 1
        assert posts[0].headers["Idempotency-Key"] == posts[1].headers["Idempotency-Key"]
        assert transport.responses[0].headers.get("Idempotent-Replayed") == "true"
        jobs = client.list_jobs()
        assert jobs.total == 1 and jobs.data[0].id == accepted.job_id
        # The quota was charged once, too.
        assert client.get_usage().quota.used_chars == len("Only once, please.")


def test_lost_upload_response_is_retried_without_a_second_speaker(
    server: LiveServer, api_key: IssuedKey, reference_wav: tuple[Path, str]
) -> None:
    path, transcript = reference_wav
    transport = LoseFirstPostResponse()
    with VoiceReelClient(server.base_url, api_key.key, transport=transport, sleep=no_sleep) as client:
        accepted = client.create_speaker("Once", "en", path, transcript)
        assert transport.lost == 1
        speakers = client.list_speakers()
        assert speakers.total == 1 and speakers.data[0].id == accepted.speaker_id
        assert client.list_jobs(kind="register_speaker").total == 1


def test_same_key_with_another_body_is_refused(client: VoiceReelClient, keys: Keys, api_key: IssuedKey) -> None:
    speaker = keys.add_ready_speaker(api_key)
    first = client.synthesize({"script": [{"speaker_id": speaker, "text": "One."}]}, idempotency_key="fixed-key-1")
    again = client.synthesize({"script": [{"speaker_id": speaker, "text": "One."}]}, idempotency_key="fixed-key-1")
    assert again.job_id == first.job_id
    with pytest.raises(InvalidInputError) as err:
        client.synthesize({"script": [{"speaker_id": speaker, "text": "Two."}]}, idempotency_key="fixed-key-1")
    assert err.value.code == "UNPROCESSABLE"


# --- authentication and signing --------------------------------------------------------------------------------


def test_bad_key_and_missing_scope(server: LiveServer, keys: Keys) -> None:
    with VoiceReelClient(server.base_url, "vr_" + "x" * 43) as client, pytest.raises(AuthError) as err:
        client.list_speakers()
    assert err.value.status == 401 and err.value.request_id
    read_only = keys.new_key(scopes=["speakers:read"])
    with VoiceReelClient(server.base_url, read_only.key) as client:
        client.list_speakers()
        with pytest.raises(PermissionDeniedError) as denied:
            client.list_jobs()
    assert denied.value.code == "FORBIDDEN" and denied.value.details == {"scope": "jobs:read"}


def test_signing_required_key(server: LiveServer, keys: Keys, reference_wav: tuple[Path, str]) -> None:
    key = keys.new_key(signing_required=True)
    speaker = keys.add_ready_speaker(key)
    with VoiceReelClient(server.base_url, key.key) as unsigned, pytest.raises(AuthError, match="must be signed"):
        unsigned.list_speakers()
    wrong_secret = "vrs_" + "0" * 64
    with (
        VoiceReelClient(server.base_url, key.key, signing_secret=wrong_secret) as wrong,
        pytest.raises(AuthError, match="does not match"),
    ):
        wrong.list_speakers()
    path, transcript = reference_wav
    with VoiceReelClient(server.base_url, key.key, signing_secret=key.signing_secret) as client:
        # query string, JSON body, multipart body, DELETE: all signed and accepted
        assert client.list_speakers(limit=5, status="ready").total == 1
        job_id = client.synthesize({"script": [{"speaker_id": speaker, "text": "Signed."}]}).job_id
        registered = client.create_speaker("Signed voice", "en", path, transcript)
        client.delete_speaker(registered.speaker_id)
        # identical requests in the same second (polling) are all accepted: no replay false positives
        for _ in range(5):
            assert client.get_job(job_id).status == "queued"
        client.cancel_job(job_id)


# --- limits ----------------------------------------------------------------------------------------------------


def test_quota_exceeded_is_raised_without_retrying(server: LiveServer, keys: Keys) -> None:
    key = keys.new_key(monthly_quota_chars=10)
    speaker = keys.add_ready_speaker(key)
    retries: list[object] = []
    with (
        VoiceReelClient(server.base_url, key.key, on_retry=lambda *a: retries.append(a)) as client,
        pytest.raises(QuotaExceededError) as err,
    ):
        client.synthesize({"script": [{"speaker_id": speaker, "text": "Eleven char"}]})
    assert err.value.status == 429 and err.value.details["quota_chars"] == 10
    assert retries == []


def test_rate_limited_error_carries_the_gateways_retry_after(server: LiveServer, keys: Keys) -> None:
    key = keys.new_key(rate_limit_per_min=2)
    with VoiceReelClient(server.base_url, key.key, retry=RetryPolicy(max_retries=0)) as client:
        client.list_speakers()
        client.list_speakers()
        with pytest.raises(RateLimitedError) as err:
            client.list_speakers()
    assert err.value.retry_after is not None and err.value.retry_after >= 1
    assert err.value.retry_after == float(err.value.headers["retry-after"])


@pytest.mark.slow
def test_rate_limited_request_waits_retry_after_then_succeeds(server: LiveServer, keys: Keys) -> None:
    """Exhaust a 60/min key, then one more call: the SDK waits the gateway's Retry-After (real time) and the
    retry, with the same Idempotency-Key, creates the job. Takes about a minute: the gateway's window is 60 s."""
    key = keys.new_key(rate_limit_per_min=60)
    speaker = keys.add_ready_speaker(key)
    with httpx.Client(base_url=server.base_url, headers={"X-VR-APIKEY": key.key}) as raw:
        while raw.get("/v1/speakers").status_code != 429:
            pass
    waits: list[tuple[int, float, str]] = []
    with VoiceReelClient(server.base_url, key.key, on_retry=lambda n, d, why: waits.append((n, d, why))) as client:
        started = time.monotonic()
        accepted = client.synthesize({"script": [{"speaker_id": speaker, "text": "After the wait."}]})
        elapsed = time.monotonic() - started
        assert waits and all(why == "429 RATE_LIMITED" for _, _, why in waits)
        assert elapsed >= sum(d for _, d, _ in waits) - 0.5
        assert client.list_jobs().total == 1 and client.get_job(accepted.job_id).status == "queued"


# --- downloads -------------------------------------------------------------------------------------------------


def test_download_streams_a_signed_url_to_disk(client: VoiceReelClient, server: LiveServer, tmp_path: Path) -> None:
    from voicereel.storage import make_storage

    storage = make_storage(server.settings)
    data = bytes(range(256)) * 4096  # 1 MiB
    key = "jobs/prj_sdktest/job_sdktest/audio.wav"
    storage.put_bytes(key, data, "audio/wav")
    progress: list[tuple[int, int | None]] = []
    dest = tmp_path / "out" / "audio.wav"
    assert client.download(storage.download_url(key), dest, progress=lambda d, t: progress.append((d, t))) == dest
    assert dest.read_bytes() == data
    assert progress[-1] == (len(data), len(data))
    assert not dest.with_name("audio.wav.part").exists()

    # A tampered URL is refused by the gateway; nothing is left on disk.
    bad = tmp_path / "bad.wav"
    with pytest.raises(PermissionDeniedError, match="invalid or expired"):
        client.download(storage.download_url(key).replace("sig=", "sig=00"), bad)
    assert not bad.exists() and not bad.with_name("bad.wav.part").exists()


def test_download_of_unfinished_job_is_refused_locally(
    client: VoiceReelClient, keys: Keys, api_key: IssuedKey, tmp_path: Path
) -> None:
    speaker = keys.add_ready_speaker(api_key)
    job_id = client.synthesize({"script": [{"speaker_id": speaker, "text": "Not yet."}]}).job_id
    with pytest.raises(InvalidRequestError, match="queued; only a succeeded job"):
        client.download_audio(job_id, tmp_path / "x.wav")


# --- operations ------------------------------------------------------------------------------------------------


def test_health_readiness_metrics(server: LiveServer) -> None:
    """No API key needed. Triton is not running for these tests, so the gateway reports itself not ready (503),
    which the SDK returns as an answer instead of raising."""
    with VoiceReelClient(server.base_url, api_key=None) as client:
        assert client.health().status == "ok"
        ready = client.readiness()
        assert not ready.ready and ready.status == "not_ready"
        assert ready.checks["database"].ok and ready.checks["redis"].ok and not ready.checks["triton"].ok
        assert "# HELP" in client.metrics()
