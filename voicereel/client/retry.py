"""When and how long to wait before retrying a request.

Retried: 429 RATE_LIMITED and 503 (any code) answers, transport failures (connection refused, timeouts), a
409 answer to a retried POST (its first attempt is still in flight on the server), and, at once, a 401 that says
our signature was a replay: another process with the same key sent the identical request in the same second
(the signing scheme has no nonce), the gateway ran neither copy's work for ours, and each attempt is signed
afresh with a later timestamp.
QUOTA_EXCEEDED is a 429 too but waiting seconds does not refill a monthly quota, so it is never retried. A
`Retry-After` header (seconds or an HTTP date) is honoured; without one the wait is capped exponential backoff
with full jitter. POSTs are safe to retry because each carries one `Idempotency-Key` across all its attempts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

RETRY_STATUSES = frozenset({429, 503})


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or HTTP-date); None if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is unreadable
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def signature_replayed(response: httpx.Response) -> bool:
    """True for the gateway's answer to a signed request whose exact signature it had accepted before."""
    try:
        details = response.json()["error"]["details"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(details, dict) and details.get("signature") == "replayed"


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry and how long to wait between attempts.

    `max_retry_after_s`: a `Retry-After` longer than this is not waited out; the error is raised at once so a
    caller is never blocked for minutes by surprise.
    """

    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    max_retry_after_s: float = 120.0
    retry_transport_errors: bool = True

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full-jitter exponential backoff for retry number `attempt` (0-based)."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def delay_for_response(
        self, attempt: int, response: httpx.Response, error_code: str | None, *, replaying: bool = False
    ) -> float | None:
        """Seconds to wait before retrying after `response`, or None when it must not be retried.

        `replaying`: this was a retry of a POST with an Idempotency-Key. A 409 then means our own earlier attempt
        (which we gave up on, e.g. after a read timeout) is still being handled: wait for it, and the next retry
        gets its stored response instead of creating a second job.
        """
        if attempt >= self.max_retries:
            return None
        if response.status_code == 401 and signature_replayed(response):
            return 0.0
        if response.status_code == 409 and replaying:
            return self.backoff(attempt)
        if response.status_code not in RETRY_STATUSES:
            return None
        if response.status_code == 429 and error_code not in (None, "RATE_LIMITED"):
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is None:
            return self.backoff(attempt)
        if retry_after > self.max_retry_after_s:
            return None
        return retry_after

    def delay_for_transport_error(self, attempt: int) -> float | None:
        if not self.retry_transport_errors or attempt >= self.max_retries:
            return None
        return self.backoff(attempt)


NO_RETRIES = RetryPolicy(max_retries=0)
