"""/healthz answers while the process lives; /readyz reports the database, Redis and Triton."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def test_healthz(gateway) -> None:
    response = await gateway.request("GET", "/healthz", None)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_names_what_is_down(gateway) -> None:
    """Triton's URL points at a closed port in these settings: not ready, and the report says why."""
    response = await gateway.request("GET", "/readyz", None)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert not body["checks"]["triton"]["ok"] and body["checks"]["triton"]["detail"]


async def test_readyz_with_everything_up(gateway_factory, triton) -> None:
    async with gateway_factory(triton_http_url=triton.http_url) as gateway:
        response = await gateway.request("GET", "/readyz", None)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
    assert all(check["ok"] for check in response.json()["checks"].values())


async def test_readyz_reports_a_lost_database(gateway_factory, tmp_path) -> None:
    async with gateway_factory(database_url=f"sqlite:///{tmp_path}/db.sqlite") as gateway:
        (tmp_path / "db.sqlite").unlink()
        (tmp_path / "db.sqlite").mkdir()  # the file is gone and cannot be recreated
        gateway.services.engine.dispose()
        response = await gateway.request("GET", "/readyz", None)
    assert response.status_code == 503
    assert not response.json()["checks"]["database"]["ok"]
