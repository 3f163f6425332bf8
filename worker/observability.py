"""Logging and Sentry for the worker processes. Sentry is on only when `sentry_dsn` is set; the RQ integration
reports exceptions that escape job functions, and `capture_exception` reports the ones the worker handles."""

from __future__ import annotations

import logging

from voicereel.settings import Settings

_sentry_on = False


def setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )


def setup_sentry(settings: Settings, component: str = "worker") -> bool:
    global _sentry_on
    if not settings.sentry_dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.rq import RqIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        integrations=[RqIntegration()],
        environment=str(settings.profile),
        server_name=component,
        send_default_pii=False,
    )
    _sentry_on = True
    return True


def capture_exception(exc: BaseException) -> None:
    if _sentry_on:
        import sentry_sdk

        sentry_sdk.capture_exception(exc)
