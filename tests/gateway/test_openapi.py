"""The OpenAPI document: 3.1, valid, generated from the code, covering every endpoint of DESIGN §3 with its
errors and headers; Swagger UI at /docs. And the gateway's import closure stays free of the engine."""

from __future__ import annotations

import subprocess
import sys

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.anyio

DESIGN_ENDPOINTS = {
    ("post", "/v1/speakers"),
    ("get", "/v1/speakers"),
    ("get", "/v1/speakers/{speaker_id}"),
    ("delete", "/v1/speakers/{speaker_id}"),
    ("post", "/v1/synthesize"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{job_id}"),
    ("delete", "/v1/jobs/{job_id}"),
    ("get", "/v1/usage"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
}


async def test_document_is_valid_openapi_31_with_every_endpoint(gateway) -> None:
    response = await gateway.request("GET", "/openapi.json", None)
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"] == "3.1.0"
    validate(doc)
    operations = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert operations >= DESIGN_ENDPOINTS
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["operationId"] and op["summary"], (method, path)
            for status, resp in op["responses"].items():
                assert resp["headers"]["X-Request-ID"]["required"] is True, (method, path, status)
                if status.startswith(("4", "5")) and path != "/readyz":  # /readyz 503 is its own report
                    assert resp["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorEnvelope")
            if op["security"]:
                assert {"401", "403", "429"} <= set(op["responses"]), (method, path)


async def test_document_says_what_this_deployment_accepts(gateway_factory) -> None:
    async with gateway_factory(max_line_chars=300, languages=["ko", "en"]) as gateway:
        doc = (await gateway.request("GET", "/openapi.json", None)).json()
    schemas = doc["components"]["schemas"]
    assert schemas["ScriptLine"]["properties"]["text"]["maxLength"] == 300
    form = doc["paths"]["/v1/speakers"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["lang"]["enum"] == ["ko", "en"]
    assert form["required"] == ["name", "lang", "reference_script", "reference_audio"]
    assert schemas["SynthesisRequest"]["then"]["properties"]["sample_rate"]["enum"] == [8000, 16000, 24000, 48000]


async def test_docs_page(gateway) -> None:
    response = await gateway.request("GET", "/docs", None)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text and "swagger-ui" in response.text


def test_gateway_imports_neither_torch_nor_the_triton_client() -> None:
    code = (
        "import sys, gateway.app, gateway.__main__, gateway.admin; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tritonclient', 'fish_speech')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
