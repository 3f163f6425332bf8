"""infra/docker/healthcheck.py, run the way Docker and Kubernetes run it (a subprocess configured by VR_*
variables): against a real HTTP listener for the gateway, and RQ workers registered in a real Redis."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from rq import Queue, Worker
from rq.utils import utcformat

from voicereel.stack import REPO_ROOT, free_port

SCRIPT = REPO_ROOT / "infra" / "docker" / "healthcheck.py"


def probe(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("VR_")}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env={**base, "VR_PROFILE": "test", **env},
        cwd="/",  # as in the image: nothing but the installed packages on the path
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[int, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def test_gateway_probe_follows_healthz(listener: tuple[int, type[_Handler]]) -> None:
    port, handler = listener
    ok = probe("gateway", VR_PORT=str(port))
    assert ok.returncode == 0, ok.stderr
    handler.status = 503
    failing = probe("gateway", VR_PORT=str(port))
    assert failing.returncode == 1
    assert f"http://127.0.0.1:{port}/healthz answered 503" in failing.stderr


def test_gateway_probe_fails_when_nothing_listens() -> None:
    result = probe("gateway", "--timeout", "2", VR_PORT=str(free_port()))
    assert result.returncode == 1
    assert "unreachable" in result.stderr


@pytest.fixture
def rq_redis(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


def test_worker_probe_needs_a_live_worker_of_this_host(rq_redis: redis.Redis, redis_url: str) -> None:
    host = f"infra-test-{os.getpid()}"
    assert probe("worker", "--hostname", host, VR_REDIS_URL=redis_url).returncode == 1

    worker = Worker([Queue("infra-health", connection=rq_redis)], connection=rq_redis, name=f"{host}-w1")
    worker.hostname = host
    worker.register_birth()
    try:
        healthy = probe("worker", "--hostname", host, VR_REDIS_URL=redis_url)
        assert healthy.returncode == 0, healthy.stderr
        other = probe("worker", "--hostname", f"{host}-other", VR_REDIS_URL=redis_url)
        assert other.returncode == 1 and "no RQ worker registered" in other.stderr

        # A hung worker: registered, but its last heartbeat is older than the limit.
        stale = datetime.now(UTC) - timedelta(seconds=900)
        rq_redis.hset(worker.key, "last_heartbeat", utcformat(stale))
        hung = probe("worker", "--hostname", host, "--max-heartbeat-age", "480", VR_REDIS_URL=redis_url)
        assert hung.returncode == 1 and "no heartbeat within 480s" in hung.stderr
    finally:
        worker.register_death()
    gone = probe("worker", "--hostname", host, VR_REDIS_URL=redis_url)
    assert gone.returncode == 1


def test_worker_probe_fails_when_redis_is_down() -> None:
    result = probe("worker", "--timeout", "1", VR_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 1
    assert "unreachable" in result.stderr
