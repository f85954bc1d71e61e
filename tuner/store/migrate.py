"""Run the service's Alembic migrations (`tuner db upgrade`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from tuner.store.db import normalize_url
from tuner.store.models import PREFIX

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
# Optuna keeps its own revision in `alembic_version`; ours lives apart.
VERSION_TABLE = "tuner_alembic_version"


def include_object(obj: Any, name: str | None, type_: str, reflected: bool,
                   compare_to: Any) -> bool:
    """Only the service's tables (prefixed `tuner_`) are ours to migrate."""
    if type_ == "table":
        return bool(name and name.startswith(PREFIX) and name != VERSION_TABLE)
    table = getattr(obj, "table", None)
    return table is None or str(table.name).startswith(PREFIX)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the service tables to `revision`. Run once per deployment (the migrate step),
    never from workers."""
    command.upgrade(alembic_config(url), revision)
    # Optuna's tables too, here and only here: workers and dispatchers open the storage with
    # skip_table_creation, so many processes never race to create them.
    import optuna

    optuna.storages.RDBStorage(normalize_url(url)).remove_session()


class NotMigrated(RuntimeError):
    def __init__(self, url: str) -> None:
        super().__init__(f"the database {url} has no service tables yet: run `tuner db upgrade`")


def require_migrated(url: str) -> None:
    if current(url) is None:
        raise NotMigrated(url)


def current(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from tuner.store.db import engine_for

    with engine_for(url).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()
