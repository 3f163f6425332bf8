"""Retry logic of the SDK, pure client behaviour: Retry-After parsing, backoff bounds, which answers are retried,
how long the client sleeps, and that one POST keeps one Idempotency-Key (with a fresh signature) across attempts.
These use httpx.MockTransport on purpose: they test timing decisions, not the gateway."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from voicereel.client import AsyncVoiceReelClient, RateLimitedError, RetryPolicy, VoiceReelClient
from voicereel.client.errors import EngineUnavailableError, QuotaExceededError, TransportError
from voicereel.client.retry import parse_retry_after

SPK = "spk_01jd0000000000000000000000"
JOB = "job_01jd0000000000000000000000"
NOW_ISO = "2025-01-01T00:00:00Z"
JOB_BODY = {"job_id": JOB, "status": "queued"}
SYNTH = {"script": [{"speaker_id": SPK, "text": "Hello."}]}


def envelope(code: str, status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": code.lower(), "details": {}, "request_id": "req_test"}}
    return httpx.Response(status, json=body, headers=headers)


class Script:
    """A MockTransport handler answering from a list, recording every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def make_client(script: Script, sleeps: list[float], **kwargs: object) -> VoiceReelClient:
    return VoiceReelClient(
        "http://gw.test",
        "vr_" + "k" * 43,
        transport=httpx.MockTransport(script),
        sleep=sleeps.append,
        **kwargs,  # type: ignore[arg-type]
    )


# --- Retry-After parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), (" 0 ", 0.0), ("1.5", 1.5), ("-4", 0.0), ("", None), (None, None), ("soon", None), ("nan", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=7), usegmt=True), now=now) == 7.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=7), usegmt=True), now=now) == 0.0


def test_backoff_is_capped_exponential_with_jitter() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=4.0)
    rng = random.Random(1)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (8, 4.0)]:
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert min(delays) >= ceiling / 2
        assert max(delays) <= ceiling


# --- what is retried, and for how long the client waits ----------------------------------------------------------


def test_429_waits_retry_after_then_succeeds_with_same_idempotency_key() -> None:
    script = Script(
        envelope("RATE_LIMITED", 429, {"Retry-After": "2"}),
        envelope("RATE_LIMITED", 429, {"Retry-After": "1"}),
        httpx.Response(202, json=JOB_BODY),
    )
    sleeps: list[float] = []
    with make_client(script, sleeps, signing_secret="vrs_test") as client:
        accepted = client.synthesize(SYNTH)
    assert accepted.job_id == JOB
    assert sleeps == [2.0, 1.0]
    keys = {r.headers["Idempotency-Key"] for r in script.requests}
    assert len(keys) == 1 and len(keys.pop()) == 32
    # each attempt is signed afresh (the gateway refuses a signature it has seen), over the same body
    signatures = {r.headers["X-VR-Signature"] for r in script.requests}
    assert len(signatures) == 3
    assert {r.content for r in script.requests} == {json.dumps(SYNTH, separators=(",", ":")).encode()}


def test_two_posts_get_two_idempotency_keys() -> None:
    script = Script(httpx.Response(202, json=JOB_BODY), httpx.Response(202, json=JOB_BODY))
    with make_client(script, []) as client:
        client.synthesize(SYNTH)
        client.synthesize(SYNTH)
    assert script.requests[0].headers["Idempotency-Key"] != script.requests[1].headers["Idempotency-Key"]


def test_explicit_idempotency_key_is_sent() -> None:
    script = Script(httpx.Response(202, json=JOB_BODY))
    with make_client(script, []) as client:
        client.synthesize(SYNTH, idempotency_key="my-key-1")
    assert script.requests[0].headers["Idempotency-Key"] == "my-key-1"


def test_gets_carry_no_idempotency_key() -> None:
    script = Script(envelope("NOT_FOUND", 404))
    with make_client(script, []) as client, pytest.raises(Exception, match="NOT_FOUND"):
        client.get_job(JOB)
    assert "Idempotency-Key" not in script.requests[0].headers


def test_503_without_retry_after_backs_off() -> None:
    script = Script(
        envelope("ENGINE_UNAVAILABLE", 503), envelope("ENGINE_UNAVAILABLE", 503), httpx.Response(202, json=JOB_BODY)
    )
    sleeps: list[float] = []
    policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=10.0)
    with make_client(script, sleeps, retry=policy) as client:
        client.synthesize(SYNTH)
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


def test_gives_up_after_max_retries_with_typed_error() -> None:
    script = Script(*[envelope("RATE_LIMITED", 429, {"Retry-After": "1"}) for _ in range(3)])
    sleeps: list[float] = []
    with (
        make_client(script, sleeps, retry=RetryPolicy(max_retries=2)) as client,
        pytest.raises(RateLimitedError) as err,
    ):
        client.synthesize(SYNTH)
    assert sleeps == [1.0, 1.0]
    assert err.value.retry_after == 1.0
    assert err.value.code == "RATE_LIMITED" and err.value.request_id == "req_test" and err.value.status == 429


def test_retry_after_longer_than_the_cap_is_raised_at_once() -> None:
    script = Script(envelope("RATE_LIMITED", 429, {"Retry-After": "3600"}))
    sleeps: list[float] = []
    with (
        make_client(script, sleeps, retry=RetryPolicy(max_retry_after_s=60)) as client,
        pytest.raises(RateLimitedError),
    ):
        client.synthesize(SYNTH)
    assert sleeps == []


def test_quota_exceeded_is_not_retried() -> None:
    script = Script(envelope("QUOTA_EXCEEDED", 429, {"Retry-After": "1"}))
    sleeps: list[float] = []
    with make_client(script, sleeps) as client, pytest.raises(QuotaExceededError):
        client.synthesize(SYNTH)
    assert sleeps == [] and len(script.requests) == 1


def test_409_is_retried_only_for_a_replayed_post() -> None:
    # First attempt times out on the read; the retry finds the first still in flight (409), then gets the
    # stored answer. The same key is used throughout.
    script = Script(
        httpx.ReadTimeout("slow"),
        envelope("CONFLICT", 409),
        httpx.Response(202, json=JOB_BODY, headers={"Idempotent-Replayed": "true"}),
    )
    sleeps: list[float] = []
    with make_client(script, sleeps) as client:
        assert client.synthesize(SYNTH).job_id == JOB
    assert len(sleeps) == 2
    assert len({r.headers["Idempotency-Key"] for r in script.requests}) == 1
    # A 409 to a first attempt is a real conflict.
    script = Script(envelope("CONFLICT", 409))
    with make_client(script, []) as client, pytest.raises(Exception, match="CONFLICT"):
        client.synthesize(SYNTH)


def test_a_replayed_signature_is_signed_afresh_and_sent_again() -> None:
    """Two processes with one key sent the identical request in the same second: the gateway refused ours as a
    replay without running it, so it goes again at once with a new signature (same Idempotency-Key)."""
    replayed = httpx.Response(
        401,
        json={
            "error": {
                "code": "UNAUTHORIZED",
                "message": "signature was already used (replay)",
                "details": {"signature": "replayed"},
                "request_id": "req_test",
            }
        },
    )
    script = Script(replayed, httpx.Response(202, json=JOB_BODY))
    sleeps: list[float] = []
    with make_client(script, sleeps, signing_secret="s" * 32) as client:
        assert client.synthesize(SYNTH).job_id == JOB
    assert sleeps == [0.0] and len(script.requests) == 2
    assert len({r.headers["X-VR-Signature"] for r in script.requests}) == 2
    assert len({r.headers["Idempotency-Key"] for r in script.requests}) == 1
    # Any other 401 is final.
    script = Script(envelope("UNAUTHORIZED", 401))
    with make_client(script, sleeps, signing_secret="s" * 32) as client, pytest.raises(Exception, match="UNAUTH"):
        client.synthesize(SYNTH)
    assert len(script.requests) == 1


def test_connection_errors_are_retried_then_reported() -> None:
    script = Script(*[httpx.ConnectError("refused") for _ in range(3)])
    sleeps: list[float] = []
    with make_client(script, sleeps, retry=RetryPolicy(max_retries=2)) as client, pytest.raises(TransportError):
        client.get_usage()
    assert len(sleeps) == 2


def test_on_retry_hook_sees_each_retry() -> None:
    seen: list[tuple[int, float, str]] = []
    script = Script(envelope("ENGINE_UNAVAILABLE", 503, {"Retry-After": "4"}), httpx.Response(202, json=JOB_BODY))
    with make_client(script, [], on_retry=lambda n, d, why: seen.append((n, d, why))) as client:
        client.synthesize(SYNTH)
    assert seen == [(1, 4.0, "503 ENGINE_UNAVAILABLE")]


def test_async_client_retries_the_same_way() -> None:
    script = Script(
        envelope("ENGINE_UNAVAILABLE", 503, {"Retry-After": "3"}),
        envelope("RATE_LIMITED", 429, {"Retry-After": "1"}),
        httpx.Response(202, json=JOB_BODY),
    )
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def run() -> str:
        async with AsyncVoiceReelClient(
            "http://gw.test", "vr_" + "k" * 43, transport=httpx.MockTransport(script), sleep=fake_sleep
        ) as client:
            return (await client.synthesize(SYNTH)).job_id

    assert asyncio.run(run()) == JOB
    assert sleeps == [3.0, 1.0]
    assert len({r.headers["Idempotency-Key"] for r in script.requests}) == 1


def test_async_gives_up_with_typed_error() -> None:
    script = Script(*[envelope("ENGINE_UNAVAILABLE", 503, {"Retry-After": "0"}) for _ in range(2)])

    async def no_sleep(_: float) -> None:
        return None

    async def run() -> None:
        async with AsyncVoiceReelClient(
            "http://gw.test",
            "vr_" + "k" * 43,
            transport=httpx.MockTransport(script),
            sleep=no_sleep,
            retry=RetryPolicy(max_retries=1),
        ) as client:
            await client.synthesize(SYNTH)

    with pytest.raises(EngineUnavailableError):
        asyncio.run(run())
