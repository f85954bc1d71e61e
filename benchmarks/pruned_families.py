"""What did pruning hide? The families a job's answer leaves unranked because every trial of
theirs was pruned, each run to the end again (`tuner rerun`'s path: `tuner.search.prepare_rerun`,
same configuration, seed and split, never pruned), against the answer's leader.

    .venv/bin/python -m benchmarks.pruned_families            # 3 tasks x 4 splits, ~5 min on 2 cores
    .venv/bin/python -m benchmarks.pruned_families --smoke    # seconds: checks it runs

Each run is a default job (30 trials, 10 epochs, the defaults sweep from the reference corpus
less every task on the run's dataset, the confirmation race) on one task and split
(`training.seed` k). The answer lists a family none of whose trials completed as `not_ranked`,
saying where it stood against the leader at the epoch it was stopped, and flags it `may_lead`
when its value so far was as good as the leader's then. For each such family with a pruned
trial, its best pruned trial (the best value at its stop) is trained to the end, and its final
value is compared with the leader's expected value and 95% interval:

- reached: the final value is at least the interval's worse end (it would have been in the
  leader's tie, or ahead of it, had it been run to the end on this seed);
- ahead: the final value is better than the leader's expected value;
- flagged: of those that reached, how many the answer had flagged `may_lead`;
- behind at stop: the families the answer said were behind the leader's best configuration at
  the epoch they were stopped (not `level_at_stop`), and how many of them reached.

One run to the end is one seed: a family that reached on it is not shown to be as good (the
leader's value is a mean over its runs), only not shown to be worse.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._common import corpus_held_out, job_grid_parser, run_jobs, save
from benchmarks.recommendation_quality import signed

if TYPE_CHECKING:
    from tuner.search import SearchResult
    from tuner.spec import JobSpec

OUT = Path(__file__).parent / "results" / "pruned_families.json"
TASKS = {
    "mlp/digits": {"model": {"name": "mlp"}, "dataset": {"name": "digits"}},
    "linear/breast_cancer": {"model": {"name": "linear"}, "dataset": {"name": "breast_cancer"}},
    "linear/digits": {"model": {"name": "linear"}, "dataset": {"name": "digits"}},
}


def default_job(name: str, split: int, trials: int, epochs: int
                ) -> tuple[JobSpec, SearchResult, dict[str, Any]]:
    """A default job on `name` at split `split` (the reference corpus less every task on its
    dataset), with its answer on its own trials."""
    from tuner.results import answer
    from tuner.search import run_search
    from tuner.spec import JobSpec

    spec = JobSpec.model_validate({"task": TASKS[name],
                                   "training": {"epochs": epochs, "seed": split},
                                   "budget": {"n_trials": trials}})
    with corpus_held_out() as hold_out:
        hold_out(TASKS[name]["dataset"]["name"])
        result = run_search(spec)
    return spec, result, answer(result.records, result.direction, result.metric)


def one_run(name: str, split: int, trials: int, epochs: int) -> dict[str, Any]:
    """One default job on `name` at split `split`; each pruned-only family run to the end."""
    from tuner.search import prepare_rerun
    from tuner.space import TrialConfig

    spec, result, said = default_job(name, split, trials, epochs)
    sign = signed(result.direction)
    lead = said["ranking"][0]
    worse_end = lead["expected"]["low"] if sign > 0 else lead["expected"]["high"]
    families = []
    for entry in said["not_ranked"]:
        pruned = [r for r in result.records if r.optimizer == entry["optimizer"]
                  and r.state == "pruned" and r.value is not None]
        if not pruned:
            continue  # diverged or failed only: nothing to run on
        best = max(pruned, key=lambda r: sign * (r.value or 0.0))
        rec = prepare_rerun(spec, TrialConfig(best.optimizer or "", best.schedule or "constant",
                                              best.params), best.seed or 0).run()
        final = rec.value if rec.state == "complete" else None
        families.append({
            "optimizer": entry["optimizer"], "trial": best.number, "stop_step": best.stop_step,
            "value_at_stop": best.value, "final": final, "state_here": rec.state,
            "may_lead": entry["may_lead"], "level_at_stop": entry.get("level_at_stop"),
            "leader_at_stop": entry.get("leader_at_stop"),
            "reached": final is not None and sign * (final - worse_end) >= 0,
            "ahead": final is not None and sign * (final - lead["expected"]["value"]) > 0})
    return {"task": name, "split": split, "leader": lead["optimizer"],
            "leader_expected": lead["expected"], "verdict": said["verdict"],
            "n_ranked": len(said["ranking"]), "families": families}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = job_grid_parser(__doc__ or "", OUT).parse_args(argv)
    tasks = list(TASKS)
    if args.smoke:
        tasks, args.splits, args.trials, args.epochs = tasks[1:2], 1, 8, 3
    jobs = [(t, k, args.trials, args.epochs) for t in tasks for k in range(args.splits)]
    runs = run_jobs(one_run, jobs, args.workers)
    per_task: dict[str, Any] = {}
    for t in tasks:
        fams = [f for r in runs if r["task"] == t for f in r["families"]]
        reached = [f for f in fams if f["reached"]]
        per_task[t] = {
            "runs": sum(r["task"] == t for r in runs),
            "pruned_only_families": len(fams),
            "reached": len(reached), "ahead": sum(f["ahead"] for f in fams),
            "flagged_of_reached": sum(f["may_lead"] for f in reached),
            "flagged": sum(f["may_lead"] for f in fams),
            # the answer said these were behind the leader at the epoch they were stopped
            "behind_at_stop": len(behind := [f for f in fams if f["leader_at_stop"]
                                             and not f["level_at_stop"]]),
            "behind_at_stop_reached": sum(f["reached"] for f in behind),
            "median_ranked": statistics.median(r["n_ranked"] for r in runs if r["task"] == t),
        }
    results = {"splits": args.splits, "trials": args.trials, "epochs": args.epochs,
               "tasks": per_task, "runs": runs}
    save(args.out, results)
    print(f"{'task':<22} {'runs':>4} {'ranked':>6} {'pruned-only':>11} {'reached':>7} "
          f"{'ahead':>5} {'flagged (of reached)':>20} {'behind at stop (reached)':>24}",
          file=sys.stderr)
    for t, s in per_task.items():
        print(f"{t:<22} {s['runs']:>4} {s['median_ranked']:>6} {s['pruned_only_families']:>11} "
              f"{s['reached']:>7} {s['ahead']:>5} "
              f"{s['flagged']:>12} ({s['flagged_of_reached']}) "
              f"{s['behind_at_stop']:>16} ({s['behind_at_stop_reached']})", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
