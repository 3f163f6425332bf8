"""Alembic migrations, configured in code (no alembic.ini): `upgrade_database(url)` brings a database to the newest
revision. The gateway calls it at start and tests call it on SQLite and PostgreSQL.

Several processes may start at once (uvicorn workers, a worker next to the gateway), so the upgrade runs under a
lock: a PostgreSQL advisory lock, or an exclusive file lock next to a SQLite file.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from voicereel.db.session import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same in every process that migrates this database.
_PG_LOCK_ID = 0x566F6963655265


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at our migrations; `connection` is handed to env.py (URLs never go through
    configparser, which would choke on `%` in passwords)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK_ID})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        lock_path = Path(database).with_suffix(".migrate.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return
    yield


def upgrade_database(url: str, revision: str = "head") -> None:
    """Apply every migration up to `revision` (default: the newest). Safe to call from several processes."""
    engine = make_engine(url, pool_size=1)
    try:
        with _migration_lock(engine):
            if current_revision(engine) == head_revision() and revision == "head":
                return
            with engine.begin() as conn:
                command.upgrade(alembic_config(conn), revision)
    finally:
        engine.dispose()


def downgrade_database(url: str, revision: str) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        with _migration_lock(engine), engine.begin() as conn:
            command.downgrade(alembic_config(conn), revision)
    finally:
        engine.dispose()
