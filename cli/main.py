"""The `tuner` commands (typer): see `cli/__init__.py`."""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from cli.corpus import corpus_app

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


def _spec_dict(spec: Path | None, *, model: str | None, dataset: str | None,
               metric: str | None, optimizers: str | None, schedules: str | None,
               epochs: int | None, seed: int | None, batch_size: int | None, trials: int | None,
               parallelism: int | None, timeout: float | None, sampler: str | None,
               pruner: str | None) -> dict[str, Any]:
    """A spec from a file (optional) with command-line options on top; mlp on digits when
    neither names a task."""
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
    return _merge(base, updates)


# The spec options `run` and `submit` share (defined once; a spec file's values below them).
ModelOpt = Annotated[str | None, typer.Option(help="Model name (see `tuner models`).")]
DatasetOpt = Annotated[str | None, typer.Option(help="Dataset (see `tuner datasets`).")]
TrialsOpt = Annotated[int | None, typer.Option(help="Number of trials (the last quarter "
                                                    "confirms the leaders).")]
EpochsOpt = Annotated[int | None, typer.Option(help="Epochs per trial.")]
OptimizersOpt = Annotated[str | None, typer.Option(help="Comma-separated families.")]
SchedulesOpt = Annotated[str | None, typer.Option(help="Comma-separated schedules.")]
SamplerOpt = Annotated[str | None, typer.Option(help="tpe|random|cmaes|gp|qmc")]
PrunerOpt = Annotated[str | None, typer.Option(
    help="hyperband|asha|median|percentile|wilcoxon|none")]
SeedOpt = Annotated[int | None, typer.Option(help="Seed (sampler, init, split).")]
MetricOpt = Annotated[str | None, typer.Option(help="val_accuracy|val_loss|val_r2")]
BatchOpt = Annotated[int | None, typer.Option(help="Mini-batch size.")]
ParallelOpt = Annotated[int | None, typer.Option(help="Concurrent trials.")]
TimeoutOpt = Annotated[float | None, typer.Option(help="Stop after this many seconds.")]


@app.command()
def run(
    model: ModelOpt = None, dataset: DatasetOpt = None, trials: TrialsOpt = None,
    epochs: EpochsOpt = None, optimizers: OptimizersOpt = None, schedules: SchedulesOpt = None,
    sampler: SamplerOpt = None, pruner: PrunerOpt = None, seed: SeedOpt = None,
    metric: MetricOpt = None, batch_size: BatchOpt = None, parallelism: ParallelOpt = None,
    timeout: TimeoutOpt = None,
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
        job = JobSpec.model_validate(_spec_dict(
            spec, model=model, dataset=dataset, metric=metric, optimizers=optimizers,
            schedules=schedules, epochs=epochs, seed=seed, batch_size=batch_size, trials=trials,
            parallelism=parallelism, timeout=timeout, sampler=sampler, pruner=pruner))
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
app.add_typer(corpus_app, name="corpus")

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
    from tuner.store.auth import get_or_create_team
    from tuner.store.db import session_factory
    from tuner.store.jobs import create_job
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
    c = summary.get("confirmation") or {}
    if c.get("note"):
        out.print(c["note"], highlight=False)
    elif c.get("reserved"):
        out.print(f"confirmation: {c['runs']} of {c['reserved']} reserved runs so far",
                  highlight=False)
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



# admin ------------------------------------------------------------------------------------------

admin_app = typer.Typer(no_args_is_help=True, help="Teams and API keys (writes the database).")
app.add_typer(admin_app, name="admin")


@admin_app.command("create-team")
def admin_create_team(name: str, database_url: DbUrl = None) -> None:
    """Create a team (no-op when it exists)."""
    from tuner.store.auth import get_or_create_team
    from tuner.store.db import session_factory

    with session_factory(_db_url(database_url))() as s:
        team = get_or_create_team(s, name)
        s.commit()
    out.print(f"team {team.name} (id {team.id})")


@admin_app.command("create-key")
def admin_create_key(team: str, name: Annotated[str, typer.Option(help="A label.")] = "",
                     database_url: DbUrl = None) -> None:
    """Print a new API key for TEAM (shown once; only its hash is stored)."""
    from tuner.store.auth import create_api_key, get_team
    from tuner.store.db import session_factory

    with _user_errors(), session_factory(_db_url(database_url))() as s:
        key = create_api_key(s, get_team(s, team), name)
        s.commit()
    sys.stdout.write(key + "\n")


@admin_app.command("revoke-key")
def admin_revoke_key(prefix: Annotated[str, typer.Argument(help="The key, or its first 10+ "
                                                                 "characters.")],
                     database_url: DbUrl = None) -> None:
    """Revoke an API key."""
    from tuner.store.auth import revoke_key
    from tuner.store.db import session_factory

    with _user_errors(), session_factory(_db_url(database_url))() as s:
        n = revoke_key(s, prefix)
        s.commit()
    if not n:
        err.print("[red]error:[/red] no active key with that prefix")
        raise typer.Exit(1)
    out.print(f"revoked {n} key(s)")


# servers ----------------------------------------------------------------------------------------

@app.command("api")
def api_server(host: Annotated[str, typer.Option()] = "127.0.0.1",
               port: Annotated[int, typer.Option()] = 8000, database_url: DbUrl = None,
               workers: Annotated[int, typer.Option(
                   min=1, help="API processes (about one per core the API may use)")] = 1,
               ) -> None:
    """Serve the HTTP API only (deployments run the dispatcher separately)."""
    import uvicorn

    from api.app import create_app

    url = _db_url(database_url)
    if workers == 1:
        uvicorn.run(create_app(url), host=host, port=port, log_level="info")
        return
    # Several processes: uvicorn imports the app factory in each; they read the URL from the
    # environment they inherit.
    os.environ["TUNER_DATABASE_URL"] = url
    uvicorn.run("api.app:create_app", factory=True, workers=workers, host=host, port=port,
                log_level="info")


LOCAL_TEAM = "local"


def _local_key(db_url: str, server_url: str) -> tuple[str, Path, bool]:
    """The saved key for this server if the database knows it; else a new one for team `local`."""
    from tuner.client import credentials_path, save_credentials, saved_key
    from tuner.store.auth import create_api_key, get_or_create_team, team_for_key
    from tuner.store.db import session_factory

    with session_factory(db_url)() as s:
        key = saved_key(server_url)
        if key and team_for_key(s, key) is not None:
            return key, credentials_path(), False
        key = create_api_key(s, get_or_create_team(s, LOCAL_TEAM), "tuner serve")
        s.commit()
    return key, save_credentials(server_url, key), True


@app.command()
def serve(host: Annotated[str, typer.Option()] = "127.0.0.1",
          port: Annotated[int, typer.Option()] = 8000, database_url: DbUrl = None,
          num_cpus: Annotated[int | None, typer.Option(help="CPUs for the local Ray.")] = None,
          ) -> None:
    """Everything in one process: migrate, then API + dispatcher + local Ray on the database
    (SQLite file by default). Ctrl-C stops cleanly; running jobs resume at the next start."""
    import logging
    import threading

    import uvicorn

    from api.app import create_app
    from tuner.store.migrate import upgrade
    from workers.dispatcher import Dispatcher, DispatcherConfig, ensure_ray

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    url = _db_url(database_url)
    server_url = f"http://{host}:{port}"
    upgrade(url)
    _key, path, new = _local_key(url, server_url)
    err.print(f"database: {url}")
    err.print(f"API key for team '{LOCAL_TEAM}' {'created and ' if new else ''}saved in {path} "
              f"(the tuner CLI reads it; or export TUNER_API_KEY)")
    ensure_ray(None, num_cpus)
    d = Dispatcher(DispatcherConfig.from_settings(url, num_cpus=num_cpus))
    thread = threading.Thread(target=d.run, name="dispatcher", daemon=True)
    thread.start()
    err.print(f"serving {server_url} (docs at {server_url}/docs); Ctrl-C to stop")
    try:
        # Open event streams get 5 s to end, so Ctrl-C never hangs on a watching client.
        uvicorn.run(create_app(url), host=host, port=port, log_level="warning",
                    timeout_graceful_shutdown=5)
    finally:
        d.stop_event.set()
        thread.join(60)
        import ray

        ray.shutdown()
        err.print("stopped; running jobs will resume at the next start")


# HTTP client commands ----------------------------------------------------------------------------

def _client() -> Any:
    from tuner.client import Client

    return Client()


@contextmanager
def _api_errors() -> Iterator[None]:
    from tuner.client import ApiError

    try:
        with _user_errors():
            yield
    except ApiError as exc:
        err.print(f"[red]error:[/red] {exc.detail}", highlight=False)
        for e in exc.body.get("errors") or []:
            err.print(f"  {e.get('field')}: {e.get('message')}", highlight=False)
        raise typer.Exit(1 if exc.status in (0, 401, 404) or exc.status >= 500 else 2) from None


@app.command()
def submit(
    spec: Annotated[Path | None, typer.Argument(help="Job spec (.yaml/.json).", exists=True)] = None,
    model: ModelOpt = None, dataset: DatasetOpt = None, trials: TrialsOpt = None,
    epochs: EpochsOpt = None, optimizers: OptimizersOpt = None, schedules: SchedulesOpt = None,
    sampler: SamplerOpt = None, pruner: PrunerOpt = None, seed: SeedOpt = None,
    metric: MetricOpt = None, batch_size: BatchOpt = None, parallelism: ParallelOpt = None,
    timeout: TimeoutOpt = None,
    idempotency_key: Annotated[str | None, typer.Option()] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow progress until it ends.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job over HTTP; prints its id (--wait: follows it to the end)."""
    with _api_errors():
        body = _spec_dict(spec, model=model, dataset=dataset, metric=metric,
                          optimizers=optimizers, schedules=schedules, epochs=epochs, seed=seed,
                          batch_size=batch_size, trials=trials, parallelism=parallelism,
                          timeout=timeout, sampler=sampler, pruner=pruner)
        c = _client()
        job = c.submit(body, idempotency_key)
        if not wait:
            _print_json(job) if as_json else sys.stdout.write(job["id"] + "\n")
            return
        err.print(f"job {job['id']} submitted")
        final = _follow(c, job)
    if as_json:
        _print_json(final)
    else:
        print_job(final)
    if final["status"] != "completed":
        raise typer.Exit(1)


def _follow(c: Any, job: dict[str, Any]) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.fields[status]}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.description}"), console=err) as bar:
        task = bar.add_task("", total=job["progress"]["n_trials"], status=job["status"])

        def update(ev: dict[str, Any]) -> None:
            p = ev["progress"]
            best = f"best {p['best_value']:.4g}" if p["best_value"] is not None else ""
            bar.update(task, completed=p["done"], status=ev["status"],
                       description=f"{p['pruned']} pruned, {p['diverged']} diverged, "
                                   f"{p['failed']} failed {best}")

        final: dict[str, Any] = c.wait(job["id"], on_progress=update)
        return final


@app.command()
def status(job_id: str, as_json: JsonOpt = False) -> None:
    """A job's status, progress, best trial and best per optimizer (over HTTP)."""
    with _api_errors():
        job = _client().job(job_id)
    _print_json(job) if as_json else print_job(job)


@app.command()
def cancel(job_id: str, as_json: JsonOpt = False) -> None:
    """Cancel a job (over HTTP)."""
    with _api_errors():
        job = _client().cancel(job_id)
    _print_json(job) if as_json else out.print(f"job {job_id}: {job['status']}"
                                               + (f" ({job['error']})" if job["error"] else ""))


@app.command()
def trials(job_id: str, as_json: JsonOpt = False) -> None:
    """Every trial of a job with its state, stop reason and step (over HTTP)."""
    with _api_errors():
        data = _client().trials(job_id)
    if as_json:
        _print_json(data)
        return
    table = Table(title=f"Trials of {job_id} ({data['count']})")
    for col in ("#", "optimizer", "schedule", "state", "stop", "step", "value", "lr"):
        table.add_column(col, no_wrap=True)
    for t in data["data"]:
        lr = next((v for k, v in t["params"].items() if k.endswith(".lr")), None)
        table.add_row(str(t["number"]), t["optimizer"] or "-", t["schedule"] or "-", t["state"],
                      t["stop_reason"] or "-", str(t["stop_step"]),
                      _fmt(t["value"]) if t["value"] is not None else "-",
                      _fmt(lr) if lr is not None else "-")
    out.print(table)


@app.command()
def jobs(status_filter: Annotated[str | None, typer.Option("--status")] = None,
         model: Annotated[str | None, typer.Option()] = None,
         dataset: Annotated[str | None, typer.Option()] = None,
         limit: Annotated[int, typer.Option()] = 50, as_json: JsonOpt = False) -> None:
    """The team's jobs, newest first (over HTTP)."""
    with _api_errors():
        data = _client().jobs(status=status_filter, model=model, dataset=dataset, limit=limit)
    if as_json:
        _print_json(data)
        return
    table = Table(title=f"Jobs ({data['count']})")
    for col in ("id", "status", "model", "dataset", "done", "best", "created"):
        table.add_column(col, no_wrap=True)
    for j in data["data"]:
        p = j["progress"]
        table.add_row(j["id"], j["status"], j["task"]["model"], j["task"]["dataset"],
                      f"{p['done']}/{p['n_trials']}",
                      _fmt(p["best_value"]) if p["best_value"] is not None else "-",
                      str(j["created_at"])[:19])
    out.print(table)


@app.command()
def recommend(model: Annotated[str | None, typer.Option()] = None,
              dataset: Annotated[str | None, typer.Option()] = None,
              metric: Annotated[str | None, typer.Option()] = None,
              task: Annotated[int | None, typer.Option(help="Task id.")] = None,
              epochs: Annotated[int | None, typer.Option(help="Training budget asked about "
                                                         "(default: the latest with trials).")] = None,
              batch_size: Annotated[int | None, typer.Option()] = None,
              as_json: JsonOpt = False) -> None:
    """Which optimizer is best for this task, from the team's history (over HTTP)."""
    with _api_errors():
        rec = _client().recommend(model=model, dataset=dataset, metric=metric, task=task,
                                  epochs=epochs, batch_size=batch_size)
    if as_json:
        _print_json(rec)
        return
    print_recommendation(rec)


def print_recommendation(rec: dict[str, Any]) -> None:
    method = rec["method"]
    title = f"Best optimizer ({method}, {rec.get('source', '')}"
    title += f", {rec.get('metric')} {rec.get('direction')})" if method != "prior" else ")"
    table = Table(title=title)
    cols = ["rank", "optimizer", "schedule"]
    cols += {"direct": ["expected [95%]", "best", "lr decades", "B/param", "s/epoch", "trials",
                        "jobs"],
             "transfer": ["score", "from task", "lr decades", "B/param", "trials"],
             "prior": []}[method]
    cols.append("params")
    for col in cols:
        table.add_column(col, overflow="fold", no_wrap=col != "params")
    for r in rec["ranking"]:
        row = [str(r.get("rank") or "-"), r["optimizer"] + (" (tie)" if r.get("tied_with") else ""),
               r["schedule"] or "-"]
        if method == "direct":
            x = r["expected"]
            row += [f"{_fmt(x['value'])} [{_fmt(x['low'])}, {_fmt(x['high'])}]",
                    _fmt(r["best_trial_value"]), f"{r['robustness']['lr_decades']:.2f}",
                    _fmt(r["cost"]["state_bytes_per_param"]),
                    _fmt(r["cost"]["seconds_per_epoch"]), str(r["n_trials"]), str(r["n_jobs"])]
        elif method == "transfer":
            src = r["source_task"]
            row += [_fmt(r["score"]), f"{src['task_id']} ({src['similarity']:.2f})",
                    f"{r['robustness']['lr_decades']:.2f}",
                    _fmt(r["cost"]["state_bytes_per_param"]), str(r["n_trials"])]
        row.append(_params_brief(r["params"]))
        table.add_row(*row)
    out.print(table)
    for r in rec.get("not_ranked") or []:
        ev = r["evidence"]
        best = ev.get("best_intermediate_value")
        out.print(f"not ranked: {r['optimizer']}: {ev['n_trials']} trials, none complete "
                  f"(stopped by epoch {ev['max_stop_epoch']}"
                  + (f", best intermediate value {_fmt(best)})" if best is not None else ")"),
                  highlight=False)
    for key in ("summary", "explanation", "note"):
        if rec.get(key):
            out.print(("[yellow]" if key == "note" else "") + str(rec[key]), highlight=False)
    if method == "direct":
        out.print(f"noise: {rec['noise']['source']}", highlight=False)
    if rec.get("budget"):
        others = ", ".join(f"{b['epochs']} epochs/batch {b['batch_size']} "
                           f"({b['n_complete_trials']} trials)" for b in rec["other_budgets"])
        out.print(f"budget: {rec['budget']['epochs']} epochs, batch size "
                  f"{rec['budget']['batch_size']}" + (f"; also in history: {others}" if others
                                                      else ""), highlight=False)
    start = rec.get("start_from")
    if start and method != "direct":
        out.print(f"start from: {start['optimizer']} with {start['schedule']}, "
                  f"{_params_brief(start['params'])}", highlight=False)
