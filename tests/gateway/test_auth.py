"""API keys: missing, malformed, wrong and revoked keys are 401; scopes are 403; another project's resources are
404; keys are stored only as hashes; the per-process cache honours revocation within its TTL."""

from __future__ import annotations

import anyio
import pytest
from sqlmodel import Session, select

from gateway.auth import (
    SCOPES,
    KeyCache,
    announce_revocation,
    hash_key,
    revoke_key,
    signing_secret_for,
)
from voicereel.db.models import ApiKey
from voicereel.db.session import session_scope

pytestmark = pytest.mark.anyio


async def test_missing_key_is_401(gateway, error_code) -> None:
    response = await gateway.request("GET", "/v1/jobs", None)
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHORIZED"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "presented",
    ["vr_" + "A" * 43, "not-a-key", "vr_short", "vr_" + "A" * 43 + "'; DROP TABLE apikey; --", ""],
)
async def test_wrong_key_is_401(gateway, error_code, presented: str) -> None:
    response = await gateway.request("GET", "/v1/jobs", None, headers={"X-VR-APIKEY": presented})
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHORIZED"


async def test_key_works_in_either_header(gateway) -> None:
    key = gateway.new_key()
    assert (await gateway.request("GET", "/v1/jobs", key)).status_code == 200
    bearer = await gateway.request("GET", "/v1/jobs", None, headers={"Authorization": f"Bearer {key.key}"})
    assert bearer.status_code == 200
    basic = await gateway.request("GET", "/v1/jobs", None, headers={"Authorization": f"Basic {key.key}"})
    assert basic.status_code == 401


async def test_revoked_key_is_401(gateway, error_code) -> None:
    key = gateway.new_key()
    assert (await gateway.request("GET", "/v1/jobs", key)).status_code == 200
    with session_scope(gateway.services.engine) as session:
        assert revoke_key(session, key.key_id)
    response = await gateway.request("GET", "/v1/jobs", key)
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHORIZED"


async def listener_ready(gateway) -> None:
    """Wait for the app's revocation listener: its subscription clears the key cache."""
    with anyio.fail_after(5):
        while gateway.services.keys.subscriptions < 1:
            await anyio.sleep(0.01)


async def test_an_announced_revocation_reaches_a_long_cache_at_once(gateway_factory, error_code) -> None:
    async with gateway_factory(api_key_cache_s=3600) as gateway:
        await listener_ready(gateway)
        key = gateway.new_key()
        assert (await gateway.request("GET", "/v1/jobs", key)).status_code == 200  # now cached for an hour
        with session_scope(gateway.services.engine) as session:
            revoke_key(session, key.key_id)
        assert announce_revocation(gateway.services.redis_sync, key.key_id)
        with anyio.fail_after(5):  # only the announcement can end the hour-long cache entry
            while (response := await gateway.request("GET", "/v1/jobs", key)).status_code == 200:
                await anyio.sleep(0.02)
        assert response.status_code == 401 and error_code(response) == "UNAUTHORIZED"


async def test_cached_key_is_refused_once_the_cache_expires(gateway_factory) -> None:
    async with gateway_factory(api_key_cache_s=0.5) as gateway:
        await listener_ready(gateway)
        key = gateway.new_key()
        assert (await gateway.request("GET", "/v1/jobs", key)).status_code == 200
        with session_scope(gateway.services.engine) as session:
            revoke_key(session, key.key_id)
        # Within the TTL the cached lookup still answers (documented: revocation takes up to api_key_cache_s) ...
        assert (await gateway.request("GET", "/v1/jobs", key)).status_code == 200
        await anyio.sleep(0.6)
        # ... and after it, the key is refused.
        assert (await gateway.request("GET", "/v1/jobs", key)).status_code == 401


async def test_scopes_are_enforced(gateway, error_code) -> None:
    reader = gateway.new_key(scopes=["jobs:read"])
    assert (await gateway.request("GET", "/v1/jobs", reader)).status_code == 200
    for method, path, kwargs in [
        ("GET", "/v1/speakers", {}),
        ("GET", "/v1/usage", {}),
        ("POST", "/v1/synthesize", {"json": {"script": [{"speaker_id": "spk_x", "text": "hi"}]}}),
        ("DELETE", "/v1/jobs/job_00000000000000000000000000", {}),
    ]:
        response = await gateway.request(method, path, reader, **kwargs)
        assert response.status_code == 403, (method, path)
        assert error_code(response) == "FORBIDDEN"


async def test_other_projects_resources_are_not_found(gateway, error_code) -> None:
    owner = gateway.new_key()
    stranger = gateway.new_key()
    speaker_id = gateway.add_speaker(owner)
    accepted = await gateway.request(
        "POST", "/v1/synthesize", owner, json={"script": [{"speaker_id": speaker_id, "text": "Hello."}]}
    )
    assert accepted.status_code == 202
    job_id = accepted.json()["job_id"]

    for method, path in [
        ("GET", f"/v1/speakers/{speaker_id}"),
        ("DELETE", f"/v1/speakers/{speaker_id}"),
        ("GET", f"/v1/jobs/{job_id}"),
        ("DELETE", f"/v1/jobs/{job_id}"),
    ]:
        response = await gateway.request(method, path, stranger)
        assert response.status_code == 404, (method, path)
        assert error_code(response) == "NOT_FOUND"
    # Using the other project's speaker in a script: also not found, never forbidden.
    response = await gateway.request(
        "POST", "/v1/synthesize", stranger, json={"script": [{"speaker_id": speaker_id, "text": "Hi."}]}
    )
    assert response.status_code == 404
    assert response.json()["error"]["details"]["speaker_ids"] == [speaker_id]
    # Lists show nothing of the other project, and the owner still sees everything.
    listing = await gateway.request("GET", "/v1/jobs", stranger)
    assert listing.json()["total"] == 0
    assert (await gateway.request("GET", f"/v1/jobs/{job_id}", owner)).status_code == 200
    assert (await gateway.request("GET", f"/v1/speakers/{speaker_id}", owner)).status_code == 200


async def test_keys_are_stored_only_as_hashes(gateway) -> None:
    key = gateway.new_key()
    assert key.key.startswith("vr_") and key.signing_secret.startswith("vrs_")
    with Session(gateway.services.engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.id == key.key_id)).one()
        stored = " ".join(str(v) for v in row.model_dump().values())
    assert row.key_hash == hash_key(key.key)
    assert key.key not in stored
    assert key.signing_secret not in stored
    assert set(row.scopes) == set(SCOPES)
    # The signing secret is derived, so the server recomputes it without having stored it.
    assert signing_secret_for(gateway.settings, key.key_id) == key.signing_secret


def test_key_cache_expires_and_forgets() -> None:
    cache = KeyCache(ttl_s=60)
    from gateway.auth import Caller

    caller = Caller("key_1", "prj_1", frozenset(), 10, 10, False)
    cache.put("h", caller)
    assert cache.get("h") is caller
    cache.forget("key_1")
    assert cache.get("h") is None
    disabled = KeyCache(ttl_s=0)
    disabled.put("h", caller)
    assert disabled.get("h") is None


async def test_listener_drops_the_cache_when_it_resubscribes(redis_url: str) -> None:
    """A revocation announced while the listener was cut off would be lost: reconnecting clears the cache."""
    import redis
    import redis.asyncio

    from gateway.auth import Caller

    name = "vr-revocation-test"
    cache = KeyCache(ttl_s=3600)
    caller = Caller("key_resubscribe", "prj_1", frozenset(), 10, 10, False)
    admin = redis.Redis.from_url(redis_url)
    listener_client = redis.asyncio.Redis.from_url(redis_url, client_name=name)

    def subscribed_listener() -> str | None:
        """The id of our listener's connection once it has subscribed (the last command it sent)."""
        for client in admin.client_list():
            if client.get("name") == name and "subscribe" in str(client.get("cmd", "")):
                return str(client["id"])
        return None

    try:
        async with cache.listening(listener_client, retry_s=0.05):
            with anyio.fail_after(5):
                while subscribed_listener() is None:
                    await anyio.sleep(0.02)
            cache.put("h", caller)
            assert cache.get("h") is caller
            admin.execute_command("CLIENT", "KILL", "ID", subscribed_listener())  # cut only our listener off
            with anyio.fail_after(5):
                while cache.get("h") is not None:
                    await anyio.sleep(0.02)
            with anyio.fail_after(5):  # and it is listening again
                while subscribed_listener() is None:
                    await anyio.sleep(0.02)
    finally:
        admin.close()
        await listener_client.aclose()
