"""Does following the service's advice beat what practitioners do anyway? Leave one task out
over the reference corpus (tuner/data/reference_corpus.json, `tuner corpus build`).

    .venv/bin/python -m benchmarks.recommendation_quality           # every corpus task
    .venv/bin/python -m benchmarks.recommendation_quality --smoke   # seconds: checks it runs

For each held-out task:
- the oracle is every family tuned with an equal budget (the corpus's search), each family's
  best configuration re-run over 3 new seeds; the oracle's value of a family is that 3-seed mean
  (fresh seeds, so not inflated by the selection), its best is the best family's;
- the advice comes from the *other* tasks only: what a new team would be told for this task
  (`transfer` from the corpus less this task);
- regret = the oracle's best minus the value reached (for losses, the value minus the best),
  also normalised by the oracle's spread (best minus worst family) so tasks of different scales
  can share a median: 0 = as good as the best family, 1 = as bad as the worst.

Methods:
  (a) advice_family    the recommended family, tuned with the corpus's fixed small budget
  (b) advice_config    the recommended configuration (family, schedule, lr, decay rates from the
                       nearest tasks) used as is, 3 seeds
  adamw_1e-3_cosine    always AdamW, lr 1e-3, cosine (3 seeds)
  adam_defaults        always Adam at its defaults, constant lr (3 seeds)
  adamw_tuned          AdamW tuned with the same budget as (a) (the corpus's AdamW)
  most_frequent        the family that wins most often on the other tasks, tuned
  random_family        a family drawn at random, tuned (expected regret: mean over families)
Plus how often the oracle's leading families are tied (or not separated) within the noise, and
whether the recommended family is within the noise of the oracle's best.

Part two, the cross-task warm start: on `--warm-tasks` held-out tasks, trials a search needs to
reach the target (normalised regret <= 0.1) with `warm_start: similar` seeded from the corpus
less the task, against a cold search (the service's default otherwise), over `--seeds` sampler
seeds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna

from benchmarks._common import corpus_held_out, save
from tuner.attrs import ATTR_CONFIRM_OF, ATTR_SEED
from tuner.confirm import CONFIRM_SEED_OFFSET
from tuner.corpus import Corpus, CorpusTask, load
from tuner.objective import Objective
from tuner.recommend import TaskProfile
from tuner.recommendations import corpus_answer
from tuner.results import study_records
from tuner.sampling import SearchSpace
from tuner.search import create_study, run_search
from tuner.space import TrialConfig
from tuner.spec import JobSpec

OUT = Path(__file__).parent / "results" / "recommendation_quality.json"
PLOTS = Path(__file__).resolve().parents[1] / "docs" / "img"
SEEDS = 3
ADAMW = TrialConfig("adamw", "cosine", {"adamw.lr": 1e-3})
ADAM = TrialConfig("adam", "constant", {"adam.lr": 1e-3})
METHODS = ("advice_family", "advice_config", "adamw_1e-3_cosine", "adam_defaults",
           "adamw_tuned", "most_frequent", "random_family")
WARM_TARGET = 0.1  # normalised regret a search must reach


def signed(direction: str) -> float:
    return 1.0 if direction == "maximize" else -1.0


def run_config(task: CorpusTask, config: TrialConfig, seeds: int = SEEDS,
               data: Any = None, seed_offset: int = CONFIRM_SEED_OFFSET,
               vary_split: bool = False) -> tuple[list[float], Any]:
    """One configuration on the task, over the corpus's confirmation seeds (same data split;
    `seed_offset` other than the confirmation seeds' for seeds the corpus never ran).
    `vary_split`: each run also draws its own train/validation split from its seed (a new
    validation set per run, never the corpus's)."""
    if vary_split:
        values: list[float] = []
        for i in range(seeds):
            split = {**task.spec, "training": {**task.spec.get("training", {}),
                                               "seed": seed_offset + i}}
            vals, _ = run_config(replace(task, spec=split), config, 1, None, seed_offset + i)
            values += vals
        return values, data
    spec = JobSpec.model_validate({**task.spec, "space": {"optimizers": [config.optimizer],
                                                          "schedules": [config.schedule]},
                                   "budget": {"n_trials": seeds},
                                   "search": {"pruner": "none", "confirm_top_k": 0,
                                              "defaults_sweep": False}})
    params = SearchSpace(spec.space).optuna_params(config)
    assert params is not None, config
    objective = Objective(spec, data=data)
    study = create_study(spec, objective.direction, None, "config")
    for i in range(seeds):
        study.enqueue_trial(params, user_attrs={ATTR_CONFIRM_OF: -1,
                                                ATTR_SEED: seed_offset + i})
    study.optimize(objective, n_trials=seeds, catch=(Exception,))
    values = [r.value for r in study_records(study) if r.state == "complete" and r.value is not None]
    return values, objective.data


def query(task: CorpusTask) -> TaskProfile:
    return replace(task.profile(), task_id=None)


def evaluate(task: CorpusTask, corpus: Corpus, smoke: bool) -> dict[str, Any]:
    oracle = task.oracle()
    sign = signed(task.direction)
    best_family = max(oracle, key=lambda f: sign * oracle[f])
    best, worst = oracle[best_family], min(sign * v for v in oracle.values()) * sign
    spread = abs(best - worst) or 1e-12
    rest = corpus.without(task.id)
    answer = corpus_answer(query(task), task.metric, rest)
    # No advice (a `prior` answer) counts as the worst family: the service told nothing.
    values: dict[str, float | None] = {"advice_family": None, "advice_config": None}
    advice: dict[str, Any] = {"family": None, "config": None, "similar": []}
    data = None
    if answer is not None:
        fam = answer["ranking"][0]["optimizer"]
        start = answer["start_from"]
        advice = {"family": fam, "config": start, "similar": [
            (n["corpus_task"], n["similarity"]) for n in answer["similar_tasks"]]}
        values["advice_family"] = oracle.get(fam)
        cfg = TrialConfig(start["optimizer"], start["schedule"], dict(start["params"]))
        vals, data = run_config(task, cfg, 1 if smoke else SEEDS, data)
        values["advice_config"] = statistics.fmean(vals) if vals else None
    for name, cfg in (("adamw_1e-3_cosine", ADAMW), ("adam_defaults", ADAM)):
        vals, data = run_config(task, cfg, 1 if smoke else SEEDS, data)
        values[name] = statistics.fmean(vals) if vals else None
    values["adamw_tuned"] = oracle.get("adamw")
    wins = Counter(t.ranking()["ranking"][0]["optimizer"] for t in rest.tasks
                   if t.ranking()["ranking"])
    frequent = wins.most_common(1)[0][0] if wins else None
    values["most_frequent"] = oracle.get(frequent) if frequent else None
    values["random_family"] = statistics.fmean(oracle.values())
    regret = {m: (None if v is None else sign * (best - v)) for m, v in values.items()}
    # A failed run (diverged) counts as the worst family.
    norm = {m: (1.0 if r is None else max(0.0, r / spread)) for m, r in regret.items()}
    ranked = task.ranking()
    lead_group = ranked["leaders"] if ranked["verdict"] != "winner" else [best_family]
    return {"task": task.id, "name": task.name, "direction": task.direction,
            "oracle": oracle, "oracle_best_family": best_family, "oracle_best": best,
            "oracle_spread": spread, "oracle_verdict": ranked["verdict"],
            "oracle_leaders": ranked["leaders"], "advice": advice, "most_frequent": frequent,
            "values": values, "regret": regret, "normalised_regret": norm,
            "advice_within_noise": advice["family"] in lead_group or
                                   advice["family"] == best_family}


def cross_task_warm_start(task: CorpusTask, corpus: Corpus, seeds: int, trials: int,
                          smoke: bool) -> dict[str, Any]:
    """Trials to the target, cold vs warm (seeded from the corpus less this task). Both searches
    run with the service pointed at the corpus less this task, so that the cold search's defaults
    sweep, whose starts and order are learned from the corpus (`sweep_start: corpus`), learns
    nothing from the task it is measured on."""
    oracle = task.oracle()
    sign = signed(task.direction)
    best = max(sign * v for v in oracle.values()) * sign
    worst = min(sign * v for v in oracle.values()) * sign
    target = best - sign * WARM_TARGET * abs(best - worst)
    answer = corpus_answer(query(task), task.metric, corpus.without(task.id))
    spec = JobSpec.model_validate({**task.spec, "budget": {"n_trials": trials},
                                   "search": {"confirm_top_k": 0}})
    space = SearchSpace(spec.space)
    seeds_cfg = [] if answer is None else [
        TrialConfig(r["optimizer"], r["schedule"] or "constant", dict(r["params"]))
        for r in answer["ranking"][:5]]
    warm_params = [p for c in seeds_cfg if (p := space.optuna_params(c)) is not None]
    per_seed = []
    with corpus_held_out() as hold_out:
        hold_out(task=task.id)
        for seed in range(seeds):
            per_seed.append(_cold_and_warm(spec, seed, warm_params, sign, target))
    med = {k: statistics.median(s[k]["trials"] for s in per_seed) for k in ("cold", "warm")}
    return {"task": task.id, "target": target, "per_seed": per_seed, "median": med,
            "ratio_warm_over_cold": med["warm"] / med["cold"],
            "warm_seeds": [c.optimizer for c in seeds_cfg]}


def _cold_and_warm(spec: JobSpec, seed: int, warm_params: list[dict[str, Any]], sign: float,
                   target: float) -> dict[str, Any]:
    out = {}
    for label, seeded in (("cold", []), ("warm", warm_params)):
        recs = run_search(spec, study_name=f"{label}-{seed}", seed_configs=seeded,
                          sampler_seed=seed).records
        reached = next((i for i, r in enumerate(sorted(recs, key=lambda r: r.number), 1)
                        if r.state == "complete" and r.value is not None
                        and sign * r.value >= sign * target), None)
        out[label] = {"trials": reached or len(recs), "censored": reached is None}
    return out


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.2))
    data = [[t["normalised_regret"][m] for t in results["tasks"]] for m in METHODS]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(METHODS) + 1), METHODS, rotation=20, fontsize=8)
    ax.set_yscale("symlog", linthresh=0.1)  # a few untuned runs are far worse than the rest
    ax.set_ylim(bottom=0)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("normalised regret (0 = best family, 1 = worst; symlog)")
    ax.set_title(f"Leave-one-task-out over the reference corpus ({len(results['tasks'])} tasks)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def corpus_and_tasks(tasks: str | None) -> tuple[Corpus, list[str]]:
    """The reference corpus (or exit saying how to build it) and the task ids to measure: the
    comma-separated `tasks`, or every corpus task."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    corpus = load()
    if corpus is None:
        sys.exit("no reference corpus: run `tuner corpus build` first")
    return corpus, tasks.split(",") if tasks else [t.id for t in corpus.tasks]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=None, help="comma-separated corpus task ids")
    ap.add_argument("--warm-tasks", default="linear-breast_cancer,mlp-wine,mlp-digits-w32,"
                                            "mlp-classification-n500,linear-quadratic-c10,"
                                            "cnn-digits")
    ap.add_argument("--seeds", type=int, default=3, help="warm-start part: sampler seeds")
    ap.add_argument("--trials", type=int, default=30, help="warm-start part: trial budget")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    corpus, names = corpus_and_tasks(a.tasks)
    warm = [] if a.smoke else [n for n in a.warm_tasks.split(",") if n in names]
    if a.smoke:
        names, a.seeds, a.trials = names[:1], 1, 3
        warm = names
    t0 = time.perf_counter()
    per_task = []
    for n in names:
        r = evaluate(corpus.get(n), corpus, a.smoke)
        per_task.append(r)
        print(f"{n}: advice {r['advice']['family']}, oracle {r['oracle_best_family']} "
              f"({r['oracle_verdict']}), regret a={_f(r['normalised_regret']['advice_family'])} "
              f"b={_f(r['normalised_regret']['advice_config'])} "
              f"adamw={_f(r['normalised_regret']['adamw_1e-3_cosine'])}", file=sys.stderr)
    results: dict[str, Any] = {"corpus": corpus.digest, "corpus_built": corpus.built,
                               "tasks": per_task}
    summary = {m: {"median_normalised_regret": statistics.median(
                       t["normalised_regret"][m] for t in per_task),
                   "mean_normalised_regret": statistics.fmean(
                       t["normalised_regret"][m] for t in per_task)} for m in METHODS}
    for m in METHODS:
        summary[m]["ratio_to_adamw_1e-3_cosine"] = (
            summary[m]["median_normalised_regret"]
            / max(summary["adamw_1e-3_cosine"]["median_normalised_regret"], 1e-12))
    results["summary"] = summary
    results["no_advice"] = [t["task"] for t in per_task if t["advice"]["family"] is None]
    results["advice_within_noise_share"] = statistics.fmean(
        float(t["advice_within_noise"]) for t in per_task)
    results["oracle_tied_share"] = statistics.fmean(
        float(t["oracle_verdict"] != "winner") for t in per_task)
    results["warm_start"] = [cross_task_warm_start(corpus.get(n), corpus, a.seeds, a.trials,
                                                   a.smoke) for n in warm]
    if results["warm_start"]:
        results["warm_start_median_ratio"] = statistics.median(
            w["ratio_warm_over_cold"] for w in results["warm_start"])
    results["seconds"] = time.perf_counter() - t0
    print(f"{'method':<20} {'median regret':>14} {'mean':>8} {'vs AdamW':>9}")
    for m in METHODS:
        s = summary[m]
        print(f"{m:<20} {s['median_normalised_regret']:>14.3f} "
              f"{s['mean_normalised_regret']:>8.3f} {s['ratio_to_adamw_1e-3_cosine']:>9.2f}")
    print(f"recommended family within the noise of the oracle's best: "
          f"{results['advice_within_noise_share']:.0%} of {len(per_task)} tasks; oracle's "
          f"leaders tied or not separated: {results['oracle_tied_share']:.0%}")
    for w in results["warm_start"]:
        print(f"warm start {w['task']:<26} cold {w['median']['cold']:>5.1f} warm "
              f"{w['median']['warm']:>5.1f} ratio {w['ratio_warm_over_cold']:.2f}")
    save(a.out, results)
    if not a.smoke:
        plot(results, PLOTS / "recommendation_quality.png")
    print(f"wrote {a.out} ({results['seconds']:.0f} s)", file=sys.stderr)
    return results


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    main()
