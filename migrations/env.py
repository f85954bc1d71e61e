"""Alembic environment for the service tables only.

Optuna's tables share the database and are managed by Optuna (its own Alembic, its own
`alembic_version` table): we keep our revision in `tuner_alembic_version` and leave every table
not prefixed `tuner_` alone.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from tuner.store.db import engine_for
from tuner.store.migrate import VERSION_TABLE, include_object
from tuner.store.models import metadata


def configure(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      version_table=VERSION_TABLE, include_object=include_object,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)


def run_migrations_online() -> None:
    conn = context.config.attributes.get("connection")
    if conn is not None:
        configure(conn)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    with engine_for(url).connect() as connection:
        configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
