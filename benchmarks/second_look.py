"""Second looks: what the confirmation race learns when it first runs to the end each family
stopped early while level with the leader (`search.second_look`, the default), against the
race alone (`second_look: false`), on the same jobs.

    .venv/bin/python -m benchmarks.second_look            # 3 tasks x 4 splits x 2 arms, ~10 min
    .venv/bin/python -m benchmarks.second_look --smoke    # seconds: checks it runs

Each job is a default one (30 trials, 10 epochs; the defaults sweep from the reference corpus
less every task on the run's dataset; the confirmation race with its 7 reserved runs) on one
task and data split, run in one process with one trial at a time and one study name for both
arms (a trial's Hyperband bracket is a hash of the two), so both arms run the same search trial
for trial and differ only in how the reserved runs are spent. From each job's
answer on its own trials:

- ranked: families with a complete trial (the answer can place them);
- unresolved: families with no complete trial that the answer could not place behind the
  leader (stopped while level with or ahead of its best configuration at that epoch, or within
  its interval: "a complete run would tell");
- looked: families given a second look; of them, those that ended among the leaders (the
  family the race had no complete run of was as good as the best found), and first (the
  answer's first-listed family);
- leaders: the answer's leading group (fewer: a sharper answer; the race has fewer runs left
  for the leaders when it takes second looks).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks._common import corpus_held_out, job_grid_parser, run_jobs, save

OUT = Path(__file__).parent / "results" / "second_look.json"
TASKS = {
    "mlp/diabetes": {"model": {"name": "mlp"}, "dataset": {"name": "diabetes"}},
    "linear/breast_cancer": {"model": {"name": "linear"}, "dataset": {"name": "breast_cancer"}},
    "mlp/digits": {"model": {"name": "mlp"}, "dataset": {"name": "digits"}},
}
ARMS = {"second_look": True, "race_only": False}


def one_job(name: str, split: int, trials: int, epochs: int, arm: str) -> dict[str, Any]:
    from tuner.results import answer
    from tuner.search import run_search
    from tuner.spec import JobSpec

    spec = JobSpec.model_validate({"task": TASKS[name],
                                   "training": {"epochs": epochs, "seed": split},
                                   "budget": {"n_trials": trials},
                                   "search": {"second_look": ARMS[arm]}})
    with corpus_held_out() as hold_out:
        hold_out(TASKS[name]["dataset"]["name"])
        # one study name for both arms: the same Hyperband brackets (a trial's bracket is a
        # hash of the study's name and its number), so the same search trial for trial
        result = run_search(spec, study_name=f"second-look-{name}-{split}")
    said = answer(result.records, result.direction, result.metric)
    looked = [r.optimizer for r in result.records
              if r.confirm_of is not None and r.confirm_of in
              {p.number for p in result.records if p.state != "complete"}]
    leaders = list(said.get("leaders") or [])
    ranked = [e["optimizer"] for e in said.get("ranking") or [] if e.get("expected") is not None]
    unresolved = [n["optimizer"] for n in said.get("not_ranked") or []
                  if n.get("may_lead") or n.get("level_at_stop")]
    return {"task": name, "split": split, "arm": arm, "verdict": said.get("verdict"),
            "first": said["ranking"][0]["optimizer"] if said.get("ranking") else None,
            "leaders": leaders, "ranked": ranked, "n_ranked": len(ranked),
            "unresolved": unresolved, "looked": looked,
            "looked_leading": [f for f in looked if f in leaders],
            "epochs_trained": sum(r.stop_step or 0 for r in result.records)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = job_grid_parser(__doc__ or "", OUT).parse_args(argv)
    tasks = list(TASKS)
    if args.smoke:
        # in this process: no worker processes forked from the test's
        tasks, args.splits, args.trials, args.epochs, args.workers = tasks[:1], 1, 12, 3, 1
    jobs = [(t, k, args.trials, args.epochs, arm) for t in tasks for k in range(args.splits)
            for arm in ARMS]
    runs = run_jobs(one_job, jobs, args.workers)
    summary: dict[str, Any] = {}
    for t in tasks:
        for arm in ARMS:
            mine = [r for r in runs if r["task"] == t and r["arm"] == arm]
            summary[f"{t} {arm}"] = {
                "jobs": len(mine),
                "median_ranked": statistics.median(r["n_ranked"] for r in mine),
                "unresolved": sum(len(r["unresolved"]) for r in mine),
                "looked": sum(len(r["looked"]) for r in mine),
                "looked_leading": sum(len(r["looked_leading"]) for r in mine),
                "looked_first": sum(r["first"] in r["looked"] for r in mine),
                "median_leaders": statistics.median(len(r["leaders"]) for r in mine),
                "winners": sum(r["verdict"] == "winner" for r in mine),
                "epochs_trained": sum(r["epochs_trained"] for r in mine),
            }
    results = {"splits": args.splits, "trials": args.trials, "epochs": args.epochs,
               "summary": summary, "runs": runs}
    save(args.out, results)
    print(f"{'task and arm':<34} {'jobs':>4} {'ranked':>6} {'unresolved':>10} {'looked':>6} "
          f"{'leading':>7} {'first':>5} {'leaders':>7} {'winners':>7} {'epochs':>6}",
          file=sys.stderr)
    for k, s in summary.items():
        print(f"{k:<34} {s['jobs']:>4} {s['median_ranked']:>6} {s['unresolved']:>10} "
              f"{s['looked']:>6} {s['looked_leading']:>7} {s['looked_first']:>5} "
              f"{s['median_leaders']:>7} {s['winners']:>7} {s['epochs_trained']:>6}",
              file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
