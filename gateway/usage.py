"""Usage metering: request counts per key per month, and the monthly character quota.

Request counts are added up in memory and written to `RequestCount` every `usage_flush_s` seconds with one
upsert per key and month (`requests = requests + n`), so metering costs no I/O on the request path. A process that
dies loses at most that interval of counts.

The quota counts characters of accepted synthesis scripts per key per calendar month (UTC), less those of jobs
that ended failed or canceled (voicereel.quota). The running total lives in Redis (`INCRBY`, atomic across
gateway processes); when Redis does not have it (first use this month, Redis restarted) it is seeded from the
jobs table, so losing Redis does not reset anybody's quota.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
import redis.asyncio
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from voicereel.db.models import RequestCount
from voicereel.errors import ErrorCode, VoiceReelError
from voicereel.quota import characters_charged, month_of, quota_key, seed_counter_async

log = logging.getLogger("voicereel.gateway")


class RequestCounter:
    def __init__(self) -> None:
        self._pending: Counter[tuple[str, str, str]] = Counter()

    def count(self, project_id: str, key_id: str) -> None:
        self._pending[(project_id, key_id, month_of())] += 1

    def flush(self, engine: Engine) -> None:
        """Write pending counts (blocking: call from a thread). Counts stay pending if the write fails."""
        if not self._pending:
            return
        pending, self._pending = self._pending, Counter()
        try:
            with Session(engine) as session:
                insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
                for (project_id, key_id, month), n in sorted(pending.items()):
                    row = {"project_id": project_id, "api_key_id": key_id, "month": month, "requests": n}
                    stmt = insert(RequestCount).values(**row)
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["api_key_id", "month"],
                        set_={"requests": RequestCount.__table__.c.requests + stmt.excluded.requests},  # type: ignore[attr-defined]
                    )
                    session.execute(stmt)
                session.commit()
        except Exception:
            self._pending.update(pending)
            raise

    @contextlib.asynccontextmanager
    async def flushing(self, engine: Engine, every_s: float) -> AsyncIterator[None]:
        """Flush every `every_s` seconds while the app runs, and once more when it stops."""

        async def loop() -> None:
            while True:
                await anyio.sleep(every_s)
                try:
                    await anyio.to_thread.run_sync(self.flush, engine)
                except Exception:
                    log.exception("could not write request counts; will retry")

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(loop)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
        try:
            await anyio.to_thread.run_sync(self.flush, engine)
        except Exception:
            log.exception("could not write request counts at shutdown")


# --- monthly character quota (what counts, and giving back: voicereel.quota) ---------------------------------


# One round trip: -1 when the month's counter is not in Redis (the caller seeds it from the database and calls
# again); otherwise {1, total} when the characters fit (and are now counted) or {0, used} when they do not.
_CONSUME = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if total > tonumber(ARGV[2]) then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return {0, total - tonumber(ARGV[1])}
end
return {1, total}
"""


async def consume_quota(
    redis_client: redis.asyncio.Redis, engine: Engine, key_id: str, quota: int, characters: int, month: str
) -> None:
    """Charge `characters` to the key's quota for `month` (the job's), or raise QUOTA_EXCEEDED."""
    name = quota_key(key_id, month)
    consume = redis_client.register_script(_CONSUME)
    outcome = await consume(keys=[name], args=[characters, quota])
    if outcome == -1:

        async def read_total() -> int:
            return await anyio.to_thread.run_sync(characters_charged, engine, key_id, month)

        await seed_counter_async(redis_client, name, read_total)
        outcome = await consume(keys=[name], args=[characters, quota])
    fits, used = outcome
    if not fits:
        raise VoiceReelError(
            ErrorCode.QUOTA_EXCEEDED,
            f"monthly quota of {quota} characters would be exceeded",
            {"quota_chars": quota, "used_chars": int(used), "requested_chars": characters, "month": month},
        )


async def quota_used(redis_client: redis.asyncio.Redis, engine: Engine, key_id: str) -> int:
    month = month_of()
    value = await redis_client.get(quota_key(key_id, month))
    if value is not None:
        return int(value)
    return await anyio.to_thread.run_sync(characters_charged, engine, key_id, month)
