"""Alembic environment: runs migrations on the connection `voicereel.db.migrate` hands over (online mode only)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import voicereel.db.models  # noqa: F401  (registers every table on SQLModel.metadata)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through voicereel.db.migrate (upgrade_database), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things; batch mode copies
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
