"""voicereel.quota: months, which jobs are charged, and giving characters back on a real Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

import pytest
import redis
import redis.asyncio

from voicereel.db.models import Job, JobKind
from voicereel.ids import new_id
from voicereel.quota import (
    charge_of,
    generation_key,
    give_back,
    give_back_async,
    month_bounds,
    month_of,
    quota_key,
    seed_counter_async,
)


def make_job(kind: JobKind = JobKind.synthesize, characters: int = 7, **values: object) -> Job:
    return Job(
        id=new_id("job"),
        project_id=new_id("prj"),
        api_key_id=new_id("key"),
        kind=kind,
        request={},
        characters=characters,
        **values,
    )


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def test_month_bounds_wrap_the_year() -> None:
    start, end = month_bounds("2025-12")
    assert (start.year, start.month, end.year, end.month) == (2025, 12, 2026, 1)


def test_month_of_reads_naive_times_as_utc() -> None:
    assert month_of(datetime(2026, 11, 30, 23, 59, 59)) == "2026-11"
    assert month_of(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)) == "2026-12"


def test_charge_is_the_jobs_characters_in_its_creation_month() -> None:
    job = make_job(created_at=datetime(2026, 2, 28, 23, 0, tzinfo=UTC))
    assert charge_of(job) == (quota_key(job.api_key_id, "2026-02"), 7)
    assert charge_of(make_job(kind=JobKind.register_speaker)) is None
    assert charge_of(make_job(characters=0)) is None


def test_give_back_lowers_an_existing_counter(client: redis.Redis) -> None:
    job = make_job(characters=30)
    name, _ = charge_of(job) or ("", 0)
    client.set(name, 100)
    give_back(client, job)
    assert int(client.get(name) or -1) == 70
    client.delete(name)


def test_give_back_without_a_counter_creates_none(client: redis.Redis) -> None:
    """No counter: the next charge seeds it from the database, which already leaves the job out."""
    job = make_job(characters=30)
    name, _ = charge_of(job) or ("", 0)
    give_back(client, job)
    assert client.exists(name) == 0


def test_give_back_never_raises_when_redis_is_gone() -> None:
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    give_back(unreachable, make_job())


@pytest.mark.anyio
async def test_give_back_async(redis_url: str, client: redis.Redis) -> None:
    job = make_job(characters=5)
    name, _ = charge_of(job) or ("", 0)
    client.set(name, 12)
    connection = redis.asyncio.Redis.from_url(redis_url)
    try:
        await give_back_async(connection, job)
    finally:
        await connection.aclose()
    assert int(client.get(name) or -1) == 7
    client.delete(name)


async def seed_with_a_fresh_connection(redis_url: str, name: str, read_total: Callable[[], Awaitable[int]]) -> None:
    connection = redis.asyncio.Redis.from_url(redis_url)
    try:
        await seed_counter_async(connection, name, read_total)
    finally:
        await connection.aclose()


@pytest.mark.anyio
async def test_a_seed_read_before_a_give_back_is_read_again(redis_url: str, client: redis.Redis) -> None:
    """The counter is missing; the seed reads the database (the job still counted: 100), the job fails and is given
    back (no counter to lower), then the seed would write 100. It must notice and read again (70)."""
    job = make_job(characters=30)
    name, _ = charge_of(job) or ("", 0)
    totals = iter([100, 70])

    async def read_total() -> int:
        total = next(totals)
        if total == 100:
            give_back(client, job)  # lands between the seed's database read and its write
        return total

    await seed_with_a_fresh_connection(redis_url, name, read_total)
    assert int(client.get(name) or -1) == 70
    client.delete(name, generation_key(name))


@pytest.mark.anyio
async def test_a_seed_never_replaces_an_existing_counter(redis_url: str, client: redis.Redis) -> None:
    job = make_job(characters=30)
    name, _ = charge_of(job) or ("", 0)
    client.set(name, 55)

    async def read_total() -> int:
        return 999

    await seed_with_a_fresh_connection(redis_url, name, read_total)
    assert int(client.get(name) or -1) == 55
    client.delete(name)
