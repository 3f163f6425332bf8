"""GET /v1/usage: requests, characters and audio seconds per month, per key, and the caller's quota."""

from __future__ import annotations

import pytest

from voicereel.db.models import UsageRecord
from voicereel.db.session import session_scope
from voicereel.quota import month_of

pytestmark = pytest.mark.anyio


async def test_usage_per_month_and_key(gateway) -> None:
    first = gateway.new_key(monthly_quota_chars=1000)
    second = gateway.new_key(project_id=first.project_id)
    stranger = gateway.new_key()
    speaker_id = gateway.add_speaker(first)
    job = (
        await gateway.request(
            "POST", "/v1/synthesize", first, json={"script": [{"speaker_id": speaker_id, "text": "abcdefghij"}]}
        )
    ).json()
    await gateway.request("GET", "/v1/jobs", first)
    await gateway.request("GET", "/v1/jobs", second)
    await gateway.request("GET", "/v1/jobs", stranger)
    month = month_of()
    with session_scope(gateway.services.engine) as session:  # what the worker records when the job finishes
        session.add(
            UsageRecord(
                project_id=first.project_id,
                api_key_id=first.key_id,
                job_id=job["job_id"],
                month=month,
                characters=10,
                audio_seconds=1.25,
            )
        )
        session.add(
            UsageRecord(
                project_id=first.project_id,
                api_key_id=first.key_id,
                job_id="job_old",
                month="2025-01",
                characters=7,
                audio_seconds=0.5,
            )
        )
    usage = (await gateway.request("GET", "/v1/usage", first)).json()
    assert usage["project_id"] == first.project_id
    assert [m["month"] for m in usage["months"]] == [month, "2025-01"]
    this_month = usage["months"][0]
    per_key = {k["api_key_id"]: k for k in this_month["keys"]}
    # first: POST + GET + this GET /v1/usage; second: one GET. The stranger's project is not counted here.
    assert per_key[first.key_id]["requests"] == 3 and per_key[second.key_id]["requests"] == 1
    assert per_key[first.key_id]["characters"] == 10 and per_key[first.key_id]["audio_seconds"] == 1.25
    assert this_month["requests"] == 4 and this_month["characters"] == 10
    assert stranger.key_id not in per_key
    assert usage["quota"] == {"api_key_id": first.key_id, "month": month, "quota_chars": 1000, "used_chars": 10}
    only_old = (await gateway.request("GET", "/v1/usage?month=2025-01", first)).json()
    assert [m["month"] for m in only_old["months"]] == ["2025-01"] and only_old["months"][0]["requests"] == 0
    assert (await gateway.request("GET", "/v1/usage?month=2025-13", first)).status_code == 400


async def test_request_counts_reach_the_database_in_batches(gateway_factory) -> None:
    async with gateway_factory(usage_flush_s=0.2) as gateway:
        key = gateway.new_key()
        for _ in range(3):
            await gateway.request("GET", "/v1/speakers", key)
        import anyio

        await anyio.sleep(0.5)
        from sqlmodel import Session, select

        from voicereel.db.models import RequestCount

        with Session(gateway.services.engine) as session:
            row = session.exec(select(RequestCount).where(RequestCount.api_key_id == key.key_id)).one()
        assert row.requests == 3 and row.month == month_of()
