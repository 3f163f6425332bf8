"""CORS only for configured origins; credentials never together with a wildcard."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-vr-apikey,content-type"}


async def test_no_origins_no_cors(gateway) -> None:
    response = await gateway.request("GET", "/healthz", None, headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_configured_origin_with_credentials(gateway_factory, error_code) -> None:
    async with gateway_factory(cors_origins=["https://app.example"]) as gateway:
        allowed = await gateway.request(
            "OPTIONS", "/v1/synthesize", None, headers={"Origin": "https://app.example", **PREFLIGHT}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        assert "x-vr-apikey" in allowed.headers["access-control-allow-headers"].lower()
        denied = await gateway.request(
            "OPTIONS", "/v1/synthesize", None, headers={"Origin": "https://evil.example", **PREFLIGHT}
        )
        assert denied.status_code == 403
        assert error_code(denied) == "FORBIDDEN" and "origin" in denied.json()["error"]["message"]
        assert "access-control-allow-origin" not in denied.headers
        simple = await gateway.request("GET", "/healthz", None, headers={"Origin": "https://app.example"})
        assert simple.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


async def test_wildcard_never_allows_credentials(gateway_factory) -> None:
    async with gateway_factory(cors_origins=["*"]) as gateway:
        response = await gateway.request("GET", "/healthz", None, headers={"Origin": "https://any.example"})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
