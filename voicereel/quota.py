"""The monthly character quota: what counts against it, where the running total lives, and how it is given back.

A key's quota is charged with the characters of every synthesis script it submits, in the calendar month (UTC)
of the job's `created_at`. Jobs that end `failed` or `canceled` are given back: the customer pays quota only for
work that is queued, running or delivered. The database is the truth (`characters_charged`); Redis holds the
running total per key and month (`quota_key`), charged by the gateway and given back by whoever moved the job to
`failed` or `canceled` (worker, reconciler, or the gateway's DELETE), right after that conditional UPDATE won.

The give-back only touches a counter that exists: when Redis does not have it, the next charge seeds it from the
database, which already leaves the job out. A seed that read the database just before a job failed, written
just after that job's give-back found no counter, would still count the job; so every give-back also bumps the
month's generation (`generation_key`), and a seed is written only if the generation it saw before reading the
database is still current (`seed_counter_async`), else it reads again. One race remains, in the customer's favour
by one job: a seed that read the database just after the job failed, written just before its give-back, already
leaves the job out, and the give-back then subtracts it once more.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from voicereel.db.models import Job, JobKind, JobStatus

log = logging.getLogger(__name__)

NOT_CHARGED = (JobStatus.failed, JobStatus.canceled)
COUNTER_TTL_S = 40 * 86400  # a month's counter outlives its month, then goes

SEED_ATTEMPTS = 5

# Bump the generation (KEYS[2]), then subtract ARGV[1] from the counter (KEYS[1]) only if it exists; returns the new
# total, or false when there is no counter.
GIVE_BACK_SCRIPT = """
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECRBY', KEYS[1], ARGV[1]) end
return false
"""

# Write the seed ARGV[1] (read from the database while the generation was ARGV[2]) unless the counter exists or a
# give-back has run since: 1 when the counter now exists, 0 when the seed is stale.
SEED_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
local generation = redis.call('GET', KEYS[2]) or '0'
if generation ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3])
return 1
"""


def month_of(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; ours are always UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def quota_key(key_id: str, month: str) -> str:
    return f"vr:quota:{key_id}:{month}"


def generation_key(counter: str) -> str:
    """The give-back generation of a counter (``quota_key``)."""
    return counter.replace("vr:quota:", "vr:quota-gen:", 1)


async def seed_counter_async(redis_client: Any, counter: str, read_total: Callable[[], Awaitable[int]]) -> None:
    """Create ``counter`` from the database total ``read_total`` gives (asyncio Redis client), unless it exists.

    The generation is read before the total: a give-back in between (its job's characters may be in the total)
    makes the seed stale, and it is read again. After ``SEED_ATTEMPTS`` stale reads the last total is written anyway
    (give-backs that keep racing every read are not expected; the error would be one job, as before)."""
    seed = redis_client.register_script(SEED_SCRIPT)
    generation = generation_key(counter)
    total = 0
    for _ in range(SEED_ATTEMPTS):
        seen = await redis_client.get(generation)
        total = await read_total()
        current = "0" if seen is None else seen.decode() if isinstance(seen, bytes) else str(seen)
        if await seed(keys=[counter, generation], args=[total, current, COUNTER_TTL_S]):
            return
    log.warning("quota counter %s seeded after %d stale reads", counter, SEED_ATTEMPTS)
    await redis_client.set(counter, total, nx=True, ex=COUNTER_TTL_S)


def characters_charged(engine: Engine, key_id: str, month: str) -> int:
    """The key's charged characters in `month`, from the jobs table (blocking)."""
    start, end = month_bounds(month)
    with Session(engine) as session:
        total = session.exec(
            select(func.coalesce(func.sum(Job.characters), 0)).where(
                Job.api_key_id == key_id,
                Job.kind == JobKind.synthesize,
                col(Job.status).not_in(NOT_CHARGED),
                col(Job.created_at) >= start,
                col(Job.created_at) < end,
            )
        ).one()
    return int(total)


def charge_of(job: Job) -> tuple[str, int] | None:
    """The counter and amount a job was charged with; None for jobs that are not charged (speaker registration)."""
    if job.kind != JobKind.synthesize or not job.characters or job.api_key_id is None:
        return None
    return quota_key(job.api_key_id, month_of(job.created_at)), int(job.characters)


def give_back(redis_client: Any, job: Job) -> None:
    """Return a failed or canceled job's characters to its counter (sync Redis client). Never raises: a missed
    give-back is logged and costs the customer that job's characters until the counter is next seeded."""
    charge = charge_of(job)
    if charge is None:
        return
    name, amount = charge
    try:
        redis_client.register_script(GIVE_BACK_SCRIPT)(keys=[name, generation_key(name)], args=[amount, COUNTER_TTL_S])
    except Exception:
        log.warning("could not give back %d quota characters of job %s", amount, job.id, exc_info=True)


async def give_back_async(redis_client: Any, job: Job) -> None:
    """`give_back` for an asyncio Redis client."""
    charge = charge_of(job)
    if charge is None:
        return
    name, amount = charge
    try:
        await redis_client.register_script(GIVE_BACK_SCRIPT)(
            keys=[name, generation_key(name)], args=[amount, COUNTER_TTL_S]
        )
    except Exception:
        log.warning("could not give back %d quota characters of job %s", amount, job.id, exc_info=True)
