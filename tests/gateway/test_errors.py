"""The error envelope everywhere: unknown routes, wrong methods, bugs (500 without a stack trace), and
X-Request-ID on every response."""

from __future__ import annotations

import pytest

from gateway.routes import jobs

pytestmark = pytest.mark.anyio


async def test_unknown_route_and_wrong_method(gateway, error_code) -> None:
    missing = await gateway.request("GET", "/v2/nothing", None)
    assert missing.status_code == 404 and error_code(missing) == "NOT_FOUND"
    wrong = await gateway.request("PUT", "/v1/jobs", None)
    assert wrong.status_code == 405 and error_code(wrong) == "INVALID_INPUT"
    assert wrong.headers["allow"]


async def test_request_id_is_generated_or_echoed(gateway) -> None:
    generated = await gateway.request("GET", "/healthz", None)
    assert generated.headers["x-request-id"].startswith("req_")
    echoed = await gateway.request("GET", "/healthz", None, headers={"X-Request-ID": "client-trace-0001"})
    assert echoed.headers["x-request-id"] == "client-trace-0001"
    # Anything that is not a sane token is replaced, never reflected.
    for bad in ["short", "has space in it", "x" * 200, "<script>alert(1)</script>"]:
        response = await gateway.request("GET", "/healthz", None, headers={"X-Request-ID": bad})
        assert response.headers["x-request-id"].startswith("req_")


async def test_a_bug_is_a_500_envelope_without_details(gateway, error_code, monkeypatch) -> None:
    async def explode(*args, **kwargs):
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(jobs, "read_job", explode)
    key = gateway.new_key()
    response = await gateway.request("GET", "/v1/jobs/job_00000000000000000000000000", key)
    assert response.status_code == 500
    assert error_code(response) == "INTERNAL_ERROR"
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert response.json()["error"]["details"] == {}


async def test_every_response_has_a_request_id(gateway) -> None:
    key = gateway.new_key()
    for method, path, k in [
        ("GET", "/healthz", None),
        ("GET", "/openapi.json", None),
        ("GET", "/docs", None),
        ("GET", "/metrics", None),
        ("GET", "/v1/jobs", key),
        ("GET", "/v1/jobs", None),
        ("POST", "/v1/synthesize", key),
        ("DELETE", "/v1/speakers/x", key),
        ("GET", "/nope", None),
    ]:
        response = await gateway.request(method, path, k)
        assert response.headers.get("x-request-id"), (method, path)
