"""The read behind `GET /v1/jobs/{id}` — the call every client polls — without a worker thread on PostgreSQL.

On PostgreSQL the row is read with psycopg's asyncio connection (autocommit, server-side prepared after a few
uses) straight from the event loop: no thread hand-off and no ORM/Core machinery, which together were about half
of that request's CPU on the benchmark machine (perf/gateway_load.py). Any other database (SQLite) takes the
ordinary path (`Services.read` + `routes.jobs.find_job`), so both return the same thing: an object with the job
table's columns as attributes, enums as enums, JSON as dicts and timestamps as aware datetimes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import Engine

from voicereel.db.models import JobKind, JobStatus

_SELECT_JOB = "SELECT * FROM job WHERE id = %(job_id)s AND project_id = %(project_id)s"


class AsyncPgPool:
    """A small pool of autocommit asyncio connections (psycopg_pool is not a dependency). Connections that broke
    are dropped, not returned; a new one is opened on demand, up to `size`."""

    def __init__(self, conninfo: str, size: int, connect_timeout_s: float) -> None:
        self.conninfo = conninfo
        self.size = size
        self.connect_timeout_s = connect_timeout_s
        self._idle: asyncio.LifoQueue[psycopg.AsyncConnection[Any]] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(size)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self._slots:
            conn = self._idle.get_nowait() if not self._idle.empty() else None
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=max(1, int(self.connect_timeout_s)),
                    options="-c TimeZone=UTC",
                )
            try:
                yield conn
            except BaseException:
                await conn.close()
                raise
            if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await conn.close()
            else:
                self._idle.put_nowait(conn)

    async def close(self) -> None:
        while not self._idle.empty():
            await self._idle.get_nowait().close()


def pg_conninfo(engine: Engine) -> str | None:
    """libpq connection string of a PostgreSQL engine; None for any other database."""
    if engine.dialect.name != "postgresql":
        return None
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def fetch_job(pool: AsyncPgPool, project_id: str, job_id: str) -> SimpleNamespace | None:
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(_SELECT_JOB, {"job_id": job_id, "project_id": project_id}, prepare=True)
        row = await cursor.fetchone()
    if row is None:
        return None
    row["kind"], row["status"] = JobKind(row["kind"]), JobStatus(row["status"])
    return SimpleNamespace(**row)
