"""Unexpected worker errors reach Sentry when a DSN is set: a fake Sentry (a local HTTP server) receives the event.
Run in a child process, so the test process keeps no global Sentry client."""

import gzip
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from voicereel.stack import REPO_ROOT

CHILD = """
import sys
from voicereel.settings import Settings
from worker.observability import capture_exception, setup_sentry
import sentry_sdk
settings = Settings(_env_file=None, profile="test", sentry_dsn=sys.argv[1])
assert setup_sentry(settings)
try:
    raise RuntimeError("worker-boom-4711")
except RuntimeError as exc:
    capture_exception(exc)
sentry_sdk.flush(timeout=10)
assert not setup_sentry(Settings(_env_file=None, profile="test"))  # no DSN: off
"""


def test_errors_are_sent_to_sentry() -> None:
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            bodies.append(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dsn = f"http://publickey@127.0.0.1:{server.server_port}/42"
        done = subprocess.run(
            [sys.executable, "-c", CHILD, dsn], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
    finally:
        server.shutdown()
        server.server_close()
    assert any(b"worker-boom-4711" in body for body in bodies), bodies
