"""Request ids, JSON logs, Prometheus metrics and Sentry reporting.

`RequestContextMiddleware` is the outermost layer of the app: it gives every request an id (`X-Request-ID`, taken
from the caller when it is a sane token), times it, counts it by route template and status, writes one JSON log
line, and turns anything unhandled into the 500 envelope (reported to Sentry with the request id) instead of a
stack trace. Log lines never carry secrets; request bodies appear only in debug mode.
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import unhandled_error_response
from voicereel.ids import new_id

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
key_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("key_id", default=None)

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
access_log = logging.getLogger("voicereel.gateway.access")
log = logging.getLogger("voicereel.gateway")


# --- logging ----------------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id and key id of the request being served, if any."""

    _STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Lines logged while serving a request carry its ids (the access line passes them explicitly).
        request_id, key_id = request_id_var.get(), key_id_var.get()
        if request_id:
            out["request_id"] = request_id
        if key_id:
            out["key_id"] = key_id
        for name, value in record.__dict__.items():
            if name not in self._STANDARD and not name.startswith("_"):
                out[name] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class BufferedStderrHandler(logging.StreamHandler):
    """JSON lines to stderr through a 64 KiB buffer. Python's own stderr flushes at every newline, a write system
    call per request at high request rates; here info lines wait for `flush_logs` (twice a second, from the app's
    lifespan) or a full buffer, while warnings and errors are written at once."""

    def __init__(self) -> None:
        stream = io.TextIOWrapper(
            os.fdopen(os.dup(sys.stderr.fileno()), "wb", buffering=64 * 1024), encoding="utf-8", errors="replace"
        )
        super().__init__(stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            if record.levelno >= logging.WARNING:
                self.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        try:
            self.flush()
            self.stream.close()
        finally:
            super().close()


def flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BufferedStderrHandler):
            handler.flush()


def configure_logging(level: str) -> None:
    """JSON lines on stderr for our loggers and uvicorn's (uvicorn's own access log is replaced by ours).
    Adds one handler to the root logger, once; handlers others installed (test capture, say) stay."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = BufferedStderrHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


# --- metrics ----------------------------------------------------------------------------------------------


class Metrics:
    """The gateway's Prometheus metrics, on a registry of their own (one per app, so tests can build many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "voicereel_http_requests",
            "HTTP requests served, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "voicereel_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response, by route template and method.",
            ["route", "method"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
            registry=self.registry,
        )
        self.scraped = ScrapeTimeGauges()
        self.registry.register(self.scraped)

    def exposition_registry(self) -> CollectorRegistry:
        """With PROMETHEUS_MULTIPROC_DIR set (several uvicorn workers), sum every worker's files."""
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return self.registry
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(self.scraped)
        return registry


class ScrapeTimeGauges(Collector):
    """Queue depth and jobs by state, read from Redis and the database by /metrics just before it renders."""

    def __init__(self) -> None:
        self.queue_depth: dict[str, int] = {}
        self.jobs_by_state: dict[str, int] = {}

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depth = GaugeMetricFamily("voicereel_queue_depth", "Jobs waiting in the RQ queue.", labels=["queue"])
        for queue, value in self.queue_depth.items():
            depth.add_metric([queue], value)
        yield depth
        jobs = GaugeMetricFamily("voicereel_jobs", "Jobs in the database by state.", labels=["state"])
        for state, value in self.jobs_by_state.items():
            jobs.add_metric([state], value)
        yield jobs

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


# --- sentry -----------------------------------------------------------------------------------------------


def init_sentry(dsn: str | None, environment: str) -> bool:
    """Report unhandled errors when a DSN is set. No automatic integrations: we capture in one place, with the
    request id, and send no request data (bodies, headers with keys) along."""
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        default_integrations=False,
        auto_enabling_integrations=False,
        include_local_variables=False,  # frames' locals hold requests, headers and keys
        max_request_body_size="never",
        traces_sample_rate=0.0,
        before_send=scrub_secrets,
    )
    return True


_SECRET = re.compile(r"vrs?_[A-Za-z0-9_-]{40,}")


def scrub_secrets(event: Any, _hint: Any) -> Any:
    """Last line of defence: blank anything shaped like an API key or signing secret anywhere in the event."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return _SECRET.sub("[redacted]", value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(event)


def report_exception(exc: BaseException, request_id: str, route: str) -> None:
    try:
        import sentry_sdk
    except ImportError:  # pragma: no cover
        return
    if not sentry_sdk.is_initialized():
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("request_id", request_id)
        scope.set_tag("route", route)
        key_id = key_id_var.get()
        if key_id:
            scope.set_tag("key_id", key_id)
        sentry_sdk.capture_exception(exc)


# --- the middleware ---------------------------------------------------------------------------------------


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, access_log_enabled: bool = True, debug: bool = False):
        self.app = app
        self.metrics = metrics
        self.access_log_enabled = access_log_enabled
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming_request_id(scope) or new_id("req")
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        rid_token = request_id_var.set(request_id)
        key_token = key_id_var.set(None)
        status = 500
        response_started = False
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        body_log = _BodyLog(receive) if self.debug else None
        try:
            await self.app(scope, body_log.receive if body_log else receive, send_with_id)
        except Exception as exc:
            route = state.get("route", "unmatched")
            log.exception("unhandled error", extra={"route": route})
            report_exception(exc, request_id, route)
            if response_started:
                raise  # the status line is gone; uvicorn closes the connection
            status = 500
            await unhandled_error_response(request_id)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = state.get("route", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            if self.access_log_enabled:
                extra: dict[str, Any] = {
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "status": status,
                    "latency_ms": round(elapsed * 1000, 2),
                    "client": (scope.get("client") or ("", 0))[0],
                }
                if state.get("key_id"):
                    extra["key_id"] = state["key_id"]
                if body_log is not None:
                    extra["body"] = body_log.text()
                access_log.info("request", extra=extra)
            key_id_var.reset(key_token)
            request_id_var.reset(rid_token)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _REQUEST_ID_OK.match(text) else None
    return None


class _BodyLog:
    """Debug mode only: keeps the first 4 KiB of the request body for the access log line."""

    LIMIT = 4096

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._chunks: list[bytes] = []
        self._size = 0

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request" and self._size < self.LIMIT:
            chunk = message.get("body", b"")[: self.LIMIT - self._size]
            self._chunks.append(chunk)
            self._size += len(chunk)
        return message

    def text(self) -> str:
        return b"".join(self._chunks).decode("utf-8", errors="replace")
