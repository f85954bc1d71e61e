"""What the command modules share: consoles, error handling, the database URL and the job
spec options of `run` and `submit`."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

# Not a terminal (pipes, CI logs): wide enough for the tables instead of 80 columns, or wider
# where COLUMNS asks for more (until 2026-12-06 a pipe was 130 columns whatever COLUMNS said,
# and the task list wrapped its answers there). A narrower COLUMNS, often exported by shells
# at 80, is not taken for a pipe.
_columns = os.environ.get("COLUMNS", "")
# Markup off: what is printed comes from the service, its trials and the team's own code (an
# error's `list[int]` lost its `[int]` as an unknown style, and a `[/x]` in a trial's detail
# stopped the CLI with a MarkupError). Our own styles are asked for by `markup=True`, around
# text passed through `esc`.
out = Console(width=None if sys.stdout.isatty() else
              max(130, int(_columns) if _columns.isdigit() else 0), markup=False)
# Errors and warnings to a pipe or a log are one line each, whatever their length.
err = Console(stderr=True, soft_wrap=not sys.stderr.isatty(), markup=False)

def esc(text: str) -> str:
    """Text from elsewhere (a trial's detail, a server's message, a path) inside our own
    markup: printed as it is."""
    return escape(text)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object (for machines).")]
DbUrl = Annotated[str | None, typer.Option(
    "--database-url", help="Default: $TUNER_DATABASE_URL or sqlite:///tuner.db.")]


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, allow_nan=False) + "\n")


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into a one-line message (no traceback) and the exit codes the
    README's table gives: 2 for what the command was given (a spec, an option, a setting), 1
    for what it could not do as given: a database out of reach (the command may work later, as
    it is) or a job, task or team that is not there (as over HTTP, where a 404 is 1)."""
    from pydantic import ValidationError
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    from tuner.errors import NotFound, TunerError
    from tuner.spec import format_validation_error
    from tuner.store.db import first_line, transient

    try:
        yield
    except ArgumentError as exc:  # a database URL SQLAlchemy cannot read (not a bug of ours)
        if not isinstance(exc, NoSuchModuleError) and "Could not parse" not in str(exc):
            raise
        err.print(f"[red]error:[/red] not a database URL this service reads ({esc(str(exc))}): "
                  "give sqlite:///path/to/file.db or postgresql://user@host:5432/name",
                  highlight=False, markup=True)
        raise typer.Exit(2) from None
    except DBAPIError as exc:
        if not transient(exc):
            raise
        err.print(f"[red]error:[/red] the database is unavailable: {esc(first_line(exc))}",
                  highlight=False, markup=True)
        raise typer.Exit(1) from None
    except ValidationError as exc:
        if exc.title == "Settings":  # the environment's TUNER_* variables, not a job spec
            wrong = "; ".join(f"TUNER_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                              for e in exc.errors())
            err.print(f"[red]error:[/red] invalid setting {esc(str(wrong))}", highlight=False,
                      markup=True)
            raise typer.Exit(2) from None
        err.print(f"[red]invalid spec[/red]\n{esc(format_validation_error(exc))}",
                  highlight=False, markup=True)
        raise typer.Exit(2) from None
    except (TunerError, ValueError) as exc:
        err.print(f"[red]error:[/red] {esc(str(exc))}", highlight=False, markup=True)
        raise typer.Exit(1 if isinstance(exc, NotFound) else 2) from None


def csv_list(value: str | None) -> list[str] | None:
    """A comma-separated option as a list; None when the option was not given. Given but
    empty (`--optimizers ''`) is an empty list, for the spec to refuse, not "every one"."""
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def load_spec_file(path: Path) -> dict[str, Any]:
    """A job spec from a .json or .yaml file."""
    import yaml

    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a job spec: {exc}") from None
    except yaml.YAMLError as exc:  # says what it expected, and where
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise ValueError(f"{path}: not valid YAML{at}: "
                         f"{getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a job spec must be a mapping")
    return data


def resolve_db_url(url: str | None) -> str:
    from tuner.config import get_settings

    return url or get_settings().database_url


def sessions(url: str | None) -> sessionmaker[Session]:
    """Sessions on the database (`--database-url`, else the configured one), once it has this
    code's tables; else `NotMigrated` says to run `tuner db upgrade` (call in `user_errors`)."""
    from tuner.store.db import session_factory
    from tuner.store.migrate import require_migrated

    resolved = resolve_db_url(url)
    require_migrated(resolved)
    return session_factory(resolved)
