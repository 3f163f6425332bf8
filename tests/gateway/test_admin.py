"""`python -m gateway.admin`: create a project and key (printed once), list, revoke."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis
from sqlmodel import Session, select

from gateway.auth import REVOKED_CHANNEL, hash_key
from voicereel.db.models import ApiKey, Project
from voicereel.db.session import make_engine


def admin(db_url: str, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VR_PROFILE": "test", "VR_DATABASE_URL": db_url, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "gateway.admin", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_create_key_prints_it_once_and_stores_its_hash(db_url: str, redis_url: str) -> None:
    created = admin(db_url, "create-key", "--project", "Acme Audio", "--scope", "jobs:read", "--rate-limit", "5")
    assert created.returncode == 0, created.stderr
    lines = dict(line.split(":", 1) for line in created.stdout.strip().splitlines())
    key, secret, key_id = lines["api key"].strip(), lines["signing secret"].strip(), lines["key id"].strip()
    assert key.startswith("vr_") and secret.startswith("vrs_")
    assert "shown only this once" in created.stderr
    engine = make_engine(db_url)
    with Session(engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.id == key_id)).one()
        project = session.get(Project, row.project_id)
    assert row.key_hash == hash_key(key) and row.scopes == ["jobs:read"] and row.rate_limit_per_min == 5
    assert project is not None and project.name == "Acme Audio"

    # A second key for the same project name reuses the project.
    again = admin(db_url, "create-key", "--project", "Acme Audio", "--json")
    assert again.returncode == 0
    assert '"project_created": false' in again.stdout and row.project_id in again.stdout

    listed = admin(db_url, "list-keys", "--project", "Acme Audio")
    assert key_id in listed.stdout and key not in listed.stdout and "active" in listed.stdout
    listener = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(REVOKED_CHANNEL)
    listener.get_message(timeout=1)  # the subscription confirmation
    revoked = admin(db_url, "revoke-key", key_id, VR_REDIS_URL=redis_url)
    assert revoked.returncode == 0 and "told to drop it now" in revoked.stdout
    announced = listener.get_message(timeout=5)
    listener.close()
    assert announced is not None and announced["data"] == key_id.encode()
    with Session(engine) as session:
        assert session.get(ApiKey, key_id).revoked_at is not None
    engine.dispose()
    assert admin(db_url, "revoke-key", "key_00000000000000000000000000").returncode == 1


@pytest.mark.parametrize("args", [["--scope", "root"], ["--rate-limit", "0"]])
def test_bad_options_are_refused(db_url: str, args: list[str]) -> None:
    result = admin(db_url, "create-key", "--project", "x", *args)
    assert result.returncode == 2
