"""Alembic migrations on SQLite and PostgreSQL: upgrade to head, the result equals the models (no drift), down
and up again, and concurrent upgrades from several processes are safe."""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import voicereel.db.models  # noqa: F401  (tables on the metadata)
from voicereel.db.migrate import current_revision, downgrade_database, head_revision, upgrade_database
from voicereel.db.session import make_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A database with nothing in it, of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    base = str(request.getfixturevalue("postgres_url"))
    name = f"vr_mig_{uuid.uuid4().hex[:10]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def schema_drift(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(
                compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
            )
    finally:
        engine.dispose()


def test_upgrade_matches_the_models_and_round_trips(empty_db: str) -> None:
    upgrade_database(empty_db)
    engine = make_engine(empty_db)
    try:
        assert current_revision(engine) == head_revision()
        assert {"project", "apikey", "speaker", "job", "usagerecord", "requestcount"} <= set(
            inspect(engine).get_table_names()
        )
        assert schema_drift(empty_db) == []
        downgrade_database(empty_db, "base")
        assert current_revision(engine) is None
        assert "job" not in inspect(engine).get_table_names()
        upgrade_database(empty_db)
        assert current_revision(engine) == head_revision()
        upgrade_database(empty_db)  # at head already: nothing to do
    finally:
        engine.dispose()


def test_concurrent_upgrades_are_serialised(empty_db: str) -> None:
    """Several gateway workers start at once; the lock makes exactly one of them migrate."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        pool.map(upgrade_database, [empty_db] * 3)
    assert schema_drift(empty_db) == []
