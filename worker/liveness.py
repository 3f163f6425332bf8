"""Liveness of running jobs, independent of RQ's own bookkeeping: while a job runs, a thread in the work-horse
refreshes `voicereel:alive:{job_id}` every `worker_heartbeat_s` with a TTL of three beats. A killed worker stops
beating, the key expires, and the reconciler re-enqueues the job. The key is re-created after a Redis restart by
the next beat, so a job that is still running is never taken for dead for longer than one beat."""

from __future__ import annotations

import contextlib
import logging
import threading
from types import TracebackType

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

BEATS_TO_EXPIRE = 3


def alive_key(job_id: str) -> str:
    return f"voicereel:alive:{job_id}"


def is_alive(redis: Redis, job_id: str) -> bool:
    return bool(redis.exists(alive_key(job_id)))


class Heartbeat:
    """Context manager: beats in a daemon thread until exit, then deletes the key."""

    def __init__(self, redis: Redis, job_id: str, interval_s: float, owner: str = "") -> None:
        self.redis = redis
        self.job_id = job_id
        self.interval_s = interval_s
        self.owner = owner or "worker"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def beat(self) -> None:
        try:
            ttl_ms = max(1, int(self.interval_s * BEATS_TO_EXPIRE * 1000))
            self.redis.set(alive_key(self.job_id), self.owner, px=ttl_ms)
        except RedisError as exc:  # Redis away for a moment: the next beat re-creates the key
            log.warning("heartbeat for %s failed: %s", self.job_id, exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 1)
        with contextlib.suppress(RedisError):
            self.redis.delete(alive_key(self.job_id))
