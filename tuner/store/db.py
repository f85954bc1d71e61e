"""Engines and sessions for PostgreSQL and SQLite, units of work, and a retry for transient
database errors.

Commit policy of `tuner.store`:
- a store function that is a whole unit of work by itself (create, claim, renew, finish a job;
  record a trial; cache an answer) commits before it returns, or rolls back and raises;
- a function that is a step of a larger unit (`auth`'s functions, `upsert_task`,
  `refresh_counters`) only flushes, and says so; the caller runs the unit in `transaction()`;
- readers never write;
- callers outside the store that change rows themselves use `transaction()` (or
  `in_transaction()`, which also retries the whole unit on a transient error).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

import tenacity
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tuner.metrics import DB_RETRIES

log = logging.getLogger(__name__)
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 5000


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def normalize_url(url: str) -> str:
    """Use psycopg 3 for `postgresql://` URLs (what people type), and make a relative SQLite
    path absolute: workers run in other directories and must open the same file."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:" and not path.startswith("file:"):
            return "sqlite:///" + os.path.abspath(path)
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.removeprefix("postgres://")
    if not url.startswith(("sqlite:", "postgresql+psycopg:")):
        shown = f"{url.split('://', maxsplit=1)[0]}://…" if "://" in url else "without a scheme"
        raise ValueError(f"database URL {shown}: the service keeps its tables in SQLite "
                         "(sqlite:///path/to/file.db) or PostgreSQL "
                         "(postgresql://user@host:5432/name)")
    return url


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine with the settings each backend needs for several processes at once."""
    url = normalize_url(url)
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size)


_engines: dict[str, Engine] = {}


@cache
def _cached_engine(url: str) -> Engine:
    from tuner.config import get_settings

    engine = make_engine(url, pool_size=get_settings().db_pool_size)
    _engines[url] = engine
    return engine


def engine_for(url: str) -> Engine:
    """One engine per URL per process."""
    return _cached_engine(normalize_url(url))


def dispose_engines() -> None:
    """Close every pooled connection of this process (long-lived Ray workers call it after each
    job, so pools never pile up on the database)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _cached_engine.cache_clear()


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work (as Optuna's `_create_scoped_session`): a new session, committed when
    the block ends, rolled back when it raises, always closed."""
    with sessions() as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise


def in_transaction(sessions: sessionmaker[Session], fn: Callable[[Session], T], *,
                   what: str) -> T:
    """`fn(session)` as one unit of work, retried whole on transient errors (so `fn` must be
    idempotent)."""
    def once() -> T:
        with transaction(sessions) as s:
            return fn(s)

    return with_retries(once, what=what)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what caused it, in order (bounded: Optuna and SQLAlchemy wrap errors twice)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


# What SQLite and PostgreSQL say when a table or column the code reads is not there: the
# database was never migrated, or is older than the code (SQLite raises these as
# OperationalError, the class it also uses for "database is locked").
_SQLITE_SCHEMA = ("no such table", "no such column", "has no column named")
_PG_SCHEMA = ("UndefinedTable", "UndefinedColumn")


def schema_missing(exc: BaseException) -> bool:
    """The error is a table or column missing: no retry brings it back, `tuner db upgrade`
    does."""
    for seen in _causes(exc):
        module, name = type(seen).__module__, type(seen).__name__
        if module.startswith("sqlite3") and any(m in str(seen) for m in _SQLITE_SCHEMA):
            return True
        if module.startswith("psycopg") and name in _PG_SCHEMA:
            return True
    return False


def first_line(exc: BaseException) -> str:
    """The first line of what the database driver said (SQLAlchemy adds its SQL and a link)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def transient(exc: BaseException) -> bool:
    """A database error worth retrying: connection lost, refused or reset by the server, database
    locked, a serialization failure; also when wrapped (Optuna raises `StorageInternalError`
    from the SQLAlchemy error). A missing table or column is not (`schema_missing`)."""
    if schema_missing(exc):
        return False
    for seen in _causes(exc):
        if isinstance(seen, OperationalError):
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        if type(seen).__module__.startswith(("psycopg", "sqlite3")) and \
                type(seen).__name__ in ("OperationalError", "AdminShutdown", "SerializationFailure",
                                        "DeadlockDetected", "ConnectionTimeout"):
            return True
    return False


def with_retries(fn: Callable[[], T], *, attempts: int = 8, base_delay: float = 0.2,
                 max_delay: float = 5.0, what: str = "database write") -> T:
    """Call `fn` (one whole transaction) until it succeeds, backing off (exponential, with
    jitter) on transient errors; other errors are raised at once. `fn` must be idempotent: a
    commit whose reply was lost is retried."""
    def warn(state: tenacity.RetryCallState) -> None:
        DB_RETRIES.inc()
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s failed (attempt %d/%d, retrying in %.1fs): %s", what,
                    state.attempt_number, attempts, state.upcoming_sleep,
                    str(exc).splitlines()[0] if exc else "")

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=base_delay, max=max_delay)
        + tenacity.wait_random(0, base_delay),
        retry=tenacity.retry_if_exception(transient), before_sleep=warn, reraise=True)
    return retrying(fn)
