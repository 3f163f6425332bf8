"""Prefixed, time-sortable identifiers: `spk_…`, `job_…`, `key_…`, `prj_…`.

The body is a ULID-style string: 48 bits of milliseconds then 80 random bits, in Crockford base32, so ids sort
by creation time as plain strings and never collide in practice. Within one process the ids are monotonic: a
second id in the same millisecond (or after the clock stepped back) takes the previous random part plus one, so
lists ordered by id show rows in the order this process created them. Ids made by different processes in the
same millisecond still sort arbitrarily between themselves.
"""

from __future__ import annotations

import secrets
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
PREFIXES = frozenset({"prj", "key", "spk", "job", "req"})
_RANDOM_BITS = 80


def _b32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


class IdMaker:
    """Makes ids that never go backwards: one per process (module level), or a private one in tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0

    def new(self, prefix: str, *, now_ms: int | None = None) -> str:
        if prefix not in PREFIXES:
            raise ValueError(f"unknown id prefix {prefix!r}")
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            if ms <= self._last_ms and self._last_rand + 1 < 1 << _RANDOM_BITS:
                ms, rand = self._last_ms, self._last_rand + 1
            else:
                rand = secrets.randbits(_RANDOM_BITS)
            self._last_ms, self._last_rand = ms, rand
        return f"{prefix}_{_b32(ms, 10)}{_b32(rand, 16)}"


_process_ids = IdMaker()


def new_id(prefix: str, *, now_ms: int | None = None) -> str:
    return _process_ids.new(prefix, now_ms=now_ms)


def has_prefix(value: str, prefix: str) -> bool:
    """True when `value` looks like an id of this kind (shape only; existence is the database's business)."""
    body = value.removeprefix(f"{prefix}_")
    return body != value and len(body) == 26 and all(c in _ALPHABET for c in body)
