"""What does a warm start buy? Trials and epochs a search needs to come within 0.5% of the best
value known on the task, warm (seeded with the best configurations of an earlier search on the
same task) versus cold (the default: defaults sweep + TPE + Hyperband), over several seeds, same
process. `--pruner asha` measures both with ASHA instead.

    .venv/bin/python -m benchmarks.warm_start            # full: 2 tasks x 5 seeds x 30 trials
    .venv/bin/python -m benchmarks.warm_start --smoke    # seconds: checks that it runs
    .venv/bin/python -m benchmarks.warm_start --score A.json B.json   # saved runs, one target

The earlier search ran with another training seed (other split, init and batch order) than the
measured ones, so warm runs re-use knowledge, not replay results. Per seed, the best known value
is the best of that seed's cold and warm runs; a run that never reaches the target counts its
whole budget (censored, marked). That per-seed target depends on the variant measured (one
that finds better configurations sets itself a harder one): to compare variants, `--score`
their saved runs against one target per seed, the best any of them found.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import optuna

from benchmarks._common import corpus_held_out, save
from tuner.sampling import SearchSpace
from tuner.search import run_search
from tuner.space import TrialConfig
from tuner.spec import JobSpec, SearchSpec
from tuner.trial import TrialRecord

TASKS = [("mlp", "digits", {"hidden": [64]}), ("linear", "breast_cancer", {})]
TOLERANCE = 0.005
OUT = Path(__file__).parent / "results" / "warm_start.json"


def spec_for(model: str, dataset: str, params: dict[str, Any], *, trials: int, epochs: int,
             seed: int, warm_start: str = "none", pruner: str | None = None,
             sweep_start: str | None = None, sweep_pruning: str | None = None) -> JobSpec:
    """The service's default search; `warm_start` as a user would set it."""
    return JobSpec.model_validate({
        "task": {"model": {"name": model, "params": params}, "dataset": {"name": dataset}},
        "training": {"epochs": epochs, "seed": seed}, "budget": {"n_trials": trials},
        # Trials to the target are counted over the search; the confirmation race afterwards
        # is left out (it re-runs known configurations).
        "search": {"warm_start": warm_start, "confirm_top_k": 0,
                   **({"pruner": pruner} if pruner else {}),
                   **({"sweep_start": sweep_start} if sweep_start else {}),
                   **({"sweep_pruning": sweep_pruning} if sweep_pruning else {})}})


def best_configs(records: list[TrialRecord], direction: str, k: int = 5) -> list[TrialConfig]:
    """The best complete configuration of each of the top k families (what warm_start seeds)."""
    best: dict[str, TrialRecord] = {}
    sign = 1 if direction == "maximize" else -1
    for r in records:
        if r.state == "complete" and r.value is not None and r.optimizer and (
                r.optimizer not in best or sign * r.value > sign * (best[r.optimizer].value or 0)):
            best[r.optimizer] = r
    top = sorted(best.values(), key=lambda r: -sign * (r.value or 0))[:k]
    return [TrialConfig(str(r.optimizer), str(r.schedule), dict(r.params)) for r in top]


Curve = list[tuple[float | None, int]]  # per trial, in trial order: (value if complete, epochs)


def curve_of(records: list[TrialRecord]) -> Curve:
    return [(r.value if r.state == "complete" else None, r.epochs_run)
            for r in sorted(records, key=lambda r: r.number)]


def reach(curve: Curve, target: float, direction: str) -> tuple[int, int, bool]:
    """(trials, epochs) consumed until a complete trial reaches the target; censored flag."""
    epochs = 0
    for i, (value, run) in enumerate(curve, 1):
        epochs += run
        if value is not None and (value >= target if direction == "maximize"
                                  else value <= target):
            return i, epochs, False
    return len(curve), epochs, True


def target_of(best: float, direction: str) -> float:
    return best * (1 - TOLERANCE) if direction == "maximize" else best * (1 + TOLERANCE)


def score(paths: list[Path], out: Path) -> dict[str, Any]:
    """Saved runs (with their curves) against one target per task and seed: within 0.5% of the
    best value any of them found for that seed, cold or warm. Each run's own target is the best
    of its own seed's two searches, so a variant that finds better configurations sets itself a
    harder target; here every variant chases the same one. Runs nothing."""
    runs = {p.stem: json.loads(p.read_text()) for p in paths}
    results: dict[str, Any] = {"tolerance": TOLERANCE, "files": [str(p) for p in paths],
                               "tasks": {}}
    print(f"{'task':<22} {'run':<36} {'cold trials':>11} {'warm trials':>11}  censored c/w")
    for task in sorted(set.intersection(*(set(r["tasks"]) for r in runs.values()))):
        direction = next(iter(runs.values()))["tasks"][task]["direction"]
        pick = max if direction == "maximize" else min
        seeds = {name: {s["seed"]: s for s in r["tasks"][task]["per_seed"]}
                 for name, r in runs.items()}
        common = sorted(set.intersection(*(set(v) for v in seeds.values())))
        if any("curve" not in s[k] for v in seeds.values() for s in v.values()
               for k in ("cold", "warm")):
            raise SystemExit(f"{task}: a run was saved without its curves; run it again")
        best = {seed: pick(v for by in seeds.values() for k in ("cold", "warm")
                           for v, _ in by[seed][k]["curve"] if v is not None) for seed in common}
        results["tasks"][task] = {}
        for name, by in seeds.items():
            got = {k: [reach([(v, e) for v, e in by[seed][k]["curve"]],
                             target_of(best[seed], direction), direction) for seed in common]
                   for k in ("cold", "warm")}
            row = {k: {"trials": statistics.median(t for t, _, _ in v),
                       "epochs": statistics.median(e for _, e, _ in v),
                       "censored": sum(c for _, _, c in v)} for k, v in got.items()}
            results["tasks"][task][name] = {**row, "seeds": len(common)}
            print(f"{task:<22} {name:<36} {row['cold']['trials']:>11.1f} "
                  f"{row['warm']['trials']:>11.1f}  {row['cold']['censored']}/"
                  f"{row['warm']['censored']} of {len(common)}")
    save(out, results)
    return results


def history(task: tuple[str, str, dict[str, Any]], trials: int, epochs: int, seed: int,
            opts: dict[str, Any]) -> tuple[str, list[TrialConfig]]:
    """The earlier search on the task (training seed `seed`) and what it seeds a warm start with:
    (direction, configurations)."""
    hist = run_search(spec_for(*task, trials=trials, epochs=epochs, seed=seed, **opts))
    return hist.direction, best_configs(hist.records, hist.direction)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--history-trials", type=int, default=40)
    ap.add_argument("--pruner", default=None, help="default: the service's default pruner")
    ap.add_argument("--sweep-start", default=None,
                    help="corpus, portfolio or literature; default: the service's default")
    ap.add_argument("--sweep-pruning", default=None,
                    help="apart or pruner; default: the service's default")
    ap.add_argument("--history-per-seed", action="store_true",
                    help="a new earlier search (training seed 100 + seed) for every seed, "
                         "instead of one for all")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one task")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--score", type=Path, nargs="+", metavar="RESULT",
                    help="run nothing: score saved runs against one target per task and seed")
    a = ap.parse_args(argv)
    if a.score:
        return score(a.score, a.out)
    if a.smoke:
        a.seeds, a.trials, a.epochs, a.history_trials = 1, 4, 2, 6
    tasks = TASKS[1:] if a.smoke else TASKS
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    results: dict[str, Any] = {"tolerance": TOLERANCE, "seeds": a.seeds, "trials": a.trials,
                               "epochs": a.epochs, "history_trials": a.history_trials,
                               "pruner": a.pruner or SearchSpec().pruner,
                               "sweep_start": a.sweep_start or SearchSpec().sweep_start,
                               "sweep_pruning": a.sweep_pruning or SearchSpec().sweep_pruning,
                               "history_per_seed": a.history_per_seed,
                               "tasks": {}}
    rows = []
    opts = {"pruner": a.pruner, "sweep_start": a.sweep_start, "sweep_pruning": a.sweep_pruning}
    with corpus_held_out() as hold_out:
        for model, dataset, params in tasks:
            hold_out(dataset)  # nothing the service learns from the corpus was measured here
            task = (model, dataset, params)
            direction, seeds_cfg = history(task, a.history_trials, a.epochs, 100, opts)
            per_seed = []
            for seed in range(1, a.seeds + 1):
                if a.history_per_seed:  # the warm result is not one history search's luck
                    direction, seeds_cfg = history(task, a.history_trials, a.epochs, 100 + seed,
                                                   opts)
                spec = spec_for(model, dataset, params, trials=a.trials, epochs=a.epochs,
                                seed=seed, **opts)
                space = SearchSpace(spec.space)
                warm_params = [p for c in seeds_cfg if (p := space.optuna_params(c)) is not None]
                warm_spec = spec_for(model, dataset, params, trials=a.trials, epochs=a.epochs,
                                     seed=seed, warm_start="task", **opts)
                cold = run_search(spec, study_name=f"cold-{seed}").records
                # The seeds are given directly (what `warm_start: task` would look up in the
                # store).
                warm = run_search(warm_spec, study_name=f"warm-{seed}",
                                  seed_configs=warm_params).records
                values = [r.value for r in cold + warm
                          if r.state == "complete" and r.value is not None]
                best = max(values) if direction == "maximize" else min(values)
                target = target_of(best, direction)
                curves = {"cold": curve_of(cold), "warm": curve_of(warm)}
                got = {k: reach(v, target, direction) for k, v in curves.items()}
                per_seed.append({"seed": seed, "best_known": best, "target": target,
                                 "warm_seeds": [c.optimizer for c in seeds_cfg], **{
                    k: {"trials": t, "epochs": e, "censored": c, "curve": curves[k]}
                    for k, (t, e, c) in got.items()}})
            med = {k: {m: statistics.median(s[k][m] for s in per_seed)
                       for m in ("trials", "epochs")} for k in ("cold", "warm")}
            ratio = {m: med["warm"][m] / med["cold"][m] for m in ("trials", "epochs")}
            name = f"{model}/{dataset}"
            results["tasks"][name] = {"direction": direction, "per_seed": per_seed, "median": med,
                                      "ratio_warm_over_cold": ratio,
                                      "warm_seeds": [c.optimizer for c in seeds_cfg]}
            rows.append((name, med, ratio, per_seed))
    results["seconds"] = time.perf_counter() - t0
    print(f"{'task':<22} {'cold trials':>11} {'warm trials':>11} {'ratio':>6} "
          f"{'cold epochs':>11} {'warm epochs':>11} {'ratio':>6}  censored c/w")
    for name, med, ratio, per_seed in rows:
        cens = (sum(s["cold"]["censored"] for s in per_seed),
                sum(s["warm"]["censored"] for s in per_seed))
        print(f"{name:<22} {med['cold']['trials']:>11.1f} {med['warm']['trials']:>11.1f} "
              f"{ratio['trials']:>6.2f} {med['cold']['epochs']:>11.1f} "
              f"{med['warm']['epochs']:>11.1f} {ratio['epochs']:>6.2f}  {cens[0]}/{cens[1]}")
    save(a.out, results)
    print(f"wrote {a.out} ({results['seconds']:.0f} s)", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
