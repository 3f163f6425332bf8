"""Per-key rate limits in Redis: RateLimit-* headers on every authenticated response, 429 RATE_LIMITED with
Retry-After past the limit, counters shared by every gateway process and separate per key."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def test_headers_count_down_then_429_with_retry_after(gateway, error_code) -> None:
    key = gateway.new_key(rate_limit_per_min=3)
    remaining = []
    for _ in range(3):
        response = await gateway.request("GET", "/v1/jobs", key)
        assert response.status_code == 200
        assert response.headers["ratelimit-limit"] == "3"
        remaining.append(int(response.headers["ratelimit-remaining"]))
        assert 0 <= int(response.headers["ratelimit-reset"]) <= 60
    assert remaining == [2, 1, 0]
    refused = await gateway.request("GET", "/v1/jobs", key)
    assert refused.status_code == 429
    assert error_code(refused) == "RATE_LIMITED"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-remaining"] == "0"
    # Errors after the limiter passed also carry the headers (here: a 404).
    other = gateway.new_key(rate_limit_per_min=3)
    missing = await gateway.request("GET", "/v1/jobs/job_00000000000000000000000000", other)
    assert missing.status_code == 404
    assert missing.headers["ratelimit-remaining"] == "2"


async def test_limits_are_per_key_and_shared_across_processes(gateway_factory) -> None:
    # Two apps stand in for two gateway processes: they share the key's counter through Redis.
    async with gateway_factory() as first, gateway_factory() as second:
        key = first.new_key(rate_limit_per_min=2)
        other = first.new_key(rate_limit_per_min=2)
        assert (await first.request("GET", "/v1/speakers", key)).status_code == 200
        assert (await second.request("GET", "/v1/speakers", key)).status_code == 200
        assert (await first.request("GET", "/v1/speakers", key)).status_code == 429
        assert (await second.request("GET", "/v1/speakers", other)).status_code == 200
