"""The long-lived clients of one gateway process, created in the app lifespan and kept on `app.state.services`.

Nothing here is a module global: tests build as many apps as they like, each with its own engine, Redis clients,
queue, storage and HTTP client, and close them when the lifespan ends.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import httpx
import redis
import redis.asyncio
from redis import Redis
from rq import Queue
from sqlalchemy import Connection, Engine
from sqlmodel import Session

from gateway.auth import KeyCache
from gateway.fastread import AsyncPgPool, pg_conninfo
from gateway.observability import Metrics, flush_logs
from gateway.ratelimit import RateLimiter
from gateway.usage import RequestCounter
from voicereel.db.migrate import upgrade_database
from voicereel.db.session import make_engine
from voicereel.jobqueue import make_queue
from voicereel.settings import Settings
from voicereel.storage import Storage, make_storage

T = TypeVar("T")
log = logging.getLogger("voicereel.gateway")


@dataclass
class Services:
    settings: Settings
    engine: Engine
    autocommit: Engine  # the same pool, connections in autocommit mode (see `read`)
    redis: redis.asyncio.Redis
    redis_sync: Redis
    queue: Queue
    limiter: RateLimiter
    http: httpx.AsyncClient
    storage: Storage
    metrics: Metrics
    keys: KeyCache
    requests: RequestCounter
    pg_pool: AsyncPgPool | None = None  # PostgreSQL only: see gateway.fastread

    async def read(self, work: Callable[[Connection], T]) -> T:
        """Run `work(connection)` in a worker thread on an autocommit connection: one round trip per statement, no
        BEGIN/ROLLBACK around it. For the hot paths (reads, single-statement writes, which are atomic anyway)."""

        def run() -> T:
            with self.autocommit.connect() as connection:
                return work(connection)

        return await anyio.to_thread.run_sync(run)

    async def db(self, work: Callable[[Session], T]) -> T:
        """Run `work(session)` in a worker thread (the engine is synchronous) and commit when it returns."""

        def run() -> T:
            with Session(self.engine, expire_on_commit=False) as session:
                result = work(session)
                session.commit()
                return result

        return await anyio.to_thread.run_sync(run)

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args)


async def _flush_logs_forever(every_s: float = 0.5) -> None:
    while True:
        await anyio.sleep(every_s)
        flush_logs()


@contextlib.asynccontextmanager
async def open_services(settings: Settings, metrics: Metrics) -> AsyncIterator[Services]:
    url = settings.effective_database_url
    if settings.migrate_on_start:
        await anyio.to_thread.run_sync(upgrade_database, url)
    engine = make_engine(url, pool_size=settings.db_pool_size)
    timeout = settings.readiness_timeout_s
    redis_async = redis.asyncio.Redis.from_url(
        settings.redis_url, socket_timeout=5, socket_connect_timeout=timeout, health_check_interval=30
    )
    redis_sync = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=timeout)
    http = httpx.AsyncClient(timeout=timeout)
    services = Services(
        settings=settings,
        engine=engine,
        autocommit=engine.execution_options(isolation_level="AUTOCOMMIT"),
        redis=redis_async,
        redis_sync=redis_sync,
        queue=make_queue(redis_sync, settings),
        limiter=RateLimiter(redis_async),
        http=http,
        storage=make_storage(settings),
        metrics=metrics,
        keys=KeyCache(settings.api_key_cache_s),
        requests=RequestCounter(),
    )
    conninfo = pg_conninfo(engine)
    if conninfo is not None:
        services.pg_pool = AsyncPgPool(conninfo, settings.db_pool_size, timeout)
    try:
        async with (
            services.requests.flushing(services.engine, settings.usage_flush_s),
            services.keys.listening(redis_async),
            anyio.create_task_group() as bg,
        ):
            bg.start_soon(_flush_logs_forever)
            yield services
            bg.cancel_scope.cancel()
    finally:
        flush_logs()
        if services.pg_pool is not None:
            await services.pg_pool.close()
        await http.aclose()
        await redis_async.aclose()  # type: ignore[attr-defined]
        redis_sync.close()
        engine.dispose()
