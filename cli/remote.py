"""Commands that talk to a server over HTTP (`tuner.client`): submit, follow, inspect, cancel,
recommend."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from cli import options as opt
from cli.common import JsonOpt, err, esc, out, print_json, user_errors
from cli.render import add_columns, digests_shown, fmt, print_job, print_recommendation, ref, task_refs


def _client() -> Any:
    from tuner.client import Client

    return Client()


@contextmanager
def _api_errors() -> Iterator[None]:
    from tuner.client import ApiError

    try:
        with user_errors():
            yield
    except ApiError as exc:
        errors = exc.body.get("errors") or []
        # Several problems: each once, on its own line (the detail joins them all in one line,
        # which printed every message twice).
        head = (f"{exc.body.get('title') or 'Bad request'}: {len(errors)} problems"
                if len(errors) > 1 else str(exc.detail))
        err.print(f"[red]error:[/red] {esc(head)}", highlight=False, markup=True)
        for e in errors:
            said = f"{e.get('field')}: {e.get('message')}"
            if said != exc.detail:  # a detail that is the one error's whole message: once
                err.print(f"  {said}", highlight=False)
        raise typer.Exit(1 if exc.status in (0, 401, 404) or exc.status >= 500 else 2) from None


def submit(
    spec: Annotated[Path | None, typer.Argument(help="Job spec (.yaml/.json).", exists=True)] = None,
    model: opt.Model = None, dataset: opt.Dataset = None, trials: opt.Trials = None,
    epochs: opt.Epochs = None, optimizers: opt.Optimizers = None, schedules: opt.Schedules = None,
    sampler: opt.Sampler = None, pruner: opt.Pruner = None, seed: opt.Seed = None,
    metric: opt.Metric = None, batch_size: opt.Batch = None, parallelism: opt.Parallel = None,
    timeout: opt.Timeout = None, baseline: opt.Baseline = False,
    baseline_runs: opt.BaselineRuns = None, splits: opt.Splits = 1,
    idempotency_key: Annotated[str | None, typer.Option()] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow progress until it ends.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job over HTTP; prints its id (--wait: follows it to the end). With --splits N,
    N jobs, the same but for training.seed (each its own data split): their ids, one a line
    (--json: a list), and with --wait each followed in turn."""
    with _api_errors():
        body = opt.spec_dict(spec, model=model, dataset=dataset, metric=metric,
                          optimizers=optimizers, schedules=schedules, epochs=epochs, seed=seed,
                          batch_size=batch_size, trials=trials, parallelism=parallelism,
                          timeout=timeout, sampler=sampler, pruner=pruner, baseline=baseline,
                          baseline_runs=baseline_runs)
        c = _client()
        jobs = [c.submit(b, key, on_reading=_reading) for b, key in _on_splits(
            body, splits, idempotency_key)]
        try:
            for note in jobs[0].get("notes") or []:  # stderr: stdout stays the id (or the JSON)
                err.print(f"[dim]note: {esc(note)}[/dim]", highlight=False, markup=True)
            if not wait:
                out_jobs: Any = jobs if splits > 1 else jobs[0]
                print_json(out_jobs) if as_json else sys.stdout.write(
                    "".join(j["id"] + "\n" for j in jobs))
                return

            def split_of(job: dict[str, Any]) -> str:
                return f" (training.seed {job['spec']['training']['seed']})" if splits > 1 else ""

            # Every split's job is submitted before the first is followed (they may run at
            # once); each said so as it was followed, the second "submitted" after the first
            # had completed.
            for job in jobs:
                err.print(f"job {job['id']} submitted{split_of(job)}", highlight=False)
            finals = []
            for job in jobs:
                if splits > 1:
                    err.print(f"following job {job['id']}{split_of(job)}", highlight=False)
                finals.append(_follow(c, job))
        except KeyboardInterrupt:  # once submitted, Ctrl-C stops the following, not the job
            ids = " ".join(j["id"] for j in jobs)
            err.print(f"stopped following job {ids}; it goes on in the service: `tuner status "
                      f"{ids}` shows it, `tuner cancel {ids}` stops it" if splits == 1 else
                      f"stopped following jobs {ids}; they go on in the service: `tuner status "
                      f"<id>` shows one, `tuner cancel <id>` stops one (`tuner jobs` lists them)",
                      highlight=False)
            raise typer.Exit(130) from None
    if as_json:
        print_json(finals if splits > 1 else finals[0])
    else:
        for final in finals:
            print_job(final)
        if done := [f for f in finals if f["status"] == "completed"]:
            # The job view ends on its best trial, the luckiest run: a job followed to its end
            # ended there, and read as the answer (on churn data: "best trial: rmsprop 0.92",
            # while the answer tied six families and AdamW at 1e-3 with cosine with them).
            _answer_in_short(c, done)
    if any(f["status"] != "completed" for f in finals):
        raise typer.Exit(1)


def _answer_in_short(c: Any, finals: list[dict[str, Any]],
                     whole: str = "the whole answer") -> None:
    """After `tuner submit --wait` and in `tuner status`: the answer about the (first
    completed) job's task, split and budget, in short (with --splits N read with the other
    splits: each split's verdict, which families lead on every one, and the untuned default
    against the answer's family on each), and where the whole answer is."""
    from cli.render import in_short, print_by_split

    with _api_errors():
        rec = c.recommend(**_asked(finals[0]))
    if rec.get("splits"):
        print_by_split(rec["splits"])
    out.print(in_short(rec), highlight=False)
    err.print(f"{whole}: `{_recommend_command(finals[0])}`", highlight=False)


def _on_splits(body: dict[str, Any], splits: int, key: str | None
               ) -> list[tuple[dict[str, Any], str | None]]:
    """The job's spec and idempotency key once per data split (`--splits`): training.seed,
    +1, +2, ..., each key suffixed with its split (`-split1`), so a resent command makes no
    job twice."""
    if splits == 1:
        return [(body, key)]
    seed = int((body.get("training") or {}).get("seed") or 0)
    return [({**body, "training": {**(body.get("training") or {}), "seed": seed + k}},
             None if key is None else f"{key}-split{k}") for k in range(splits)]


def _reading(progress: dict[str, Any]) -> None:
    """A submission on data the server reads for the first time: how far it got."""
    from tuner.digests import human_bytes

    field = progress.get("field", "the data")
    if progress.get("stage") == "loading":
        doing = (f"loading {field} to check the job against it: "
                 f"{float(progress.get('seconds') or 0):.0f} s so far")
    else:
        doing = f"reading {field} for the first time, to identify it: " + (
            "another API process is reading it" if progress.get("elsewhere") else
            f"{human_bytes(int(progress.get('read_bytes', 0)))} of "
            f"{human_bytes(int(progress.get('total_bytes', 0)))} read")
    err.print(f"[dim]the server is {esc(doing)}; the job is created when it is done[/dim]",
              highlight=False, markup=True)


def _follow(c: Any, job: dict[str, Any]) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.fields[status]}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TextColumn("{task.description}"), console=err) as bar:
        task = bar.add_task("", total=job["progress"]["n_trials"], status=job["status"])
        said = list(job.get("notes") or [])
        waiting = None

        def update(ev: dict[str, Any]) -> None:
            nonlocal said, waiting
            why = (ev.get("waiting") or {}).get("note")
            if why and why != waiting:  # why it is not running: said again when that changes
                bar.console.print(f"[yellow]waiting:[/yellow] {esc(why)}", highlight=False,
                                  markup=True)
            waiting = why
            if ev.get("notes") and ev["notes"] != said:  # the job's start ordered its sweep
                for note in ev["notes"]:
                    if note not in said:
                        bar.console.print(f"[dim]note (at the job's start): {esc(note)}[/dim]",
                                          highlight=False, markup=True)
                said = list(ev["notes"])
            p = ev["progress"]
            best = f"best {p['best_value']:.4g}" if p["best_value"] is not None else ""
            bar.update(task, completed=p["done"], status=ev["status"],
                       description=f"{p['pruned']} pruned, {p['diverged']} diverged, "
                                   f"{p['failed']} failed {best}")

        final: dict[str, Any] = c.wait(job["id"], on_progress=update)
        return final


def status(job_id: str, as_json: JsonOpt = False) -> None:
    """A job's status, progress, best trial and best per optimizer (over HTTP)."""
    with _api_errors():
        job = _client().job(job_id)
    if as_json:
        print_json(job)
        return
    print_job(job)
    if job["status"] == "completed" and job["best"]:
        # The best trial above is the luckiest run: the answer at the job's budget and split
        # follows, in short, as at the end of `tuner submit --wait` and on the job's page.
        _answer_in_short(_client(), [job], "the whole answer, with its evidence (the best trial "
                                           "is the luckiest run)")


def _asked(job: dict[str, Any]) -> dict[str, Any]:
    """The recommendation about this job's task at its budget and on its data split, as
    `Client.recommend`'s arguments (early_stopping_patience 0: without early stopping)."""
    t = job["spec"]["training"]
    return {"task": job["task"]["id"], "epochs": t["epochs"], "batch_size": t["batch_size"],
            "precision": t["precision"],
            "early_stopping_patience": t.get("early_stopping_patience") or 0,
            "training_seed": t["seed"]}


def _recommend_command(job: dict[str, Any]) -> str:
    """`_asked` as a `tuner recommend` command, the parts at their defaults (fp32, no early
    stopping) left out."""
    defaults = {"precision": "fp32", "early_stopping_patience": 0}
    return "tuner recommend" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in _asked(job).items() if defaults.get(k) != v)


def cancel(job_id: str, as_json: JsonOpt = False) -> None:
    """Cancel a job (over HTTP)."""
    with _api_errors():
        job = _client().cancel(job_id)
    print_json(job) if as_json else out.print(f"job {job_id}: {job['status']}"
                                               + (f" ({job['error']})" if job["error"] else ""))


def trials(job_id: str, as_json: JsonOpt = False,
           csv: Annotated[bool, typer.Option("--csv", help=(
               "every trial as CSV on stdout (one row per trial, parameters as "
               "param.<name> columns)"))] = False,
           parquet: Annotated[Path | None, typer.Option(
               "--parquet", help="write every trial to this Parquet file")] = None,
           state: Annotated[str | None, typer.Option(
               "--state", help="only the trials in this state: complete, pruned, diverged or "
                               "failed")] = None) -> None:
    """Every trial of a job with its state, stop reason and step, and the tracebacks of those
    that failed (over HTTP)."""
    if csv or parquet:
        with _api_errors():
            if parquet:
                parquet.write_bytes(_client().trials_table(job_id, "parquet"))
                err.print(f"wrote {parquet}")
            if csv:
                sys.stdout.write(_client().trials_table(job_id, "csv").decode())
        return
    with _api_errors():
        data = _client().trials(job_id, state=state)
    if as_json:
        print_json(data)
        return
    table = Table(title=f"Trials of {job_id} ({data['count']}"
                        f"{f' {state}' if state else ''})")
    for col in ("#", "optimizer", "schedule", "state", "stop", "step", "value", "lr"):
        table.add_column(col, no_wrap=True)
    for t in data["data"]:
        lr = next((v for k, v in t["params"].items() if k.endswith(".lr")), None)
        table.add_row(str(t["number"]), t["optimizer"] or "-", t["schedule"] or "-", t["state"],
                      t["stop_reason"] or "-", str(t["stop_step"]),
                      fmt(t["value"]) if t["value"] is not None else "-",
                      fmt(lr) if lr is not None else "-")
    out.print(table)
    print_tracebacks(data["data"], job_id)


SHOWN_TRACEBACKS = 3
TRIAL_FRAME = os.path.join("tuner", "objective.py")  # where a trial's own frames start


def rerun(job_id: str,
          number: Annotated[int, typer.Argument(metavar="TRIAL", help="the trial's number")],
          debug: Annotated[bool, typer.Option(
              "--pdb", help="where the trial raises, stop in Python's debugger")] = False,
          device: Annotated[str | None, typer.Option(
              "--device", help="auto, cpu or cuda: where to train here (default: the job's "
                               "training.device; a job on cuda reruns on a machine without a "
                               "GPU with --device cpu, its values then its own)")] = None,
          as_json: JsonOpt = False) -> None:
    """Run one trial of a job again here, to debug it or check its value: its configuration at
    the seed it ran with, on the job's data split, for the job's epochs, never pruned; the
    task's data, model and plugin code here must be the job's. A trial that raises shows its
    whole traceback (`--pdb`: and stops there in the debugger). Reads the job over HTTP; trains
    in this process."""
    import traceback

    with _api_errors():  # first: a trial that is not there is said before torch is imported
        c = _client()
        job = c.job(job_id)
        trial = c.trial(job_id, number)

    import optuna

    from tuner.config import get_settings
    from tuner.errors import DataError, SpecError
    from tuner.objective import Provenance
    from tuner.search import prepare_rerun, rerun_threads
    from tuner.space import TrialConfig
    from tuner.spec import JobSpec

    if trial["optimizer"] is None:
        err.print(f"[red]error:[/red] trial {number} of job {esc(job_id)} has no configuration "
                  f"recorded (its worker was lost before it drew one): nothing to run",
                  highlight=False, markup=True)
        raise typer.Exit(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # its log of the failure: printed below
    with user_errors():  # (a spec this release of the client reads otherwise: said, no traceback)
        spec = JobSpec.model_validate(job["spec"])
        if device is not None:
            spec = JobSpec.model_validate({**spec.model_dump(), "training": {
                **spec.training.model_dump(), "device": device}})
    seed = trial["seed"] if trial["seed"] is not None else spec.training.seed
    said = f"trial {number} of job {job_id}"
    threads = rerun_threads(spec)
    err.print(f"{said}: {trial['optimizer']} + {trial['schedule']}, seed {seed}, "
              f"{spec.training.epochs} epochs on the job's split (training.seed "
              f"{spec.training.seed}), never pruned, {threads} torch thread"
              f"{'s' if threads > 1 else ''} as its worker", highlight=False)
    with user_errors():
        task = job["task"]
        try:
            again = prepare_rerun(spec, TrialConfig(trial["optimizer"], trial["schedule"],
                                                    trial["params"]), seed,
                                  Provenance(task["data_digest"], task["model_digest"],
                                             task["code_digest"],
                                             job["budget"]["training_format"]))
        except DataError as exc:
            if "under the data root" not in str(exc):
                raise
            # Here, not in the service: this machine's paths may be said.
            raise DataError(f"{exc} here, {get_settings().data_root.resolve()} "
                            f"(TUNER_DATA_ROOT): point it at a copy of your team's data folder "
                            f"(the service reads a job's files from <its data root>/<team>/)"
                            ) from None
        except SpecError as exc:
            if exc.field != "training.device" or device is not None:
                raise
            raise SpecError("training.device", "the job trains on cuda, and this machine has "
                            "no CUDA GPU that torch can use: --device cpu reruns it on the CPU "
                            "(its values then its own)") from None
    try:
        rec = again.run()
    except Exception as exc:
        # From the trial's own frames on (Optuna's and this command's above them say nothing).
        tb = exc.__traceback__
        while tb is not None and not tb.tb_frame.f_code.co_filename.endswith(TRIAL_FRAME):
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb or exc.__traceback__)
        err.print(f"{said} raised here" + (
            f", as in the service ({trial['detail']})" if trial["state"] == "failed" else
            f"; in the service it ended {trial['state']}"), highlight=False)
        if debug:
            import pdb

            pdb.post_mortem(exc.__traceback__)
        raise typer.Exit(1) from None
    if as_json:
        print_json({"job": job_id, "trial": number, "seed": seed, "service": trial,
                    "here": rec.to_json()})
        return
    print_rerun(trial, rec.to_json(), job["task"]["metric"])


def print_rerun(service: dict[str, Any], here: dict[str, Any], metric: str) -> None:
    """A trial run again beside the service's record of it: epoch by epoch, then the outcome."""
    theirs = {s["step"]: s for s in service.get("steps") or []}
    table = Table(title=f"{metric} by epoch: here and in the service", box=box.SIMPLE)
    for col in ("epoch", "here", "service", "train_loss here", "lr here"):
        table.add_column(col, justify="right")
    for s in here["steps"]:
        other = theirs.get(s["step"], {}).get("value")
        table.add_row(str(s["step"]), fmt(s["value"]) if s["value"] is not None else "-",
                      fmt(other) if other is not None else "-",
                      fmt(s["train_loss"]) if s["train_loss"] is not None else "-",
                      fmt(s["lr"]) if s["lr"] is not None else "-")
    out.print(table)
    shared = [(s["value"], theirs[s["step"]]["value"]) for s in here["steps"]
              if s["step"] in theirs and s["value"] is not None
              and theirs[s["step"]]["value"] is not None]
    gap = max((abs(a - b) for a, b in shared), default=None)
    how = f"{here['state']}" + (f", {metric} {fmt(here['value'])}" if here["value"] is not None
                                else f": {here['detail']}" if here["detail"] else "")
    then = f"{service['state']} at epoch {service['stop_step']}" + (
        f", {metric} {fmt(service['value'])}" if service["value"] is not None else "")
    same = "" if gap is None else (
        f"; the {len(shared)} epochs both ran gave the same values" if gap == 0 else
        f"; over the {len(shared)} epochs both ran the values differ by up to {fmt(gap)} "
        f"(other hardware, thread count or library versions)")
    out.print(f"here: {how} (on {here['device']}); in the service: {then}{same}",
              highlight=False)


def print_tracebacks(trials: list[dict[str, Any]], job_id: str) -> None:
    """The failed trials' tracebacks, once per distinct traceback with the trials that raised
    it (a bug that fails every trial the same way is one traceback), the first few."""
    by_tb: dict[str, list[int]] = {}
    for t in trials:
        if t.get("traceback"):
            by_tb.setdefault(t["traceback"], []).append(t["number"])
    for tb, numbers in list(by_tb.items())[:SHOWN_TRACEBACKS]:
        who = f"trial {numbers[0]}" if len(numbers) == 1 else \
            f"trials {', '.join(map(str, numbers))}"
        out.print(f"\n[bold]{esc(who)} failed:[/bold]", highlight=False, markup=True)
        out.print(tb.rstrip(), markup=False, highlight=False)
    if (more := len(by_tb) - SHOWN_TRACEBACKS) > 0:
        out.print(f"\n{more} more traceback{'s' if more > 1 else ''}: `tuner trials {job_id} "
                  f"--state failed --json`", highlight=False)
    if by_tb:
        first = next(iter(by_tb.values()))[0]
        out.print(f"\n`tuner rerun {job_id} {first}` runs a trial again here, where the plugin "
                  f"is installed, with its whole traceback (--pdb: in the debugger)",
                  highlight=False)


def jobs(status_filter: Annotated[str | None, typer.Option("--status")] = None,
         model: Annotated[str | None, typer.Option()] = None,
         dataset: Annotated[str | None, typer.Option()] = None,
         limit: Annotated[int, typer.Option()] = 50, as_json: JsonOpt = False) -> None:
    """The team's jobs, newest first (over HTTP)."""
    with _api_errors():
        data = _client().jobs(status=status_filter, model=model, dataset=dataset, limit=limit)
    if as_json:
        print_json(data)
        return
    out.print(jobs_table(data, out.width))


def jobs_table(data: dict[str, Any], width: int) -> Table:
    """The jobs as a table whose ids, statuses and counts are never cut (an id cut to
    `ed0ba40a…` in a narrow terminal could not be copied into `tuner status`): the model and
    dataset names wrap instead; where that is still too wide for `width`, the table drops its
    frame and then the creation time."""
    for compact, created_chars in ((False, 19), (True, 19), (True, 0)):
        table = _jobs_table(data, compact, created_chars)
        cells = sum(c.min_width or 0 for c in table.columns)
        # a frame adds a rule and a space each side of every column; without, the spaces
        if cells + (2 if compact else 3) * len(table.columns) + (0 if compact else 1) <= width:
            break
    return table


def _jobs_table(data: dict[str, Any], compact: bool, created_chars: int) -> Table:
    """`compact`: without a frame; `created_chars` 0: without the creation time."""
    cols = ("id", "status", "model", "dataset", "done", "best", "created")[
        :7 if created_chars else 6]
    rows = [(j["id"], j["status"],
             *task_refs(j["task"]),
             f"{j['progress']['done']}/{j['progress']['n_trials']}",
             fmt(j["progress"]["best_value"]) if j["progress"]["best_value"] is not None else "-",
             str(j["created_at"])[:created_chars])[:len(cols)] for j in data["data"]]
    table = Table(title=f"Jobs ({data['count']})", box=None if compact else box.HEAVY_HEAD)
    add_columns(table, cols, rows, keep={"id", "status", "done", "best", "created"},
                fold={"model", "dataset"})
    for r in rows:
        table.add_row(*r)
    return table


def recommend(model: Annotated[str | None, typer.Option()] = None,
              dataset: Annotated[str | None, typer.Option()] = None,
              metric: Annotated[str | None, typer.Option()] = None,
              task: Annotated[int | None, typer.Option(help="Task id.")] = None,
              epochs: Annotated[int | None, typer.Option(help="Training budget asked about "
                                                         "(default: the latest with trials).")] = None,
              batch_size: Annotated[int | None, typer.Option()] = None,
              early_stopping_patience: Annotated[int | None, typer.Option(
                  min=0, help="Part of the budget asked about; 0: without early stopping.")
              ] = None,
              precision: Annotated[str | None, typer.Option(
                  help="Part of the budget asked about: fp32 or bf16.")] = None,
              training_seed: Annotated[int | None, typer.Option(
                  min=0, help="Part of the budget asked about: the jobs' training.seed (it "
                              "draws the data split).")] = None,
              as_json: JsonOpt = False) -> None:
    """Which optimizer is best for this task, from the team's history (over HTTP)."""
    with _api_errors():
        rec = _client().recommend(model=model, dataset=dataset, metric=metric, task=task,
                                  epochs=epochs, batch_size=batch_size,
                                  early_stopping_patience=early_stopping_patience,
                                  precision=precision, training_seed=training_seed)
    if as_json:
        print_json(rec)
        return
    print_recommendation(rec)




def tasks(answers: Annotated[bool, typer.Option(
              "--answers/--no-answers", help="Ask for each task's answer (one request each).")
          ] = True, limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
          offset: Annotated[int, typer.Option(min=0)] = 0, as_json: JsonOpt = False) -> None:
    """The team's tasks, the latest job's first, with the answer each one's history gives
    today (over HTTP)."""
    from tuner.recommend import against_default, brief

    with _api_errors():
        client = _client()
        data = client.tasks(offset=offset, limit=limit)
        rows = data["data"]
        recs: dict[int, dict[str, Any]] = {}
        if answers:  # four at a time, as /ui/tasks asks (an answer not cached is computed)
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(4) as pool:
                recs = dict(zip([t["id"] for t in rows],
                                pool.map(lambda t: client.recommend(task=t["id"]), rows),
                                strict=True))
    for t in rows:
        if t["id"] in recs:
            rec = recs[t["id"]]
            t["answer"] = {"brief": brief(rec), "against_default": against_default(rec),
                           "method": rec.get("method"),
                           "verdict": rec.get("verdict"), "leaders": rec.get("leaders"),
                           "summary": rec.get("summary")}
    if as_json:
        print_json({"data": rows, "count": data["count"], "offset": offset})
        return
    shown = (f"{offset + 1}-{offset + len(rows)} of {data['count']}"
             if len(rows) < data["count"] else str(data["count"]))
    table = Table(title=f"Tasks ({shown})")
    for col in ("id", "model", "dataset", "metric", "jobs", "trials", "latest job"):
        table.add_column(col, no_wrap=col not in ("model", "dataset"))
    if answers:
        table.add_column("answer")
        table.add_column("vs AdamW 1e-3 + cosine")

    for t in rows:
        apart = digests_shown(t, rows)
        cells = [str(t["id"]), ref(t["model"]),
                 ref(t["dataset"]) + (f" ({', '.join(apart)})" if apart else ""), t["metric"],
                 str(t["n_jobs"]), str(t["n_trials"]), str(t.get("latest_job_at") or "-")[:19]]
        table.add_row(*cells, *([t["answer"]["brief"], t["answer"]["against_default"]]
                                if answers else []))
    out.print(table)


def plot(job_id: str,
         output: Annotated[Path, typer.Option("--out", "-o", help=(
             "where to write: .png or .svg (matplotlib), or .html (a standalone page with "
             "the same interactive charts as /ui)"))] = Path("job.png")) -> None:
    """Draw a job's figures: best so far against epochs consumed, and every trial's learning
    curve coloured by family with where pruned and diverged trials stopped (over HTTP)."""
    from cli.plots import SUFFIXES, write_figures

    if output.suffix.lower() not in SUFFIXES:
        err.print(f"[red]error:[/red] --out: unknown file type "
                  f"{esc(repr(output.suffix or '(none)'))}; valid choices: {', '.join(SUFFIXES)}",
                  highlight=False, markup=True)
        raise typer.Exit(2)
    if not output.resolve().parent.is_dir():  # said before the figures are fetched
        err.print(f"[red]error:[/red] --out: no folder {esc(repr(str(output.resolve().parent)))} "
                  "to write into", highlight=False, markup=True)
        raise typer.Exit(2)
    with _api_errors():
        client = _client()
        job, figures = client.job(job_id), client.figures(job_id)
    model, dataset = task_refs(job["task"])
    title = f"{model} / {dataset}: job {job_id[:8]} ({job['status']})"
    write_figures(figures, output, title)
    err.print(f"wrote {output} ({len(figures['curves'])} trials)")
