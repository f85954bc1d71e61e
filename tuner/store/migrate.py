"""Run the service's Alembic migrations (`tuner db upgrade`)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, make_url

from tuner.errors import TunerError
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


class NotMigrated(TunerError):
    """The database has no service tables, or older ones than this code reads."""


@cache
def _scripts() -> ScriptDirectory:
    """The migrations this code ships (read from disk once per process)."""
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def head() -> str:
    """The revision this code's tables are at (the latest migration it ships)."""
    revision = _scripts().get_current_head()
    assert revision is not None
    return revision


def _known(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def _revision(conn: Connection) -> str | None:
    """The revision of the service tables behind `conn` (None: there are none)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}
                                      ).get_current_revision()


def schema_problem(conn: Connection, url: str) -> str | None:
    """What keeps this code from using the database behind `conn`, in words for its operator:
    no service tables, or tables older than this code's; None when they are this code's or
    newer (a database migrated by a newer release: migrations only add, so older code goes on
    running during a rolling deploy)."""
    at = _revision(conn)
    where = make_url(normalize_url(url)).render_as_string(hide_password=True)
    if at is None:
        return f"the database {where} has no service tables yet: run `tuner db upgrade`"
    if at != head() and _known(at):
        return (f"the database {where} is at revision {at}, older than this version of the "
                f"service (it reads revision {head()}): run `tuner db upgrade`")
    return None


def require_migrated(url: str) -> None:
    """Raise `NotMigrated`, saying what to run, unless the database has this code's tables."""
    from tuner.store.db import engine_for

    with engine_for(url).connect() as conn:
        problem = schema_problem(conn, url)
    if problem:
        raise NotMigrated(problem)


def current(url: str) -> str | None:
    from tuner.store.db import engine_for

    with engine_for(url).connect() as conn:
        return _revision(conn)
