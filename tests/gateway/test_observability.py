"""JSON access logs (request id, key id, route, status, latency; no secrets, bodies only in debug mode),
Prometheus metrics, and Sentry reports of unhandled errors carrying the request id."""

from __future__ import annotations

import gzip
import json
import logging
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import sentry_sdk

from gateway.observability import JsonFormatter, init_sentry, scrub_secrets
from gateway.routes import jobs

pytestmark = pytest.mark.anyio


def access_lines(caplog) -> list[dict]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "voicereel.gateway.access"]


async def test_access_log_line_has_the_fields_and_no_secrets(gateway, caplog) -> None:
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    caplog.set_level(logging.INFO, logger="voicereel.gateway.access")
    response = await gateway.request(
        "POST", "/v1/synthesize", key, sign=True, json={"script": [{"speaker_id": speaker_id, "text": "private words"}]}
    )
    assert response.status_code == 202
    (line,) = access_lines(caplog)
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["key_id"] == key.key_id
    assert line["route"] == "/v1/synthesize" and line["method"] == "POST" and line["status"] == 202
    assert line["latency_ms"] > 0 and line["level"] == "info"
    text = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert key.key not in text and key.signing_secret not in text
    assert response.request.headers["X-VR-Signature"] not in text
    assert "private words" not in text


async def test_debug_mode_logs_bodies(gateway_factory, caplog) -> None:
    async with gateway_factory(debug=True) as gateway:
        key = gateway.new_key()
        caplog.set_level(logging.INFO, logger="voicereel.gateway.access")
        await gateway.request(
            "POST", "/v1/synthesize", key, json={"script": [{"speaker_id": "spk_x", "text": "debug words"}]}
        )
    (line,) = access_lines(caplog)
    assert "debug words" in line["body"]


async def test_route_label_is_the_template(gateway, caplog) -> None:
    key = gateway.new_key()
    caplog.set_level(logging.INFO, logger="voicereel.gateway.access")
    await gateway.request("GET", "/v1/jobs/job_00000000000000000000000000", key)
    await gateway.request("GET", "/no/such/route", None)
    routes = [line["route"] for line in access_lines(caplog)]
    assert routes == ["/v1/jobs/{job_id}", "unmatched"]


async def test_metrics(gateway) -> None:
    key = gateway.new_key()
    speaker_id = gateway.add_speaker(key)
    await gateway.request("POST", "/v1/synthesize", key, json={"script": [{"speaker_id": speaker_id, "text": "x"}]})
    await gateway.request("GET", "/v1/jobs/job_00000000000000000000000000", key)
    text = (await gateway.request("GET", "/metrics", None)).text
    assert 'voicereel_http_requests_total{method="POST",route="/v1/synthesize",status="202"} 1.0' in text
    assert 'voicereel_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="404"} 1.0' in text
    assert 'voicereel_http_request_duration_seconds_bucket{le="0.05",method="POST",route="/v1/synthesize"}' in text
    assert f'voicereel_queue_depth{{queue="{gateway.settings.queue_name}"}}' in text
    assert 'voicereel_jobs{state="queued"}' in text


async def test_metrics_token_guards_metrics(gateway_factory, error_code) -> None:
    async with gateway_factory(metrics_token="scrape-me-please") as gateway:
        bare = await gateway.request("GET", "/metrics", None)
        assert bare.status_code == 401 and error_code(bare) == "UNAUTHORIZED"
        wrong = await gateway.request("GET", "/metrics", None, headers={"Authorization": "Bearer scrape-me"})
        assert wrong.status_code == 401
        basic = await gateway.request("GET", "/metrics", None, headers={"Authorization": "Basic scrape-me-please"})
        assert basic.status_code == 401
        right = await gateway.request("GET", "/metrics", None, headers={"Authorization": "Bearer scrape-me-please"})
        assert right.status_code == 200 and "voicereel_http_requests_total" in right.text
        assert (await gateway.request("GET", "/healthz", None)).status_code == 200  # probes stay open


class _SentryIntake(BaseHTTPRequestHandler):
    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        encoding = self.headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        self.received.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def sentry_intake():
    """A local HTTP endpoint that receives what sentry-sdk sends (its real transport, no Sentry account)."""
    _SentryIntake.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SentryIntake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_address[1]}/1", _SentryIntake.received
    sentry_sdk.get_client().close()
    server.shutdown()
    server.server_close()


async def test_unhandled_errors_reach_sentry_with_the_request_id(gateway_factory, sentry_intake, monkeypatch) -> None:
    dsn, received = sentry_intake

    async def explode(*args, **kwargs):
        raise RuntimeError("boom from a test")

    monkeypatch.setattr(jobs, "read_job", explode)
    async with gateway_factory(sentry_dsn=dsn) as gateway:
        key = gateway.new_key()
        response = await gateway.request("GET", "/v1/jobs/job_00000000000000000000000000", key)
        assert response.status_code == 500
        sentry_sdk.flush(timeout=5)
    payload = b"\n".join(received).decode()
    assert "boom from a test" in payload
    assert response.headers["x-request-id"] in payload
    assert key.key not in payload


def test_no_dsn_no_sentry() -> None:
    assert init_sentry(None, "test") is False


def test_scrubber_blanks_keys_anywhere() -> None:
    key = "vr_" + "a" * 43
    secret = "vrs_" + "0" * 64
    event = {"message": f"failed with {key}", "extra": {"list": [secret, 3]}, "n": 1}
    assert scrub_secrets(event, None) == {
        "message": "failed with [redacted]",
        "extra": {"list": ["[redacted]", 3]},
        "n": 1,
    }


def test_buffered_handler_holds_info_lines_until_flushed(capfd) -> None:
    from gateway.observability import BufferedStderrHandler

    handler = BufferedStderrHandler()
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("voicereel.test.buffered")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("quiet line", extra={"route": "/x"})
        assert "quiet line" not in capfd.readouterr().err
        logger.warning("loud line")
        err = capfd.readouterr().err.splitlines()
        assert [json.loads(line)["msg"] for line in err] == ["quiet line", "loud line"]
        assert json.loads(err[0])["route"] == "/x"
    finally:
        logger.removeHandler(handler)
        handler.close()
