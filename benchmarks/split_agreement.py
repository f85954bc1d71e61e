"""Does one data split's answer hold on the task's other splits? Default jobs on each task at
several splits (`training.seed` k draws the train/validation split), each answered on its own
as the service answers it, then read across splits as the answer's `splits` reads them
(`tuner.recommend.across_splits`).

    .venv/bin/python -m benchmarks.split_agreement            # 3 tasks x 4 splits, ~1 min on 2 cores
    .venv/bin/python -m benchmarks.split_agreement --splits 8 # docs/benchmarks.md's run, ~2 min
    .venv/bin/python -m benchmarks.split_agreement --smoke    # seconds: checks it runs

Each run is a default job (30 trials, 10 epochs, the defaults sweep from the reference corpus
less every task on the run's dataset, the confirmation race) on one task and split. Per task:

- leaders: the mean count of a split's leaders, and the families leading on every split;
- first behind: of the answers (one per split), how many list first a family that another
  split shows behind (ranked outside its leaders, on a split with a noise estimate);
- winner behind: of the answers that call a `winner`, how many winners another split shows
  behind;
- start_from moved: the answers whose start_from the other splits move to another leader
  (one leading on every split, where the family listed first does not);
- held out: each split in turn is left out, the rest read across as above; of the families
  leading on every one of the rest, the share among the left-out split's leaders, against the
  same share for the family each single split lists first (is agreement across splits a better
  guide to a split never seen than one split's first place?).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks._common import job_grid_parser, run_jobs, save
from benchmarks.pruned_families import TASKS, default_job

OUT = Path(__file__).parent / "results" / "split_agreement.json"


def one_run(name: str, split: int, trials: int, epochs: int) -> dict[str, Any]:
    """One default job on `name` at split `split`, answered on its own trials."""
    _, result, said = default_job(name, split, trials, epochs)
    return {"task": name, "split": split, "verdict": said["verdict"], "leaders": said["leaders"],
            "ranking": [{"optimizer": e["optimizer"]} for e in said["ranking"]],
            "n_complete": sum(r.state == "complete" for r in result.records)}


def _across(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    from tuner.recommend import across_splits

    return across_splits([(r["split"], r["n_complete"], r) for r in runs])


def read_task(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One task's runs (one per split) read across splits, and each split held out in turn."""
    answers = [_across([r] + [o for o in runs if o is not r]) for r in runs]
    first_behind = winner_behind = moved = 0
    for r, sp in zip(runs, answers, strict=True):
        if sp is None or not r["leaders"]:
            continue
        behind = bool(sp["families"][r["leaders"][0]]["behind"])
        first_behind += behind
        winner_behind += behind and r["verdict"] == "winner"
        moved += sp["start_from"] not in (None, r["leaders"][0])
    every = answers[0]["lead_on_every_split"] if answers[0] else []
    held: dict[str, list[bool]] = {"every": [], "first": []}
    for left in runs:
        rest = [r for r in runs if r is not left]
        sp = _across(rest)
        if sp is None:
            continue
        held["every"] += [f in left["leaders"] for f in sp["lead_on_every_split"]]
        held["first"] += [r["leaders"][0] in left["leaders"] for r in rest if r["leaders"]]
    return {
        "splits": len(runs), "mean_leaders": statistics.mean(len(r["leaders"]) for r in runs),
        "lead_on_every_split": every, "first_behind": first_behind,
        "winners": sum(r["verdict"] == "winner" for r in runs), "winner_behind": winner_behind,
        "start_from_moved": moved,
        "held_out_every": [sum(held["every"]), len(held["every"])],
        "held_out_first": [sum(held["first"]), len(held["first"])],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = job_grid_parser(__doc__ or "", OUT).parse_args(argv)
    tasks = list(TASKS)
    if args.smoke:  # in this process: no worker processes forked from the test's
        tasks, args.splits, args.trials, args.epochs, args.workers = tasks[1:2], 2, 8, 3, 1
    jobs = [(t, k, args.trials, args.epochs) for t in tasks for k in range(args.splits)]
    runs = run_jobs(one_run, jobs, args.workers)
    per_task = {t: read_task([r for r in runs if r["task"] == t]) for t in tasks}
    results = {"splits": args.splits, "trials": args.trials, "epochs": args.epochs,
               "tasks": per_task, "runs": runs}
    save(args.out, results)
    print(f"{'task':<22} {'splits':>6} {'leaders':>7} {'on every split':<28} {'first behind':>12} "
          f"{'winner behind':>13} {'start moved':>11} {'held out: every':>15} "
          f"{'held out: first':>15}", file=sys.stderr)
    for t, s in per_task.items():
        he, hf = s["held_out_every"], s["held_out_first"]
        print(f"{t:<22} {s['splits']:>6} {s['mean_leaders']:>7.2f} "
              f"{', '.join(s['lead_on_every_split']) or '-':<28} "
              f"{s['first_behind']:>6} of {s['splits']:<3} {s['winner_behind']:>6} of "
              f"{s['winners']:<4} {s['start_from_moved']:>11} {he[0]:>9} of {he[1]:<3} "
              f"{hf[0]:>9} of {hf[1]:<3}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
