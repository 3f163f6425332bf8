"""The asyncio SDK client against the real gateway app, in-process through httpx.ASGITransport (real Redis and
PostgreSQL behind it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from gateway.auth import IssuedKey
from voicereel.client import AsyncVoiceReelClient, AuthError, JobFailedError, JobTimeoutError, NotFoundError
from voicereel.settings import Settings

if TYPE_CHECKING:
    from tests.client.live_gateway import Keys

AsgiGateway = Callable[[Settings], AbstractAsyncContextManager[httpx.ASGITransport]]


class LoseFirstPostResponse(httpx.AsyncBaseTransport):
    """Async twin of the sync test's transport: the first POST is handled by the app, its response is lost."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.requests.append(request)
        if request.method == "POST" and self.lost == 0:
            await response.aread()
            self.lost += 1
            raise httpx.ReadTimeout("response lost", request=request)
        return response


def run_with_client(
    asgi_gateway: AsgiGateway,
    settings: Settings,
    key: IssuedKey,
    body: Callable[[AsyncVoiceReelClient], Awaitable[None]],
    *,
    signing_secret: str | None = None,
    wrap: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport] | None = None,
) -> None:
    async def scenario() -> None:
        async with asgi_gateway(settings) as transport:
            chosen = wrap(transport) if wrap else transport
            async with AsyncVoiceReelClient(
                settings.public_base_url, key.key, signing_secret=signing_secret, transport=chosen
            ) as client:
                await body(client)

    asyncio.run(scenario())


def test_signed_calls_over_every_body_kind(
    asgi_gateway: AsgiGateway, asgi_settings: Settings, asgi_keys: Keys, reference_wav: tuple[Path, str]
) -> None:
    key = asgi_keys.new_key(signing_required=True)
    speaker = asgi_keys.add_ready_speaker(key, "Alice")
    path, transcript = reference_wav

    async def body(client: AsyncVoiceReelClient) -> None:
        uploaded: list[int] = []
        accepted = await client.create_speaker(
            "Bob", "en", path, transcript, upload_progress=lambda done, _: uploaded.append(done)
        )
        assert uploaded[-1] > path.stat().st_size
        names = sorted([s.name async for s in client.iter_speakers(page_size=1)])
        assert names == ["Alice", "Bob"]
        job = await client.synthesize({"script": [{"speaker_id": speaker, "text": "Signed and async."}]})
        assert (await client.get_job(job.job_id)).status == "queued"
        assert (await client.list_jobs(kind="synthesize", limit=5)).total == 1
        await client.cancel_job(job.job_id)
        with pytest.raises(JobFailedError, match="canceled"):
            await client.wait_for_job(job.job_id, timeout_s=5)
        await client.delete_speaker(accepted.speaker_id)
        with pytest.raises(NotFoundError):
            await client.get_speaker(accepted.speaker_id)
        usage = await client.get_usage()
        assert usage.quota.used_chars == 0  # the canceled job gave its characters back

    run_with_client(asgi_gateway, asgi_settings, key, body, signing_secret=key.signing_secret)


def test_unsigned_call_with_signing_required_key_is_auth_error(
    asgi_gateway: AsgiGateway, asgi_settings: Settings, asgi_keys: Keys
) -> None:
    key = asgi_keys.new_key(signing_required=True)

    async def body(client: AsyncVoiceReelClient) -> None:
        with pytest.raises(AuthError) as err:
            await client.list_jobs()
        assert err.value.code == "UNAUTHORIZED" and err.value.request_id

    run_with_client(asgi_gateway, asgi_settings, key, body)


def test_lost_response_does_not_create_a_second_job(
    asgi_gateway: AsgiGateway, asgi_settings: Settings, asgi_keys: Keys
) -> None:
    key = asgi_keys.new_key()
    speaker = asgi_keys.add_ready_speaker(key)
    wrappers: list[LoseFirstPostResponse] = []

    def wrap(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        wrappers.append(LoseFirstPostResponse(inner))
        return wrappers[-1]

    async def body(client: AsyncVoiceReelClient) -> None:
        accepted = await client.synthesize({"script": [{"speaker_id": speaker, "text": "Exactly one job."}]})
        page = await client.list_jobs()
        assert page.total == 1 and page.data[0].id == accepted.job_id

    run_with_client(asgi_gateway, asgi_settings, key, body, wrap=wrap)
    posts = [r for r in wrappers[0].requests if r.method == "POST"]
    assert len(posts) == 2 and len({r.headers["Idempotency-Key"] for r in posts}) == 1


def test_wait_times_out_with_progress_callbacks(
    asgi_gateway: AsgiGateway, asgi_settings: Settings, asgi_keys: Keys
) -> None:
    key = asgi_keys.new_key()
    speaker = asgi_keys.add_ready_speaker(key)
    seen: list[str] = []

    async def body(client: AsyncVoiceReelClient) -> None:
        job_id = (await client.synthesize({"script": [{"speaker_id": speaker, "text": "Nobody works."}]})).job_id
        with pytest.raises(JobTimeoutError) as err:
            await client.wait_for_job(
                job_id, timeout_s=1.0, poll_interval_s=0.2, on_progress=lambda j: seen.append(j.status)
            )
        assert err.value.last_status == "queued"

    run_with_client(asgi_gateway, asgi_settings, key, body)
    assert len(seen) >= 3 and set(seen) == {"queued"}


def test_download_through_the_app(
    asgi_gateway: AsgiGateway, asgi_settings: Settings, asgi_keys: Keys, tmp_path: Path
) -> None:
    from voicereel.storage import make_storage

    storage = make_storage(asgi_settings)
    data = b"ID3" + bytes(300_000)
    storage.put_bytes("jobs/prj_async/job_async/audio.mp3", data, "audio/mpeg")
    url = storage.download_url("jobs/prj_async/job_async/audio.mp3")
    assert url.startswith(asgi_settings.public_base_url)
    progress: list[int] = []

    async def body(client: AsyncVoiceReelClient) -> None:
        await client.download(url, tmp_path / "a.mp3", progress=lambda done, _: progress.append(done))

    run_with_client(asgi_gateway, asgi_settings, asgi_keys.new_key(), body)
    assert (tmp_path / "a.mp3").read_bytes() == data and progress[-1] == len(data)


def test_two_processes_sending_one_signed_request_in_one_second_both_get_through(
    asgi_gateway: AsgiGateway, asgi_settings: Settings, asgi_keys: Keys
) -> None:
    """Two clients (as two processes would: separate signers) with one key and one frozen second sign the very
    same GET; the gateway refuses the second as a replay and that client re-signs with a later timestamp."""
    key = asgi_keys.new_key(signing_required=True)
    second = int(time.time())
    retries: list[str] = []

    async def scenario() -> None:
        async with asgi_gateway(asgi_settings) as transport:
            clients = [
                AsyncVoiceReelClient(
                    asgi_settings.public_base_url,
                    key.key,
                    signing_secret=key.signing_secret,
                    transport=transport,
                    on_retry=lambda _n, _delay, reason: retries.append(reason),
                )
                for _ in range(2)
            ]
            for client in clients:
                assert client._factory.signer is not None
                client._factory.signer._clock = lambda: second  # both sign inside the same second
            try:
                pages = [await client.list_jobs(limit=3) for client in clients]
            finally:
                for client in clients:
                    await client.aclose()
            assert [page.total for page in pages] == [0, 0]

    asyncio.run(scenario())
    assert len(retries) == 1 and "401" in retries[0]
