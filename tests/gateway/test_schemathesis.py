"""Schemathesis over every operation of /openapi.json, authenticated, against the gateway as deployed (uvicorn,
PostgreSQL, Redis, Triton up): no 5xx, no response outside the documented schema, statuses, content types and
headers, bad input refused, good input accepted, 405s with a correct Allow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = "20261126"


def test_schemathesis_finds_nothing(live_gateway, tmp_path: Path) -> None:
    schema = httpx.get(f"{live_gateway.url}/openapi.json").json()
    operations = sum(len(methods) for methods in schema["paths"].values())
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        f"{live_gateway.url}/openapi.json",
        "--header",
        f"X-VR-APIKEY: {live_gateway.key['api_key']}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "25",
        "--seed",
        SEED,
        "--workers",
        "2",
        "--request-timeout",
        "30",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-15000:]
    assert f"Selected: {operations}/{operations}" in output and f"Tested: {operations}" in output, output[-3000:]
