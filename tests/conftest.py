"""Shared fixtures: a fresh PostgreSQL database per test run (and per storage test), the
SQLite twin of every storage test, and one local Ray for the whole session. Under pytest-xdist
(`make test` runs two workers) each worker is a session of its own: its own RUN_ID, data root,
databases and Ray."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get("TUNER_TEST_PG_ADMIN_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
RUN_ID = uuid.uuid4().hex[:8]
_created: list[str] = []
# One data root for the session, set before Ray starts so its workers read the same folder.
DATA_ROOT = Path(tempfile.mkdtemp(prefix=f"tuner-data-{RUN_ID}-"))
os.environ["TUNER_DATA_ROOT"] = str(DATA_ROOT)


def _admin():  # type: ignore[no-untyped-def]
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def new_pg_database() -> str:
    """A new, empty database for this run; dropped at the end of the session."""
    name = f"tuner_test_{RUN_ID}_{len(_created)}"
    eng = _admin()
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    _created.append(name)
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session", autouse=True)
def _drop_pg_databases() -> Iterator[None]:
    yield
    eng = _admin()
    with eng.connect() as c:
        for name in _created:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()
    shutil.rmtree(DATA_ROOT, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend (every storage test runs on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tuner.db'}"
    return new_pg_database()


@pytest.fixture
def migrated_url(db_url: str) -> str:
    from tuner.store.migrate import upgrade

    upgrade(db_url)
    return db_url


@pytest.fixture(scope="session")
def ray_session() -> Iterator[str]:
    """One local Ray for the session; yields its address for subprocesses to join."""
    import ray

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    yield address
    ray.shutdown()


@pytest.fixture(autouse=True)
def _close_pools() -> Iterator[None]:
    """Each test's databases are new: close this process's pools after every test."""
    yield
    from tuner.store.db import dispose_engines

    dispose_engines()
