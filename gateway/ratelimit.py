"""Per-key request rate limits in Redis: GCRA (generic cell rate algorithm), one Lua call per request.

A key with `rate_limit_per_min = L` may make L requests per minute, with bursts up to L: each request moves the
key's "theoretical arrival time" (TAT) forward by 60/L seconds; a request is refused when that would put the TAT
more than a minute ahead of now. The script reads Redis's own clock, so every gateway process agrees, and returns
everything the response headers need (`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, and
`Retry-After` on 429) in the same round trip.

Why not the `limits` library (the first choice, and what this module used at first): its Redis strategies answer
"allowed?" and "how much is left?" in two separate calls (`hit` + `get_window_stats`), so every request paid two
Redis round trips for its headers; on the 2-core benchmark machine that second trip was a measurable share of the
per-request cost of `GET /v1/jobs/{id}` (see perf/gateway_load.py). GCRA gives a smooth limit (no double burst at
window edges, unlike fixed windows) with one 16-byte key per API key.
"""

from __future__ import annotations

import math

import redis.asyncio

from voicereel.errors import ErrorCode, VoiceReelError

PERIOD_MS = 60_000

# KEYS[1]: the key's TAT (ms, Redis clock). ARGV[1]: emission interval T (ms), ARGV[2]: the period tau (ms).
# Returns {allowed (0/1), remaining, ms until the bucket is full again, ms until the next request may pass}.
_GCRA = """
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > tau then
  return {0, 0, tat - now, new_tat - tau - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
return {1, math.floor((tau - (new_tat - now)) / interval), new_tat - now, 0}
"""


class RateLimiter:
    def __init__(self, client: redis.asyncio.Redis) -> None:
        self.script = client.register_script(_GCRA)

    async def hit(self, key_id: str, per_minute: int) -> dict[str, str]:
        """Count one request; return the RateLimit-* headers, or raise RATE_LIMITED (429) with Retry-After."""
        interval = PERIOD_MS / per_minute
        allowed, remaining, reset_ms, retry_ms = await self.script(keys=[f"vr:rl:{key_id}"], args=[interval, PERIOD_MS])
        headers = {
            "RateLimit-Limit": str(per_minute),
            "RateLimit-Remaining": str(max(0, int(remaining))),
            "RateLimit-Reset": str(math.ceil(int(reset_ms) / 1000)),
            "RateLimit-Policy": f"{per_minute};w=60",
        }
        if not allowed:
            retry_after = max(1, math.ceil(int(retry_ms) / 1000))
            headers["Retry-After"] = str(retry_after)
            raise VoiceReelError(
                ErrorCode.RATE_LIMITED,
                f"rate limit of {per_minute} requests per minute exceeded",
                {"limit_per_min": per_minute, "retry_after_s": retry_after},
                headers=headers,
            )
        return headers
