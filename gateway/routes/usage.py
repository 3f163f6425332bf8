"""`GET /v1/usage`: requests, characters and audio seconds per month, per key, for the caller's project; plus the
calling key's quota state this month.

Characters and audio seconds come from `UsageRecord` (one row per finished job, written by the worker); requests
from `RequestCount` (written by the gateway in batches; this process's pending counts are flushed first).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlmodel import Session, col, func, select
from starlette.responses import Response

from gateway import schemas
from gateway.api import Call, Operation, Out, json_response
from gateway.usage import month_of, quota_used
from voicereel.db.models import RequestCount, UsageRecord


def usage_rows(session: Session, project_id: str, month: str | None) -> dict[tuple[str, str | None], dict[str, Any]]:
    table: dict[tuple[str, str | None], dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "characters": 0, "audio_seconds": 0.0}
    )
    jobs = select(
        UsageRecord.month,
        UsageRecord.api_key_id,
        func.sum(UsageRecord.characters),
        func.sum(UsageRecord.audio_seconds),
    ).where(UsageRecord.project_id == project_id)
    if month:
        jobs = jobs.where(UsageRecord.month == month)
    jobs = jobs.group_by(col(UsageRecord.month), col(UsageRecord.api_key_id))
    for m, key_id, characters, seconds in session.exec(jobs):
        table[(m, key_id)]["characters"] += int(characters or 0)
        table[(m, key_id)]["audio_seconds"] += float(seconds or 0.0)
    requests = select(RequestCount.month, RequestCount.api_key_id, RequestCount.requests).where(
        RequestCount.project_id == project_id
    )
    if month:
        requests = requests.where(RequestCount.month == month)
    for m, key_id, n in session.exec(requests):
        table[(m, key_id)]["requests"] += int(n)
    return table


async def get_usage(call: Call) -> Response:
    query: schemas.UsageQuery = call.query
    services, caller = call.services, call.who
    await services.in_thread(services.requests.flush, services.engine)
    table = await services.db(lambda s: usage_rows(s, caller.project_id, query.month))
    months: dict[str, list[schemas.KeyUsage]] = defaultdict(list)
    for (month, key_id), values in sorted(table.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        months[month].append(schemas.KeyUsage(api_key_id=key_id, **values))
    used = await quota_used(services.redis, services.engine, caller.key_id)
    body = schemas.Usage(
        project_id=caller.project_id,
        months=[
            schemas.MonthUsage(
                month=month,
                requests=sum(k.requests for k in keys),
                characters=sum(k.characters for k in keys),
                audio_seconds=round(sum(k.audio_seconds for k in keys), 3),
                keys=keys,
            )
            for month, keys in sorted(months.items(), reverse=True)
        ],
        quota=schemas.QuotaState(
            api_key_id=caller.key_id, month=month_of(), quota_chars=caller.monthly_quota_chars, used_chars=used
        ),
    )
    return json_response(body)


OPERATIONS = [
    Operation(
        "GET",
        "/v1/usage",
        get_usage,
        "getUsage",
        "Usage of the caller's project: requests, characters and audio seconds per month, per key",
        "usage",
        (Out(200, schemas.Usage, "Usage, newest month first."),),
        scope="usage:read",
        query=schemas.UsageQuery,
    ),
]
