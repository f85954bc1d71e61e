"""`tuner corpus`: build and inspect the reference corpus (tuner.corpus)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

corpus_app = typer.Typer(no_args_is_help=True,
                         help="The reference corpus: every family tuned on a suite of built-in "
                              "tasks, read by every team's recommendations.")


@corpus_app.command("build")
def corpus_build(
    out: Annotated[Path | None, typer.Option(help="Where to write it (default: the shipped "
                                                  "file, tuner/data/reference_corpus.json).")] = None,
    tasks: Annotated[str | None, typer.Option(help="Comma-separated suite task ids "
                                                   "(default: all).")] = None,
    trials_per_family: Annotated[int, typer.Option(min=1, max=100)] = 8,
    confirm_seeds: Annotated[int, typer.Option(min=1, max=20)] = 3,
    processes: Annotated[int, typer.Option(min=1, max=64)] = 2,
) -> None:
    """Tune every family with an equal budget on each suite task, then confirm each family's
    best configuration over new seeds; write the corpus file."""
    from cli.common import csv_list, err, user_errors
    from cli.common import out as console
    from tuner.corpus import PATH, build

    names = csv_list(tasks)
    target = out or PATH
    with user_errors():
        raw = build(target, tasks=names, trials_per_family=trials_per_family,
                    confirm_seeds=confirm_seeds, processes=processes,
                    progress=lambda n, s: err.print(f"{n} done ({s:.0f} s)", highlight=False))
    console.print(f"wrote {target}: {len(raw['tasks'])} tasks, "
                  f"{sum(len(t['trials']) for t in raw['tasks'])} complete trials, "
                  f"{raw['built']['seconds']:.0f} s", highlight=False)


@corpus_app.command("annotate")
def corpus_annotate(
    path: Annotated[Path | None, typer.Option("--file", help="The corpus file (default: the "
                                                             "shipped one).")] = None,
) -> None:
    """Fill in, for each task that lacks it, what a model that ignores its inputs scores on
    its validation set (from the data alone, no training): what a transfer answer reads to say
    that a similar task's families learned nothing. `build` writes it; this brings an older
    file up to date."""
    from cli.common import out as console
    from cli.common import user_errors
    from tuner.corpus import PATH, annotate

    target = path or PATH
    with user_errors():
        filled = annotate(target)
    for task, value in filled:
        console.print(f"{task}: no skill " + ("- (no such figure for its metric)"
                                              if value is None else f"{value:.4g}"),
                      highlight=False)
    console.print(f"{target}: {len(filled)} tasks annotated" if filled else
                  f"{target}: every task already has its no-skill value", highlight=False)


@corpus_app.command("show")
def corpus_show() -> None:
    """The corpus's tasks with their leading families and verdicts."""
    from cli.common import out as console
    from tuner.corpus import load

    corpus = load()
    if corpus is None:
        console.print("no reference corpus (run `tuner corpus build`)")
        raise typer.Exit(1)
    table = Table(title=f"Reference corpus ({len(corpus.tasks)} tasks, {corpus.digest})")
    for col in ("task", "model/dataset", "epochs", "batch", "verdict", "leaders", "value",
                "no skill"):
        table.add_column(col)
    for t in corpus.tasks:
        r = t.ranking()
        top = r["ranking"][0] if r["ranking"] else None
        blind = r.get("no_skill")
        table.add_row(t.id, t.name, str(t.features["epochs"]), str(t.features["batch_size"]),
                      str(r["verdict"]), ", ".join(r["leaders"]),
                      f"{top['expected']['value']:.4g}" if top else "-",
                      f"{blind['value']:.4g} ({blind['verdict']})" if blind else "-")
    console.print(table)


@corpus_app.command("starts")
def corpus_starts(
    kind: Annotated[str, typer.Option(
        "--kind", help="`corpus`: each family's best mean score, best first (the default "
                       "sweep); `portfolio`: chosen together to cover the corpus's tasks.")]
    = "corpus",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
) -> None:
    """Where the defaults sweep starts each family (`search.sweep_start`), in the sweep's
    order."""
    import json

    from cli.common import err, esc
    from cli.common import out as console
    from tuner.corpus import START_KINDS, load, sweep_starts

    if kind not in START_KINDS:
        err.print(f"[red]error:[/red] --kind: unknown start kind {esc(repr(kind))}; valid "
                  f"choices: {', '.join(START_KINDS)}", highlight=False, markup=True)
        raise typer.Exit(2)
    corpus = load()
    starts = sweep_starts(corpus, kind)
    if json_out:
        print(json.dumps([{"optimizer": s.optimizer, "schedule": s.schedule, "params": s.params,
                           "score": s.score, "tasks": s.tasks, "cover": s.cover}
                          for s in starts], indent=2))
        return
    if corpus is None:
        console.print("no reference corpus: the sweep starts at literature defaults")
        raise typer.Exit(1)
    table = Table(title=f"Defaults sweep starts, {kind} (mean score over {len(corpus.tasks)} "
                        f"tasks: 0 = a task's worst trial, 1 = its best)")
    columns = ["family", "schedule", "parameters", "score", "finished on"]
    for col in columns + (["best so far"] if kind == "portfolio" else []):
        table.add_column(col)
    for s in starts:
        params = ", ".join(f"{k.split('.', 1)[1]}={v:.3g}" if isinstance(v, float)
                           else f"{k.split('.', 1)[1]}={v}" for k, v in s.params.items())
        row = [s.optimizer, s.schedule, params, f"{s.score:.3f}",
               f"{s.tasks}/{len(corpus.tasks)}"]
        table.add_row(*row, *([f"{s.cover:.3f}"] if s.cover is not None else []))
    console.print(table)
