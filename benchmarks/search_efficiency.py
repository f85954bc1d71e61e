"""Search efficiency: training epochs consumed until the best-so-far validation metric comes
within 0.5% of the best value ever seen on the task, per method, median over seeds, as ratios
against random search without pruning (the baseline), in one process.

    .venv/bin/python -m benchmarks.search_efficiency            # 3 tasks x 5 seeds x 10 methods
    .venv/bin/python -m benchmarks.search_efficiency --smoke    # seconds

Every run gets the same budget of training epochs (default 540 = 60 trials of 9 epochs), so a
method that stops trials early runs more of them. Methods (same search space, same objective:
the same model, data split and initialisation; only the search differs):
  random             Optuna RandomSampler, no pruning (baseline)
  tpe                Optuna TPE, no pruning
  ray_asha           Ray Tune: random search + ASHA (grace 1, reduction 3, max_t = epochs), one
                     trial at a time (each takes every CPU); the peer a user would pick instead
  service_hyperband  the service's default: defaults sweep (each family at its start learned from
                     the reference corpus) + TPE + Optuna's Hyperband
  service_literature the same with `sweep_start: literature` (the sweep at literature defaults)
  service_portfolio  the same with `sweep_start: portfolio` (starts chosen together to cover the
                     corpus's tasks, benchmarks/sweep_starts.py)
  service_apart      the same with `sweep_pruning: apart` (the sweep's trials pruned only
                     against each other)
  service_asha       the service: defaults sweep + TPE + successive halving (ASHA)
  service_wilcoxon   the service: defaults sweep + TPE + Optuna's WilcoxonPruner (p 0.1)
  service_similar    the service's default with `warm_start: similar` for a team with no history:
                     seeded with the best configurations of the reference corpus's most similar
                     tasks, the sweep in their order
Every corpus task on the task's dataset is held out from every service method (the sweep's
order and starts, the similar tasks), so nothing measured on the task itself is used.
The JSON records which of the two service variants is the service's default pruner.
Every reported epoch counts as one epoch consumed; best-so-far is over every epoch's metric.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

# Ray Tune's per-trial JSON/CSV/TensorBoard loggers are not needed (a callback collects the
# metrics) and cost seconds per trial.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")

from benchmarks._common import corpus_held_out, save
from tuner import corpus
from tuner.objective import Objective
from tuner.recommendations import corpus_answer, warm_start_configs
from tuner.results import study_records
from tuner.sampling import SearchSpace
from tuner.search import SweepPlan, create_study, sweep_plan
from tuner.spec import JobSpec, SearchSpec
from tuner.tasks import inspect_task

TASKS: list[tuple[str, str, dict[str, Any]]] = [
    ("mlp", "digits", {"hidden": [64]}),
    ("cnn", "digits", {"channels": [8, 16]}),
    ("linear", "breast_cancer", {}),
]
METHODS = ("random", "tpe", "ray_asha", "service_hyperband", "service_literature",
           "service_portfolio", "service_apart", "service_asha", "service_wilcoxon",
           "service_similar", "adamw_only")
# What the default is compared with at each budget: Ray Tune ASHA, and the same search over
# AdamW alone (is choosing the optimizer worth it?).
PEERS = ("ray_asha", "adamw_only")
TOLERANCE = 0.005
ANYTIME = (25, 50, 100, 200, 400)  # also report the median best-so-far after this many epochs
OUT = Path(__file__).parent / "results" / "search_efficiency.json"
PLOTS = Path(__file__).resolve().parents[1] / "docs" / "img"


def base_spec(model: str, dataset: str, params: dict[str, Any], epochs: int,
              space: dict[str, Any] | None = None, **search: Any) -> JobSpec:
    return JobSpec.model_validate({
        "task": {"model": {"name": model, "params": params}, "dataset": {"name": dataset}},
        "training": {"epochs": epochs, "seed": 0}, "budget": {"n_trials": 10_000},
        "search": search, **({"space": space} if space else {})})


def capped_sweep(spec: JobSpec, k: int) -> JobSpec:
    """The spec with its defaults sweep capped at `k` trials, as a job whose
    `sweep_share` x `n_trials` is `k` (the benchmark's studies run until the epoch budget, so
    `n_trials` itself stops nothing)."""
    share = k / spec.budget.n_trials
    return spec.model_copy(update={"search": spec.search.model_copy(
        update={"sweep_share": share})})


def with_training_seed(spec: JobSpec, seed: int) -> JobSpec:
    """The spec trained with `training.seed` = `seed`: its own data split and initialisation."""
    return spec.model_copy(update={"training": spec.training.model_copy(update={"seed": seed})})


def transfer_start(spec: JobSpec) -> tuple[list[dict[str, Any]], SweepPlan | None]:
    """What `warm_start: similar` gives a team with no history: seeds and the sweep's order from
    the reference corpus's most similar tasks (the loaded corpus: `corpus_held_out`)."""
    ref = corpus.load()
    if ref is None:
        return [], None
    features = inspect_task(spec)
    answer = corpus_answer(features.profile(spec.task.model.name), features.metric, ref)
    if answer is None:
        return [], None
    space = SearchSpace(spec.space)
    seeds = [p for c in warm_start_configs(answer, "similar", space.families)
             if (p := space.optuna_params(c)) is not None]
    plan = sweep_plan(spec, [r["optimizer"] for r in answer["ranking"]], "transfer", len(seeds))
    return seeds, plan


def optuna_curve(spec: JobSpec, sampler_seed: int, epoch_budget: int,
                 start: tuple[list[dict[str, Any]], SweepPlan | None] = ([], None)
                 ) -> list[float]:
    """Metric of every epoch, in the order they were trained, until `epoch_budget` epochs are
    consumed (the service's own study and objective: create_study + Objective), the study
    seeded with `start` (warm-start configurations, sweep plan)."""
    objective = Objective(spec)
    study = create_study(spec, objective.direction, None, f"s{sampler_seed}",
                         sampler_seed=sampler_seed, seed_configs=start[0], sweep=start[1])
    consumed = 0

    def stop_at_budget(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal consumed
        consumed += max(len(trial.intermediate_values), 1)
        if consumed >= epoch_budget:
            study.stop()

    study.optimize(objective, n_trials=epoch_budget, callbacks=[stop_at_budget],
                   catch=(Exception,), gc_after_trial=False)
    values: list[float] = []
    for r in sorted(study_records(study), key=lambda r: r.number):
        values += [float(s.value) if s.value is not None else math.nan for s in r.steps]
        if r.state == "diverged":
            values.append(math.nan)  # the epoch that diverged was trained too
    return values[:epoch_budget]


def _tune_trainable(config: dict[str, Any]) -> None:
    import torch
    from ray import tune

    from tuner.datasets import load_dataset
    from tuner.models import build_model
    from tuner.sampling import SearchSpace
    from tuner.training import Trainer

    spec = JobSpec.model_validate(config["spec"])
    sampler = optuna.samplers.RandomSampler(seed=int(config["sample_seed"]))
    trial = optuna.create_study(sampler=sampler).ask()
    cfg = SearchSpace(spec.space).sample(trial)
    ds, m = spec.task.dataset, spec.task.model
    data = load_dataset(ds.name, ds.params, spec.training.seed)
    torch.set_num_threads(1)
    torch.manual_seed(spec.training.seed)
    model = build_model(m.name, m.params, data.info)
    trainer = Trainer(model, data, cfg, spec.training,
                      spec.task.resolved_metric(data.info.kind), torch.device("cpu"))
    for rec in trainer.epochs():
        tune.report({"value": rec.value})
    if trainer.state.stop_reason == "diverged":
        tune.report({"value": -1.0})  # an epoch was spent; it scores worst


def ray_asha_curve(spec: JobSpec, seed: int, storage: str, epoch_budget: int) -> list[float]:
    import ray
    from ray import tune
    from ray.tune import Callback, Stopper
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    values: list[float] = []

    class Collect(Callback):  # type: ignore[misc]
        """Every reported epoch, in the order trained (one trial runs at a time)."""

        def on_trial_result(self, iteration: int, trials: Any, trial: Any,
                            result: dict[str, Any], **info: Any) -> None:
            v = float(result["value"])
            values.append(math.nan if v == -1.0 else v)

    class Budget(Stopper):  # type: ignore[misc]
        """Stop the whole experiment once `epoch_budget` epochs were consumed."""

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            return len(values) >= epoch_budget

    # One trial at a time, like the Optuna runs (max_concurrent_trials is ignored with
    # BasicVariantGenerator): each trial takes every CPU of the local Ray. Actors are reused
    # between trials (as a user tuning small models would), so the comparison is not slowed by
    # Ray starting a process per trial; epochs are what is compared, not seconds.
    cpus = int(ray.cluster_resources().get("CPU", 1))
    tuner = tune.Tuner(
        tune.with_resources(_tune_trainable, {"cpu": cpus}),
        param_space={"spec": spec.model_dump(mode="json"),
                     "sample_seed": tune.randint(0, 2**31 - 1)},
        tune_config=tune.TuneConfig(
            metric="value", mode="max", num_samples=epoch_budget, reuse_actors=True,
            search_alg=BasicVariantGenerator(random_state=seed),
            scheduler=ASHAScheduler(max_t=spec.training.epochs, grace_period=1,
                                    reduction_factor=3)),
        run_config=tune.RunConfig(storage_path=storage, name=f"asha-{seed}-{time.time_ns()}",
                                  verbose=0, callbacks=[Collect()], stop=Budget()))
    tuner.fit()
    return values[:epoch_budget]


def epochs_to(values: list[float], target: float) -> tuple[int, bool]:
    best = -math.inf
    for i, v in enumerate(values, 1):
        if not math.isnan(v):
            best = max(best, v)
        if best >= target:
            return i, False
    return len(values), True


def running_best(values: list[float]) -> list[float]:
    out, best = [], -math.inf
    for v in values:
        if not math.isnan(v):
            best = max(best, v)
        out.append(best)
    return out


COLORS = {"random": "grey", "tpe": "tab:blue", "ray_asha": "tab:orange",
          "service_hyperband": "tab:purple", "service_literature": "tab:pink",
          "service_apart": "tab:cyan",
          "service_asha": "tab:green", "service_wilcoxon": "tab:olive",
          "service_similar": "tab:red", "adamw_only": "tab:brown"}


def plot(task: str, curves: dict[str, list[list[float]]], target: float, path: Path) -> None:
    """Median best-so-far over the seeds per method (thick), each seed faint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method, runs in curves.items():
        color = COLORS.get(method, "black")
        bests = [running_best(run) for run in runs if run]
        for rb in bests:
            ax.plot(range(1, len(rb) + 1), rb, alpha=0.18, lw=0.8, color=color)
        n = max(len(rb) for rb in bests)
        median = [statistics.median(rb[min(i, len(rb) - 1)] for rb in bests) for i in range(n)]
        ax.plot(range(1, n + 1), median, lw=2.2, color=color, label=f"{method} (median)")
    ax.axhline(target, ls="--", color="black", lw=0.8, label="target (best seen - 0.5%)")
    finite = [v for runs in curves.values() for run in runs for v in running_best(run)
              if v > -math.inf]
    ax.set_ylim(max(min(finite), target - 0.1), target + 0.015)
    ax.set_xscale("log")
    ax.set_xlabel("training epochs consumed")
    ax.set_ylabel("best-so-far validation accuracy")
    ax.set_title(f"{task}: best so far vs epochs ({len(next(iter(curves.values())))} seeds)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def best_at(run: list[float], epochs: int) -> float:
    """A run's best-so-far after `epochs` epochs (its last value when it ran fewer)."""
    return running_best(run)[min(epochs, len(run)) - 1]


def versus(summary: dict[str, Any], ours: str = "service_hyperband",
           peers: tuple[str, ...] = PEERS, paired: bool = False) -> list[dict[str, Any]]:
    """Is the service's default ahead of or behind each peer at each ANYTIME budget, outside the
    noise? Per pair of methods named `ours...` and `<peer>...`: the medians and means of the runs'
    best-so-far and a two-sided Mann-Whitney U test over the runs. A p above 0.05 means the runs
    cannot tell the two apart. `paired` (run k of every method trained on the same split and
    initialisation: --vary-training-seed) adds run k against run k: wins, ties and losses, and a
    Wilcoxon signed-rank test over the runs that differ."""
    from scipy.stats import mannwhitneyu, wilcoxon

    out = []
    pairs = [(a, b) for peer in peers for a in summary if a.split(" ")[0] == ours
             for b in summary if b.split(" ")[0] == peer]
    for a, b in pairs:
        at = {}
        for e in ANYTIME:
            xa = [best_at(r, e) for r in summary[a]["curves"]]
            xb = [best_at(r, e) for r in summary[b]["curves"]]
            p = 1.0 if xa == xb or len(set(xa + xb)) == 1 else \
                float(mannwhitneyu(xa, xb, alternative="two-sided").pvalue)
            at[str(e)] = {"median": [statistics.median(xa), statistics.median(xb)],
                          "mean": [statistics.fmean(xa), statistics.fmean(xb)], "p": p}
            if paired and len(xa) == len(xb):
                diff = [x - y for x, y in zip(xa, xb, strict=True)]
                differ = [d for d in diff if abs(d) > 1e-12]
                at[str(e)].update(
                    wins=sum(d > 0 for d in differ), losses=sum(d < 0 for d in differ),
                    ties=len(diff) - len(differ),
                    p_paired=float(wilcoxon(differ).pvalue) if differ else 1.0)
        out.append({"ours": a, "peer": b, "n": [len(summary[a]["curves"]),
                                                 len(summary[b]["curves"])], "at": at})
    return out


def summarise(curves: dict[str, list[list[float]]], seconds: dict[str, Any],
              target: float) -> dict[str, Any]:
    """Per method: epochs to `target` per run, how many runs reached it, the median (a run that
    never reaches it counts as infinite, not as its total), best-so-far at ANYTIME, and the
    ratio of medians against the `random` method with the longest runs (None where either is
    not reached)."""
    summary: dict[str, Any] = {}
    for method, runs in curves.items():
        reached = [epochs_to(run, target) for run in runs]
        eps = [math.inf if c else float(e) for e, c in reached]
        summary[method] = {"epochs": eps, "censored": [c for _, c in reached],
                           "reached": sum(not c for _, c in reached),
                           "median": statistics.median(eps), "min": min(eps), "max": max(eps),
                           "total_epochs": [len(r) for r in runs],
                           "best_at": {str(b): statistics.median(best_at(r, b) for r in runs)
                                       for b in ANYTIME},
                           "seconds": seconds.get(method), "curves": runs}
    randoms = [m for m in summary if m.split(" ")[0] == "random"]
    base = summary[max(randoms, key=lambda m: max(summary[m]["total_epochs"]))]["median"] \
        if randoms else None
    for s in summary.values():
        s["ratio_vs_random"] = (s["median"] / base if base and math.isfinite(base)
                                and math.isfinite(s["median"]) else None)
    return summary


def score(paths: list[Path], target_from: Path | None = None) -> dict[str, Any]:
    """Score saved runs together: per task, every file's methods (named `method (file)`) against
    one target, so runs of different rounds and budgets compare on the same footing: the task's
    target in `target_from` if given, else the highest best seen in any of them less the
    tolerance. Runs nothing."""
    import json

    saved = [(p.stem, json.loads(p.read_text())) for p in paths]
    fixed = json.loads(target_from.read_text())["tasks"] if target_from else {}
    results: dict[str, Any] = {"tolerance": TOLERANCE, "scored": [str(p) for p in paths],
                               "tasks": {}}
    for name in dict.fromkeys(n for _, d in saved for n in d["tasks"]):
        runs = [(stem, d["tasks"][name]) for stem, d in saved if name in d["tasks"]]
        best = fixed[name]["best_seen"] if name in fixed else \
            max(t["best_seen"] for _, t in runs)
        curves = {f"{m} ({stem})": s["curves"] for stem, t in runs for m, s in t["methods"].items()}
        seconds = {f"{m} ({stem})": s.get("seconds") for stem, t in runs
                   for m, s in t["methods"].items()}
        summary = summarise(curves, seconds, best * (1 - TOLERANCE))
        paired = all(d.get("vary_training_seed") for _, d in saved) and \
            len({d.get("seeds") for _, d in saved}) == 1
        results["tasks"][name] = {"best_seen": best, "target": best * (1 - TOLERANCE),
                                  "methods": summary,
                                  "versus": versus(summary, paired=paired)}
    return results


def table(results: dict[str, Any]) -> None:
    width = max([17, *(len(m) for t in results["tasks"].values() for m in t["methods"])])
    print(f"{'task':<22} {'method':<{width}} {'reached':>7} {'median epochs':>13} "
          f"{'vs random':>9} " + " ".join(f"{'best@' + str(b):>8}" for b in ANYTIME))
    for name, t in results["tasks"].items():
        for method, s in t["methods"].items():
            ratio = f"{s['ratio_vs_random']:.2f}" if s["ratio_vs_random"] else "-"
            print(f"{name:<22} {method:<{width}} {s['reached']:>4}/{len(s['epochs']):<2} "
                  f"{s['median']:>13} {ratio:>9} "
                  + " ".join(f"{s['best_at'][str(b)]:>8.4f}" for b in ANYTIME))
        for v in t.get("versus", []):
            print(f"{name:<22} {v['ours']} vs {v['peer']}, best-so-far mean and Mann-Whitney p: "
                  + "; ".join(f"@{e} {a['mean'][0]:.4f} vs {a['mean'][1]:.4f} p={a['p']:.2f}"
                              + (f" (run by run {a['wins']}/{a['ties']}/{a['losses']} "
                                 f"p={a['p_paired']:.2f})" if "wins" in a else "")
                              for e, a in v["at"].items()))


def replot(results: Path, plots: Path) -> None:
    """Redraw the plots from a saved result (its curves), without running anything."""
    import json

    saved = json.loads(results.read_text())
    for name, t in saved["tasks"].items():
        curves = {m: s["curves"] for m, s in t["methods"].items()}
        plot(name, curves, t["target"], plots / f"search_{name.replace('/', '_')}.png")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epoch-budget", type=int, default=540,
                    help="training epochs each run may consume (540 = 60 full trials)")
    ap.add_argument("--epochs", type=int, default=9)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--tasks", default=",".join(f"{m}/{d}" for m, d, _ in TASKS))
    ap.add_argument("--sweep-cap", type=int, metavar="K",
                    help="the service methods' defaults sweep runs at most K families (a job "
                         "whose sweep_share x n_trials is K); default: every family")
    ap.add_argument("--vary-training-seed", action="store_true",
                    help="run k of every method trains with training.seed k (its own data split "
                         "and initialisation) instead of seed 0 for all; the searches' first "
                         "trials are then not the same every run")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--plots", type=Path, default=PLOTS)
    ap.add_argument("--replot", action="store_true", help="only redraw the plots from --out")
    ap.add_argument("--score", type=Path, nargs="+", metavar="RESULT",
                    help="score saved results together against one target per task (the "
                         "highest best seen in any), print the table, write it to --out; runs "
                         "nothing")
    ap.add_argument("--target-from", type=Path, metavar="RESULT",
                    help="with --score: each task's target from this saved result")
    a = ap.parse_args(argv)
    if a.replot:
        replot(a.out, a.plots)
        return {}
    if a.score:
        scored = score(a.score, a.target_from)
        table(scored)
        save(a.out, scored)
        return scored
    methods = a.methods.split(",")
    tasks = [t for t in TASKS if f"{t[0]}/{t[1]}" in a.tasks.split(",")]
    if a.smoke:
        a.seeds, a.epoch_budget, a.epochs, tasks = 1, 6, 2, TASKS[2:]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    storage = tempfile.mkdtemp(prefix="tune-")
    if "ray_asha" in methods:
        import ray

        if not ray.is_initialized():
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        # Without the file loggers, Ray's ResultGrid warns once per trial that it found none.
        logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    results: dict[str, Any] = {"tolerance": TOLERANCE, "seeds": a.seeds,
                               "epoch_budget": a.epoch_budget,
                               "default_pruner": SearchSpec().pruner,
                               "epochs": a.epochs, "sweep_cap": a.sweep_cap,
                               "vary_training_seed": a.vary_training_seed, "tasks": {}}
    with corpus_held_out() as hold_out:
        for model, dataset, params in tasks:
            name = f"{model}/{dataset}"
            specs = {
                "random": base_spec(model, dataset, params, a.epochs, sampler="random",
                                    pruner="none", defaults_sweep=False),
                "tpe": base_spec(model, dataset, params, a.epochs, sampler="tpe",
                                 pruner="none", defaults_sweep=False),
                "service_hyperband": base_spec(model, dataset, params, a.epochs,
                                               pruner="hyperband"),
                "service_literature": base_spec(model, dataset, params, a.epochs,
                                                pruner="hyperband", sweep_start="literature"),
                "service_portfolio": base_spec(model, dataset, params, a.epochs,
                                               pruner="hyperband", sweep_start="portfolio"),
                "service_apart": base_spec(model, dataset, params, a.epochs,
                                           pruner="hyperband", sweep_pruning="apart"),
                "service_asha": base_spec(model, dataset, params, a.epochs, pruner="asha"),
                "service_wilcoxon": base_spec(model, dataset, params, a.epochs,
                                              pruner="wilcoxon"),
                "service_similar": base_spec(model, dataset, params, a.epochs, pruner="hyperband",
                                             warm_start="similar"),
                # The practitioner's alternative to choosing an optimizer: the same search
                # (sweep start, TPE, Hyperband) over AdamW alone, every schedule.
                "adamw_only": base_spec(model, dataset, params, a.epochs,
                                        {"optimizers": ["adamw"]}, pruner="hyperband"),
            }
            if a.sweep_cap is not None:
                specs = {m: capped_sweep(spec, a.sweep_cap) if m.startswith("service_") else spec
                         for m, spec in specs.items()}
            hold_out(dataset)  # nothing the service learns from the corpus was measured here
            start = transfer_start(specs["service_similar"]) if "service_similar" in methods \
                else ([], None)
            curves: dict[str, list[list[float]]] = {m: [] for m in methods}
            timing: dict[str, float] = {m: 0.0 for m in methods}
            for seed in range(1, a.seeds + 1):
                run_specs = {m: with_training_seed(spec, seed) for m, spec in specs.items()} \
                    if a.vary_training_seed else specs
                for method in methods:
                    t = time.perf_counter()
                    if method == "ray_asha":
                        curves[method].append(ray_asha_curve(run_specs["random"], seed, storage,
                                                              a.epoch_budget))
                    else:
                        curves[method].append(optuna_curve(
                            run_specs[method], seed, a.epoch_budget,
                            start if method == "service_similar" else ([], None)))
                    timing[method] += time.perf_counter() - t
            best = max(v for runs in curves.values() for run in runs for v in run
                       if not math.isnan(v))
            target = best * (1 - TOLERANCE)
            summary = summarise(curves, timing, target)
            results["tasks"][name] = {
                "best_seen": best, "target": target, "methods": summary,
                "versus": versus(summary, paired=a.vary_training_seed)}
            if not a.smoke:
                plot(name, curves, target, a.plots / f"search_{model}_{dataset}.png")
            save(a.out, results)  # after every task: a long run stopped midway keeps what it has
    results["seconds"] = time.perf_counter() - t0
    table(results)
    save(a.out, results)
    print(f"wrote {a.out} ({results['seconds']:.0f} s)", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
