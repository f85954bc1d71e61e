"""Commands that work in this process, without a server: `run`, `space`, `models`, `datasets`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from cli import options as opt
from cli.common import JsonOpt, err, esc, out, print_json, user_errors
from cli.render import describe_params, print_leaderboard, print_run_answer

if TYPE_CHECKING:
    from tuner.search import SearchResult


def run(
    spec_file: Annotated[Path | None, typer.Argument(
        metavar="SPEC", help="Job spec (.yaml/.json), as `tuner submit` takes it.",
        exists=True)] = None,
    model: opt.Model = None, dataset: opt.Dataset = None, trials: opt.Trials = None,
    epochs: opt.Epochs = None, optimizers: opt.Optimizers = None, schedules: opt.Schedules = None,
    sampler: opt.Sampler = None, pruner: opt.Pruner = None, seed: opt.Seed = None,
    metric: opt.Metric = None, batch_size: opt.Batch = None, parallelism: opt.Parallel = None,
    timeout: opt.Timeout = None, baseline: opt.Baseline = False,
    baseline_runs: opt.BaselineRuns = None, splits: opt.RunSplits = 1,
    storage: Annotated[str | None, typer.Option(
        help="Optuna storage URL, e.g. sqlite:///local.db (default: in memory).")] = None,
    spec: Annotated[Path | None, typer.Option(
        help="Job spec file (.yaml/.json), as SPEC; options above override it.",
        exists=True)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a search in this process and print the leaderboard. With --splits N, N searches
    one after another, each on its own data split, and the answer read across them. Ctrl-C
    stops it and prints what the trials that ended show (exit code 130)."""
    import optuna

    from tuner.search import run_search
    from tuner.spec import JobSpec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if spec_file is not None and spec is not None and spec_file != spec:
        err.print(f"[red]error:[/red] two spec files: {esc(str(spec_file))} and --spec "
                  f"{esc(str(spec))}; give one", highlight=False, markup=True)
        raise typer.Exit(2)
    spec = spec or spec_file
    with user_errors(), _failures_logged_once():
        job = JobSpec.model_validate(opt.spec_dict(
            spec, model=model, dataset=dataset, metric=metric, optimizers=optimizers,
            schedules=schedules, epochs=epochs, seed=seed, batch_size=batch_size, trials=trials,
            parallelism=parallelism, timeout=timeout, sampler=sampler, pruner=pruner,
            baseline=baseline, baseline_runs=baseline_runs))
        results = []
        stopped = None  # what a Ctrl-C cut, in words
        try:
            for k in range(splits):
                one = job.model_copy(update={"training": job.training.model_copy(
                    update={"seed": job.training.seed + k})})
                if splits > 1:
                    err.print(f"[bold]data split {k + 1} of {splits}[/bold] (training.seed "
                              f"{one.training.seed})", highlight=False, markup=True)
                # The notes and the bar once the data is loaded and fits the spec (a refusal
                # first).
                with _progress(one.budget.n_trials) as (start, advance):
                    results.append(run_search(one, storage=storage, on_trial=advance,
                                              on_start=start, stop_on_interrupt=True))
                for note in results[-1].late_notes:  # what the trials showed
                    err.print(f"note: {esc(note)}", highlight=False, markup=True)
                if results[-1].interrupted:
                    where = f" during data split {k + 1} of {splits}" if splits > 1 else ""
                    stopped = (f"stopped by Ctrl-C{where}: what follows is judged on the "
                               f"{len(results[-1].records)} trials that ended"
                               + (" (and the splits before it)" if k else "")
                               + "; a trial cut short is dropped")
                    break
        except KeyboardInterrupt:  # outside a search's trials (loading its data, say)
            if not results:
                err.print("stopped by Ctrl-C before any trial ended", highlight=False)
                raise typer.Exit(130) from None
            stopped = (f"stopped by Ctrl-C before data split {len(results) + 1} of {splits} "
                       f"began: what follows is judged on the {len(results)} that ended")
    if stopped:  # said first; what ended is judged as any search's trials are
        err.print(stopped, highlight=False)
    _print_results(results, splits, as_json)
    if stopped:
        raise typer.Exit(130)


def _print_results(results: list[SearchResult], splits: int, as_json: bool) -> None:
    """`run`'s output: one search's leaderboard and answer, or with --splits each split's
    leaderboard, then the first split's answer read with the others."""
    from tuner.results import answer_across_splits

    summaries = [r.summary(alone=splits == 1) for r in results]
    if splits == 1:
        print_json(summaries[0]) if as_json else print_leaderboard(summaries[0])
        return
    first = results[0]
    across = answer_across_splits([(r.budget["training_seed"], r.records) for r in results],
                                  first.direction, first.metric, first.budget, first.no_skill)
    if as_json:  # each split's search and own answer, then the answer read across them
        print_json({"splits": summaries, "answer": across})
        return
    for s, r in zip(summaries, results, strict=True):
        out.print(f"[bold]data split training.seed {r.budget['training_seed']}[/bold]",
                  highlight=False, markup=True)
        print_leaderboard({**s, "answer": None})
    print_run_answer(across, first.metric)


class _FailureLog(logging.Handler):
    """Optuna's log on stderr, where it logs each failed trial with its parameters and the
    error's traceback, then again "failed with value None": a plugin's bug that fails every
    trial printed its traceback once per trial. The first trial failing with an error keeps its
    traceback; a later one with the same error is one line, and the second message is dropped.
    Written to the `sys.stderr` of the moment (the progress bar's, while it shows)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("[%(levelname)1.1s %(asctime)s] %(message)s"))
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if " failed with value " in text:
            return
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C: `run` says it stopped, in a line
            return
        if exc is not None and " failed with parameters" in text:
            error = f"{type(exc).__name__}: {exc}"
            if error in self.seen:
                record = logging.makeLogRecord({**record.__dict__, "exc_info": None,
                                                "exc_text": None, "args": (),
                                                "msg": f"{text.split(' with parameters')[0]}: "
                                                       f"{error} (as above)"})
            self.seen.add(error)
        sys.stderr.write(self.format(record) + "\n")


@contextmanager
def _failures_logged_once() -> Iterator[None]:
    """Optuna's own handler replaced by `_FailureLog` for the command."""
    import optuna

    handler = _FailureLog()
    optuna.logging.disable_default_handler()
    logging.getLogger("optuna").addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger("optuna").removeHandler(handler)
        optuna.logging.enable_default_handler()


@contextmanager
def _progress(total: int) -> Iterator[tuple[Callable[[list[str]], None], Callable[[Any], None]]]:
    """A progress bar on stderr (stdout stays clean for --json): `start(notes)` prints the
    job's notes and shows the bar, `advance(record)` counts a finished trial."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    counts: dict[str, int] = {}
    progress = Progress(TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.description}"), console=err,
                        transient=False)
    task = progress.add_task("", total=total)

    started = False

    def start(notes: list[str]) -> None:
        nonlocal started
        for note in notes:
            err.print(f"[dim]note: {esc(note)}[/dim]", markup=True)
        progress.start()
        started = True

    def advance(record: Any) -> None:
        counts[record.state] = counts.get(record.state, 0) + 1
        desc = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        progress.update(task, advance=1, description=desc)

    try:
        yield start, advance
    finally:
        if started:  # a bar never shown is not stopped: that would print an empty line
            progress.stop()


def space(as_json: JsonOpt = False) -> None:
    """Show the default search space: families and schedules with their parameters."""
    from tuner.space import default_space_json

    data = default_space_json()
    if as_json:
        print_json(data)
        return
    table = Table(title="Optimizer families")
    table.add_column("family")
    table.add_column("parameters (range, default)")
    for name, f in data["optimizers"].items():
        table.add_row(name, describe_params(f["params"]))
    out.print(table)
    table = Table(title="Schedules")
    table.add_column("schedule")
    table.add_column("parameters (range, default)")
    for name, s in data["schedules"].items():
        table.add_row(name, describe_params(s["params"]) or "-")
    out.print(table)


def registry_command(kind: str) -> Callable[[bool], None]:
    def command(as_json: JsonOpt = False) -> None:
        from tuner.registry import DATASETS, MODELS

        reg = MODELS if kind == "models" else DATASETS
        rows = [{"name": e.name, "source": e.source, "help": e.help}
                for e in sorted(reg.entries().values(), key=lambda e: e.name)]
        if as_json:
            print_json(rows)
            return
        table = Table(title=kind.capitalize())
        for col in ("name", "source", "help"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["name"], r["source"], r["help"])
        out.print(table)

    command.__doc__ = f"List the registered {kind} (built-ins and plugins)."
    return command


