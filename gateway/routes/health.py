"""`GET /healthz` (the process answers), `GET /readyz` (database, Redis and Triton answer), `GET /metrics`.

Readiness only asks Triton whether it is ready (`/v2/health/ready`): the gateway never sends Triton job work.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlmodel import Session, func, select
from starlette.responses import Response

from gateway import schemas
from gateway.api import Call, Operation, Out, json_response
from gateway.services import Services
from voicereel.db.models import Job
from voicereel.errors import ErrorCode, VoiceReelError


async def healthz(call: Call) -> Response:
    return json_response(schemas.Health(status="ok"))


async def _check(probe: Callable[[], Awaitable[None]], timeout_s: float) -> schemas.Check:
    started = time.perf_counter()
    detail = None
    try:
        with anyio.fail_after(timeout_s):
            await probe()
        ok = True
    except TimeoutError:
        ok, detail = False, f"no answer within {timeout_s:g} s"
    except Exception as exc:
        ok, detail = False, f"{type(exc).__name__}: {str(exc)[:200]}"
    return schemas.Check(ok=ok, detail=detail, latency_ms=round((time.perf_counter() - started) * 1000, 2))


def readiness_probes(services: Services) -> dict[str, Callable[[], Awaitable[None]]]:
    async def database() -> None:
        def select_one(session: Session) -> None:
            session.exec(select(text("1"))).one()

        await services.db(select_one)

    async def redis() -> None:
        await services.redis.ping()

    async def triton() -> None:
        url = services.settings.triton_http_url.rstrip("/") + "/v2/health/ready"
        response = await services.http.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"Triton answered {response.status_code}")

    return {"database": database, "redis": redis, "triton": triton}


async def readyz(call: Call) -> Response:
    services = call.services
    results: dict[str, schemas.Check] = {}
    timeout = services.settings.readiness_timeout_s

    async def run(name: str, probe: Callable[[], Awaitable[None]]) -> None:
        results[name] = await _check(probe, timeout)

    async with anyio.create_task_group() as tasks:
        for name, probe in readiness_probes(services).items():
            tasks.start_soon(run, name, probe)
    ready = all(check.ok for check in results.values())
    body = schemas.Readiness(status="ready" if ready else "not_ready", checks=dict(sorted(results.items())))
    return json_response(body, 200 if ready else 503)


def jobs_by_state(session: Session) -> dict[str, int]:
    rows = session.exec(select(Job.status, func.count()).group_by(Job.status)).all()
    return {str(status): int(n) for status, n in rows}


def check_metrics_token(call: Call) -> None:
    """With VR_METRICS_TOKEN set, /metrics answers only `Authorization: Bearer <token>` (constant-time check)."""
    token = call.services.settings.metrics_token
    if token is None:
        return
    scheme, _, given = call.request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise VoiceReelError(ErrorCode.UNAUTHORIZED, "/metrics needs Authorization: Bearer <VR_METRICS_TOKEN>")


async def metrics(call: Call) -> Response:
    check_metrics_token(call)
    services = call.services
    gauges = services.metrics.scraped
    queue = services.queue
    try:
        gauges.queue_depth = {queue.name: int(await services.redis.llen(queue.key))}
    except Exception:
        gauges.queue_depth = {}
    try:
        gauges.jobs_by_state = await services.db(jobs_by_state)
    except Exception:
        gauges.jobs_by_state = {}
    payload = generate_latest(services.metrics.exposition_registry())
    return Response(payload, media_type=CONTENT_TYPE_LATEST)


OPERATIONS = [
    Operation(
        "GET",
        "/healthz",
        healthz,
        "healthz",
        "Liveness: the process answers",
        "health",
        (Out(200, schemas.Health, "Alive."),),
    ),
    Operation(
        "GET",
        "/readyz",
        readyz,
        "readyz",
        "Readiness: the database, Redis and Triton answer",
        "health",
        (
            Out(200, schemas.Readiness, "Every dependency answered."),
            Out(503, schemas.Readiness, "At least one dependency did not answer; see `checks`."),
        ),
    ),
    Operation(
        "GET",
        "/metrics",
        metrics,
        "metrics",
        "Prometheus metrics: requests by route and status, latencies, queue depth, jobs by state",
        "health",
        (Out(200, None, "Prometheus text exposition format.", media_type="text/plain"),),
        errors=(ErrorCode.UNAUTHORIZED,),
        description="Open unless `VR_METRICS_TOKEN` is set; then it needs `Authorization: Bearer <token>`.",
    ),
]
