"""The `tuner` command line: the composition root (it may import every layer, lazily)."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

warnings.filterwarnings("ignore", module="optuna")  # experimental-feature notices
app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Find the best optimizer, LR schedule and decay rates for a model.")
# Not a terminal (pipes, CI logs): wide enough for the tables instead of 80 columns.
out = Console(width=None if sys.stdout.isatty() else 130)
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object (for machines).")]
F = TypeVar("F", bound=Callable[..., Any])


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, allow_nan=False) + "\n")


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn library errors into a one-line message and exit code 2 (no traceback)."""
    from pydantic import ValidationError

    from tuner.errors import TunerError
    from tuner.spec import format_validation_error

    try:
        yield
    except ValidationError as exc:
        err.print(f"[red]invalid spec[/red]\n{format_validation_error(exc)}", highlight=False)
        raise typer.Exit(2) from None
    except (TunerError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def load_spec_file(path: Path) -> dict[str, Any]:
    """A job spec from a .json or .yaml file."""
    import yaml

    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a job spec must be a mapping")
    return data


def _merge(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    for key, value in updates.items():
        if isinstance(value, dict):
            merged = _merge(base.get(key) or {}, value)
            if merged:
                base[key] = merged
        elif value is not None:
            base[key] = value
    return base


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _params_brief(params: dict[str, Any]) -> str:
    return " ".join(f"{k.split('.', 1)[-1]}={_fmt(v)}" for k, v in params.items()
                    if not k.endswith("_on") or v)


def _optimizer_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for col in ("optimizer", "best", "lr", "schedule", "trials", "done", "pruned", "div", "fail"):
        table.add_column(col, no_wrap=True, min_width=4 if col != "optimizer" else 9,
                         justify="left" if col in ("optimizer", "schedule") else "right")
    for e in rows:
        b = e["best"]
        lr = next((v for k, v in b["params"].items() if k.endswith(".lr")), None) if b else None
        table.add_row(e["optimizer"], _fmt(b["value"]) if b else "-",
                      _fmt(lr) if lr is not None else "-", b["schedule"] if b else "-",
                      str(e["trials"]), str(e["complete"]), str(e["pruned"]),
                      str(e["diverged"]), str(e["failed"]))
    return table


def print_leaderboard(summary: dict[str, Any]) -> None:
    out.print(_optimizer_table(
        f"Best per optimizer ({summary['metric']}, {summary['direction']})",
        summary["by_optimizer"]))
    c = summary["counts"]
    out.print(f"trials: {c['complete']} complete, {c['pruned']} pruned, "
              f"{c['diverged']} diverged, {c['failed']} failed")
    if summary["best"]:
        b = summary["best"]
        out.print(f"[bold]best:[/bold] {b['optimizer']} + {b['schedule']} → "
                  f"{summary['metric']} = {_fmt(b['value'])}  ({_params_brief(b['params'])})")
    else:
        out.print("[yellow]no trial completed[/yellow]")


@app.command()
def run(
    model: Annotated[str | None, typer.Option(help="Model name (see `tuner models`).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset (see `tuner datasets`).")] = None,
    trials: Annotated[int | None, typer.Option(help="Number of trials.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs per trial.")] = None,
    optimizers: Annotated[str | None, typer.Option(help="Comma-separated families.")] = None,
    schedules: Annotated[str | None, typer.Option(help="Comma-separated schedules.")] = None,
    sampler: Annotated[str | None, typer.Option(help="tpe|random|cmaes|gp|qmc")] = None,
    pruner: Annotated[str | None, typer.Option(
        help="hyperband|asha|median|percentile|wilcoxon|none")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (sampler, init, split).")] = None,
    metric: Annotated[str | None, typer.Option(help="val_accuracy|val_loss|val_r2")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size.")] = None,
    parallelism: Annotated[int | None, typer.Option(help="Concurrent trials (threads).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage URL, e.g. sqlite:///local.db (default: in memory).")] = None,
    spec: Annotated[Path | None, typer.Option(
        help="Job spec file (.yaml/.json); options above override it.", exists=True)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a search in this process and print the leaderboard."""
    import optuna

    from tuner.search import run_search
    from tuner.spec import JobSpec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with _user_errors():
        base = load_spec_file(spec) if spec else {}
        base.setdefault("task", {})
        if "model" not in base["task"] and model is None:
            model = "mlp"
        if "dataset" not in base["task"] and dataset is None:
            dataset = "digits"
        updates = {
            "task": {"model": {"name": model} if model else None,
                     "dataset": {"name": dataset} if dataset else None, "metric": metric},
            "space": {"optimizers": _csv(optimizers), "schedules": _csv(schedules)},
            "training": {"epochs": epochs, "seed": seed, "batch_size": batch_size},
            "budget": {"n_trials": trials, "parallelism": parallelism, "timeout_s": timeout},
            "search": {"sampler": sampler, "pruner": pruner},
        }
        job = JobSpec.model_validate(_merge(base, updates))
        with _progress(job.budget.n_trials, quiet=False) as advance:
            result = run_search(job, storage=storage, on_trial=advance)
    summary = result.summary()
    if as_json:
        _print_json(summary)
    else:
        print_leaderboard(summary)


@contextmanager
def _progress(total: int, quiet: bool) -> Iterator[Callable[[Any], None]]:
    """A progress bar on stderr (stdout stays clean for --json)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    counts: dict[str, int] = {}
    with Progress(TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.description}"), console=err,
                  disable=quiet, transient=False) as progress:
        task = progress.add_task("", total=total)

        def advance(record: Any) -> None:
            counts[record.state] = counts.get(record.state, 0) + 1
            desc = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
            progress.update(task, advance=1, description=desc)

        yield advance


@app.command()
def space(as_json: JsonOpt = False) -> None:
    """Show the default search space: families and schedules with their parameters."""
    from tuner.space import default_space_json

    data = default_space_json()
    if as_json:
        _print_json(data)
        return
    table = Table(title="Optimizer families")
    table.add_column("family")
    table.add_column("parameters (range, default)")
    for name, f in data["optimizers"].items():
        table.add_row(name, _describe_params(f["params"]))
    out.print(table)
    table = Table(title="Schedules")
    table.add_column("schedule")
    table.add_column("parameters (range, default)")
    for name, s in data["schedules"].items():
        table.add_row(name, _describe_params(s["params"]) or "-")
    out.print(table)


def _describe_params(params: dict[str, Any]) -> str:
    parts = []
    for name, p in params.items():
        if p["kind"] == "bool":
            parts.append(f"{name} on/off ({p['default']})")
        else:
            scale = " log" if p.get("log") else ""
            parts.append(f"{name} {_fmt(p['low'])}–{_fmt(p['high'])}{scale} ({_fmt(p['default'])})")
    return "\n".join(parts)


def _registry_command(kind: str) -> Callable[[bool], None]:
    def command(as_json: JsonOpt = False) -> None:
        from tuner.registry import DATASETS, MODELS

        reg = MODELS if kind == "models" else DATASETS
        rows = [{"name": e.name, "source": e.source, "help": e.help}
                for e in sorted(reg.entries().values(), key=lambda e: e.name)]
        if as_json:
            _print_json(rows)
            return
        table = Table(title=kind.capitalize())
        for col in ("name", "source", "help"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["name"], r["source"], r["help"])
        out.print(table)

    command.__doc__ = f"List the registered {kind} (built-ins and plugins)."
    return command


# durable jobs -----------------------------------------------------------------------------------

db_app = typer.Typer(no_args_is_help=True, help="Database: migrations.")
job_app = typer.Typer(no_args_is_help=True, help="Jobs in the database (local/admin path).")
app.add_typer(db_app, name="db")
app.add_typer(job_app, name="job")

DbUrl = Annotated[str | None, typer.Option(
    "--database-url", help="Default: $TUNER_DATABASE_URL or sqlite:///tuner.db.")]


def _db_url(url: str | None) -> str:
    from tuner.config import get_settings

    return url or get_settings().database_url


@db_app.command("upgrade")
def db_upgrade(database_url: DbUrl = None) -> None:
    """Create or migrate the service tables (run once per deployment)."""
    from tuner.store.migrate import current, upgrade

    url = _db_url(database_url)
    upgrade(url)
    out.print(f"database at revision {current(url)}")


@job_app.command("create")
def job_create(
    spec_file: Annotated[Path, typer.Argument(help="Job spec (.yaml or .json).", exists=True)],
    team: Annotated[str, typer.Option(help="Team that owns the job (created if new).")] = "local",
    idempotency_key: Annotated[str | None, typer.Option(help="Same key, same job.")] = None,
    database_url: DbUrl = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a spec against real data and queue it; prints the job id."""
    from tuner.spec import JobSpec
    from tuner.store.db import session_factory
    from tuner.store.jobs import create_job, get_or_create_team
    from tuner.tasks import inspect_task

    with _user_errors():
        spec = JobSpec.model_validate(load_spec_file(spec_file))
        features = inspect_task(spec)
        with session_factory(_db_url(database_url))() as s:
            t = get_or_create_team(s, team)
            job, created = create_job(s, t.id, spec, features, idempotency_key)
    if as_json:
        _print_json({"id": job.id, "created": created, "status": job.status})
    else:
        sys.stdout.write(job.id + "\n")


@job_app.command("show")
def job_show(job_id: str, database_url: DbUrl = None, as_json: JsonOpt = False) -> None:
    """Status, progress, best trial and best per optimizer of a job."""
    from tuner.store.db import session_factory
    from tuner.store.jobs import get_job, job_summary

    with _user_errors(), session_factory(_db_url(database_url))() as s:
        summary = job_summary(s, get_job(s, job_id))
    if as_json:
        _print_json(summary)
    else:
        print_job(summary)


def print_job(summary: dict[str, Any]) -> None:
    p, t = summary["progress"], summary["task"]
    out.print(f"[bold]job {summary['id']}[/bold]  {summary['status']}"
              + (f"  ({summary['error']})" if summary["error"] else ""))
    out.print(f"task: {t['model']} on {t['dataset']}, {t['metric']} ({t['direction']})")
    out.print(f"progress: {p['done']}/{p['n_trials']} done ({p['complete']} complete, "
              f"{p['pruned']} pruned, {p['diverged']} diverged), {p['failed']} failed, "
              f"{p['running']} running")
    out.print(_optimizer_table("Best per optimizer", summary["by_optimizer"]))
    if summary["best"]:
        b = summary["best"]
        out.print(f"[bold]best:[/bold] trial {b['number']}: {b['optimizer']} + {b['schedule']} "
                  f"→ {_fmt(b['value'])}  ({_params_brief(b['params'])})")


@app.command()
def dispatcher(
    once: Annotated[bool, typer.Option("--once", help="Drain the queue, then exit.")] = False,
    database_url: DbUrl = None,
    ray_address: Annotated[str | None, typer.Option(
        help="Join this Ray cluster (default: $RAY_ADDRESS, else a local Ray).")] = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs for a local Ray.")] = None,
) -> None:
    """Claim queued jobs and run their trials on Ray (until stopped, or --once)."""
    import logging
    import signal

    from workers.dispatcher import Dispatcher, DispatcherConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    d = Dispatcher(DispatcherConfig.from_settings(_db_url(database_url), ray_address=ray_address,
                                                  num_cpus=num_cpus))
    signal.signal(signal.SIGTERM, lambda *_: d.stop_event.set())
    try:
        ran = d.run(once=once)
    except KeyboardInterrupt:
        d.stop_event.set()
        ran = d.jobs_run
    err.print(f"dispatcher {d.config.owner} ran {len(ran)} job(s)")


app.command("models")(_registry_command("models"))
app.command("datasets")(_registry_command("datasets"))


if __name__ == "__main__":  # pragma: no cover
    app()
