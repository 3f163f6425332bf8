"""The SDK's request signing against the gateway's own signing code: same vectors both ways, and the gateway's
`verify` (with a real Redis replay cache) accepts what the SDK sends."""

from __future__ import annotations

import asyncio
import hashlib
import hmac

import httpx
import pytest
import redis.asyncio

from gateway import signing as gateway_signing
from voicereel.client import signing
from voicereel.client.signing import Signer

SECRET = "vrs_" + "ab" * 32

CASES = [
    ("GET", "/v1/jobs", "", b""),
    ("GET", "/v1/jobs", "limit=20&status=queued", b""),
    ("GET", "/v1/jobs", "status=queued&limit=20", b""),  # order must not matter
    ("GET", "/v1/speakers", "b=2&a=1&a=0&c=", b""),
    ("GET", "/v1/speakers", "q=caf%C3%A9+au+lait&x=%2F%3F%26", b""),
    ("GET", "/v1/speakers", "flag&z=%7E-_.", b""),
    ("POST", "/v1/synthesize", "", b'{"script":[{"speaker_id":"spk_x","text":"hello \xc3\xa9"}]}'),
    ("DELETE", "/v1/jobs/job_01jd0000000000000000000000", "", b""),
]


@pytest.mark.parametrize(("method", "path", "query", "body"), CASES)
def test_sdk_signature_equals_gateway_signature(method: str, path: str, query: str, body: bytes) -> None:
    ts = 1_732_600_000
    sdk_query = signing.canonical_query_from_raw(query)
    assert sdk_query == gateway_signing.canonical_query(query)
    sdk = signing.signature(SECRET, method, path, sdk_query, ts, body)
    gateway = gateway_signing.sign(SECRET, method, path, query, str(ts), body)
    assert sdk == gateway


def test_known_vector_is_hmac_of_documented_string() -> None:
    """Pins the wire format itself (so both sides cannot drift together): DESIGN §3's string to sign."""
    body = b'{"a":1}'
    expected_message = "\n".join(
        ["POST", "/v1/synthesize", "a=1&b=%20x", "1700000000", hashlib.sha256(body).hexdigest()]
    )
    expected = hmac.new(b"secret", expected_message.encode(), hashlib.sha256).hexdigest()
    got = signing.signature(
        "secret", "post", "/v1/synthesize", signing.canonical_query_from_raw("b=+x&a=1"), 1700000000, body
    )
    assert got == f"v1={expected}"


def test_signer_signs_what_httpx_sends() -> None:
    client = httpx.Client(base_url="http://gw.test")
    request = client.build_request("GET", "/v1/jobs", params={"status": "queued", "limit": 5})
    Signer(SECRET, clock=lambda: 1_700_000_000.4).sign(request, b"")
    ts = request.headers[signing.TIMESTAMP_HEADER]
    assert ts == "1700000000"
    expected = gateway_signing.sign(SECRET, "GET", "/v1/jobs", request.url.query.decode(), ts, b"")
    assert request.headers[signing.SIGNATURE_HEADER] == expected


def test_signer_never_repeats_a_signature_within_a_second() -> None:
    signer = Signer(SECRET, clock=lambda: 1_700_000_000.0)
    first = signer.headers("GET", "/v1/jobs/job_x", "", b"")
    second = signer.headers("GET", "/v1/jobs/job_x", "", b"")
    other = signer.headers("GET", "/v1/jobs/job_y", "", b"")
    assert first[signing.TIMESTAMP_HEADER] == "1700000000"
    assert second[signing.TIMESTAMP_HEADER] == "1700000001"
    assert other[signing.TIMESTAMP_HEADER] == "1700000000"
    assert first[signing.SIGNATURE_HEADER] != second[signing.SIGNATURE_HEADER]


def test_signer_refuses_to_run_past_the_window() -> None:
    signer = Signer(SECRET, clock=lambda: 1_700_000_000.0, max_skew_s=2)
    for _ in range(3):
        signer.headers("GET", "/v1/usage", "", b"")
    with pytest.raises(RuntimeError, match="signature window"):
        signer.headers("GET", "/v1/usage", "", b"")


def test_empty_secret_is_rejected() -> None:
    with pytest.raises(ValueError, match="empty"):
        Signer("")


def test_gateway_verify_accepts_sdk_signatures_and_rejects_replays(redis_url: str) -> None:
    """Real Redis replay cache: identical requests in one second pass because the SDK bumps the timestamp; the
    very same headers sent twice are refused."""

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        signer = Signer(SECRET)
        body = b'{"script":[]}'
        digest = hashlib.sha256(body).hexdigest()

        async def verify(headers: dict[str, str]) -> None:
            await gateway_signing.verify(
                redis_client=client,
                secret=SECRET,
                key_id="key_signing_test",
                method="POST",
                path="/v1/synthesize",
                query_string="",
                timestamp=headers[signing.TIMESTAMP_HEADER],
                signature=headers[signing.SIGNATURE_HEADER],
                body_sha256=digest,
                window_s=300,
            )

        try:
            first = signer.headers("POST", "/v1/synthesize", "", body)
            second = signer.headers("POST", "/v1/synthesize", "", body)
            await verify(first)
            await verify(second)
            with pytest.raises(Exception, match="replay"):
                await verify(first)
            tampered = dict(second, **{signing.SIGNATURE_HEADER: "v1=" + "0" * 64})
            with pytest.raises(Exception, match="does not match"):
                await verify(tampered)
        finally:
            await client.aclose()  # type: ignore[attr-defined,unused-ignore]

    asyncio.run(scenario())
