"""Serving the gateway with uvicorn, from Settings: host, port, workers and TLS.

With `tls_certfile` and `tls_keyfile` set, the listener speaks TLS 1.3 only (`minimum_version = TLSv1_3`): a
client that offers at most TLS 1.2 fails the handshake. Several workers share one socket (uvicorn's
multiprocess supervisor); Prometheus then aggregates across them through PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Callable

import uvicorn

from voicereel.db.migrate import upgrade_database
from voicereel.settings import Settings


def tls13_context(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's `ssl_context_factory`: its default context (certificate, key), restricted to TLS 1.3."""
    context = default()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    return context


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    tls = settings.tls_certfile is not None and settings.tls_keyfile is not None
    return uvicorn.Config(
        "gateway.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        ssl_certfile=str(settings.tls_certfile) if tls else None,
        ssl_keyfile=str(settings.tls_keyfile) if tls else None,
        ssl_context_factory=tls13_context if tls else None,
        access_log=False,  # the gateway writes its own JSON access log
        server_header=False,
        proxy_headers=False,
        log_config=None,
        timeout_graceful_shutdown=30,
    )


def serve(settings: Settings) -> None:
    if settings.workers > 1:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="voicereel-prom-"))
        if settings.migrate_on_start:  # once, before the workers race for it (they still take the lock)
            upgrade_database(settings.effective_database_url)
    config = uvicorn_config(settings)
    server = uvicorn.Server(config)
    if config.workers > 1:
        sock = config.bind_socket()
        uvicorn.supervisors.Multiprocess(config, sockets=[sock]).run()
    else:
        server.run()
