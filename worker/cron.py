"""Periodic maintenance through RQ's own cron scheduler (`rq.cron.CronScheduler`): the reconciler every
`reconcile_interval_s` and the sweeper every `sweep_interval_s`, enqueued on the maintenance queue.

RQ's `CronScheduler.start()` ends on the first Redis error; this loop drives the same scheduler object
(`enqueue_jobs`, `heartbeat`) and survives Redis restarts: a run that could not be enqueued stays due and is
enqueued when Redis is back. `python -m worker` runs it as a child process (`python -m worker.cron`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading

from redis import Redis
from redis.exceptions import RedisError
from rq.cron import CronScheduler

from voicereel.settings import Settings, get_settings
from worker.context import make_redis
from worker.maintenance import (
    MAINTENANCE_FAILURE_TTL_S,
    MAINTENANCE_RESULT_TTL_S,
    MAINTENANCE_TIMEOUT_S,
    maintenance_queue_name,
)
from worker.observability import setup_logging, setup_sentry
from worker.reconciler import reconcile
from worker.sweeper import sweep

log = logging.getLogger(__name__)

MAX_SLEEP_S = 5.0


def build_scheduler(redis: Redis, settings: Settings) -> CronScheduler:
    scheduler = CronScheduler(connection=redis, name=f"voicereel-cron:{socket.gethostname()}:{os.getpid()}")
    queue = maintenance_queue_name(settings)
    for func, interval in ((reconcile, settings.reconcile_interval_s), (sweep, settings.sweep_interval_s)):
        scheduler.register(
            func,
            queue,
            interval=interval,
            job_timeout=MAINTENANCE_TIMEOUT_S,
            result_ttl=MAINTENANCE_RESULT_TTL_S,
            failure_ttl=MAINTENANCE_FAILURE_TTL_S,
            ttl=max(60, 2 * interval),  # a run that waited longer than two periods is dropped, not piled up
        )
    return scheduler


def run(settings: Settings, stop: threading.Event) -> None:
    scheduler = build_scheduler(make_redis(settings), settings)
    registered = False
    while not stop.is_set():
        try:
            if not registered:
                scheduler.register_birth()
                registered = True
            if scheduler.enqueue_jobs():
                scheduler.save()
            scheduler.heartbeat()
        except RedisError as exc:
            registered = False
            log.warning("cron: Redis error (%s); retrying", exc)
        stop.wait(min(scheduler.calculate_sleep_interval(), MAX_SLEEP_S))
    with contextlib.suppress(RedisError):
        scheduler.register_death()


def main() -> None:
    settings = get_settings()
    setup_logging(settings)
    setup_sentry(settings, "worker-cron")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("cron: reconcile every %ss, sweep every %ss", settings.reconcile_interval_s, settings.sweep_interval_s)
    run(settings, stop)


if __name__ == "__main__":
    main()
