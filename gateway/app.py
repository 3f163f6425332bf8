"""The gateway application: `create_app(settings)` (uvicorn: `gateway.app:create_app`, factory=True).

Layers, outermost first: request context (request id, logs, metrics, the 500 envelope), CORS (only when origins are
configured), Starlette's exception handling (the error envelope, `gateway.errors`), the routes. Long-lived clients
are opened in the lifespan (`gateway.services.open_services`) and kept on `app.state.services`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from starlette.applications import Starlette
from starlette.middleware import Middleware

from gateway.api import Operation
from gateway.api import routes as api_routes
from gateway.cors import cors_middleware
from gateway.errors import EXCEPTION_HANDLERS
from gateway.observability import Metrics, RequestContextMiddleware, configure_logging, init_sentry
from gateway.openapi import build_openapi, openapi_routes
from gateway.routes import files, health, jobs, speakers, synthesize, usage
from gateway.services import open_services
from voicereel.settings import Settings, get_settings

OPERATIONS: list[Operation] = [
    *speakers.OPERATIONS,
    *synthesize.OPERATIONS,
    *jobs.OPERATIONS,
    *usage.OPERATIONS,
    *files.OPERATIONS,
    *health.OPERATIONS,
]


def api_version() -> str:
    try:
        return version("voicereel")
    except PackageNotFoundError:  # pragma: no cover (running from a bare checkout)
        return "0.0.0"


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    init_sentry(settings.sentry_dsn, settings.profile.value)
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings, metrics) as services:
            app.state.services = services
            yield

    routes = api_routes(OPERATIONS)
    routes += openapi_routes(build_openapi(OPERATIONS, settings, version=api_version()), settings.docs_assets_url)
    middleware = [
        Middleware(
            RequestContextMiddleware,
            metrics=metrics,
            access_log_enabled=settings.access_log,
            debug=settings.debug,
        ),
        *cors_middleware(settings),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    return app
