"""What a job function needs, made once per run: settings, a database engine, Redis and storage.

Job functions run in RQ's forked work-horse, so nothing with open sockets is inherited from the parent: the engine
and the Redis client are created here, inside the horse, and closed when the job ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from redis import Redis
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from voicereel.db.session import make_engine
from voicereel.settings import Settings, get_settings
from voicereel.storage import Storage, make_storage

REDIS_SOCKET_TIMEOUT_S = 10.0
PG_CONNECT_TIMEOUT_S = 10
PG_STATEMENT_TIMEOUT_MS = 60_000  # the worker's statements are single-row reads and writes
PG_LOCK_TIMEOUT_MS = 30_000


def database_url_with_timeouts(url: str) -> str:
    """PostgreSQL URLs get connect, statement and lock timeouts unless they set their own (SQLite is local)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    query = dict(parsed.query)
    query.setdefault("connect_timeout", str(PG_CONNECT_TIMEOUT_S))
    query.setdefault("options", f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS} -c lock_timeout={PG_LOCK_TIMEOUT_MS}")
    return parsed.update_query_dict(query).render_as_string(hide_password=False)


def make_redis(settings: Settings) -> Redis:
    """A Redis client with timeouts on connect and on every command (no call may hang forever)."""
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        health_check_interval=30,
    )


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    redis: Redis
    storage: Storage

    @classmethod
    def create(cls, settings: Settings | None = None) -> WorkerContext:
        settings = settings or get_settings()
        return cls(
            settings=settings,
            engine=make_engine(database_url_with_timeouts(settings.effective_database_url), pool_size=2),
            redis=make_redis(settings),
            storage=make_storage(settings),
        )

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()

    def __enter__(self) -> WorkerContext:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
