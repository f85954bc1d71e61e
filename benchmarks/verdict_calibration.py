"""Does the recommendation's verdict hold on seeds it never saw? Calibration of "winner", "tied"
and "separated" over the reference corpus (tuner/data/reference_corpus.json).

    .venv/bin/python -m benchmarks.verdict_calibration           # every corpus task, ~2 min
    .venv/bin/python -m benchmarks.verdict_calibration --smoke   # seconds: checks it runs
    .venv/bin/python -m benchmarks.verdict_calibration --seeds 6 --extend 3   # 3 more seeds in A
    .venv/bin/python -m benchmarks.verdict_calibration --vary-split   # fresh runs on new splits
    .venv/bin/python -m benchmarks.verdict_calibration --rescore FILE --out FILE  # no training:
        # the rules judged again on a result file's runs

For each corpus task, set A is what the service ranks: every family's search trials and its best
configuration's confirmation runs (3 seeds). Set B is new: each family's best configuration (the
one the answer shows) re-run over `--seeds` seeds that neither the search nor the confirmation
used (same data split). A rule decides from A alone which families it calls separated (one ahead
of the other by more than the noise); B then says whether what it called held:

- reversed: of the pairs the rule called separated (f ahead of g), the share where g's mean on B
  is ahead of f's. Under no true difference a fresh mean goes either way half the time, so this
  is about half the rule's share of false calls (plus B's own noise on true gaps).
- winner held: of the tasks where the rule called a winner, the share where it is B's best.
- leaders cover B's best: the share of tasks whose best family on B is among the rule's leaders
  (the first family on A's means and every family the rule does not separate from it, as the
  service groups a tie), and the leaders' mean count: an answer that names every family is
  always right and says nothing.

Rules (each on the best configuration's runs in A; `n` runs, mean m, sd s):
  t_intervals   the service's rule (tuner.recommend.interval_half): 95% t-intervals (n - 1
                degrees of freedom) that do not overlap; runs that all gave the same value
                get the pooled sd of set A over sqrt(n) with its degrees of freedom, and a task
                whose repeats were all identical has no noise estimate and no separations; on
                the logarithm of a loss (a minimised metric whose values are all positive), as
                the service ranks a loss
  t_own_sd      t-intervals from each configuration's own sd, identical runs giving a
                zero-width interval, one run ± t975 x the pooled sd (the service's rule until
                2026-12-05)
  t_linear      t_own_sd in the metric's units for a loss too, with the pooled sd of every
                repeated configuration (about the service's rule until 2026-11-24)
  pooled        95% intervals with the task's pooled seed-to-seed sd (every repeated
                configuration of the task) that do not overlap
  welch         a two-sided Welch t-test of the two families' runs at 5%
  pooled_diff   the difference of the means against the pooled sd: |m1 - m2| >
                t975(pooled dof) x sigma x sqrt(1/n1 + 1/n2)
  moderated     t_intervals with each configuration's own variance shrunk toward the pooled
                one as limma's moderated t does (Smyth 2004): (d0 sigma^2 + (n - 1) s^2) /
                (d0 + n - 1) on n - 1 + d0 degrees of freedom, d0 = 4 (at most the pool's);
                at 2 to 4 runs a t-interval's quantile is 12.7 to 3.2, and the shrinkage
                brings it to 2.6 to 2.4
  moderated_top the same, d0 = 8, with the noise pooled over the families' best
                configurations only (set A), not every repeated configuration of the task
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import save
from benchmarks.recommendation_quality import corpus_and_tasks, run_config, signed
from tuner.corpus import CorpusTask
from tuner.recommend import (
    interval_half,
    leader_bar,
    metric_scale,
    own_spread,
    pooled_noise,
    scale_fns,
    t975,
)
from tuner.space import TrialConfig

OUT = Path(__file__).parent / "results" / "verdict_calibration.json"
FRESH_SEED_OFFSET = 2000  # neither the search's (training.seed) nor the confirmations' (1000+)

Runs = dict[str, list[float]]
Rule = Callable[[list[float], list[float], float | None, int], bool]


def _t_half(v: list[float], sigma: float | None, dof: int) -> float:
    """The service's interval until 2026-12-05: a t-interval over the runs' own sd (zero wide
    when they are identical), one run ± t975(dof) x the pooled sd (no interval without it)."""
    if len(v) >= 2:
        return t975(len(v) - 1) * statistics.stdev(v) / math.sqrt(len(v))
    return math.inf if sigma is None else t975(max(dof, 1)) * sigma


def t_own_sd(a: list[float], b: list[float], sigma: float | None, dof: int) -> bool:
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    return abs(ma - mb) > _t_half(a, sigma, dof) + _t_half(b, sigma, dof)


def t_intervals(a: list[float], b: list[float], sigma: float | None, dof: int) -> bool:
    """The service's rule; `sigma` and `dof` are set A's pooled noise on the judged scale."""
    if sigma is None:
        return False
    gap = abs(statistics.fmean(a) - statistics.fmean(b))
    return gap > interval_half(a, sigma, dof) + interval_half(b, sigma, dof)


def pooled(a: list[float], b: list[float], sigma: float | None, dof: int) -> bool:
    if sigma is None:
        return False
    q = t975(dof)
    gap = abs(statistics.fmean(a) - statistics.fmean(b))
    return gap > q * sigma * (1 / math.sqrt(len(a)) + 1 / math.sqrt(len(b)))


def welch(a: list[float], b: list[float], sigma: float | None, dof: int) -> bool:
    if len(a) < 2 or len(b) < 2:
        return False
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    gap = abs(statistics.fmean(a) - statistics.fmean(b))
    if va + vb == 0:
        return gap > 0
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if va and vb else \
        (len(a) - 1 if va else len(b) - 1)
    return gap > t975(df) * math.sqrt(va + vb)


def pooled_diff(a: list[float], b: list[float], sigma: float | None, dof: int) -> bool:
    if sigma is None:
        return False
    gap = abs(statistics.fmean(a) - statistics.fmean(b))
    return gap > t975(dof) * sigma * math.sqrt(1 / len(a) + 1 / len(b))


def _moderated_half(v: list[float], sigma: float, dof: int, d0: float) -> float:
    """A moderated t-interval (Smyth's empirical Bayes variance, as limma's): the runs' own
    variance shrunk toward the pooled one as if the pool were `d0` more degrees of freedom,
    with n - 1 + d0 degrees of freedom; identical runs and one run as the service's rule."""
    if not own_spread(v):
        return interval_half(v, sigma, dof)
    d = len(v) - 1
    var = (d0 * sigma ** 2 + d * statistics.variance(v)) / (d0 + d)
    return t975(round(d + d0)) * math.sqrt(var / len(v))


def _moderated(d0: float) -> Rule:
    def rule(a: list[float], b: list[float], sigma: float | None, dof: int) -> bool:
        if sigma is None:
            return False
        gap = abs(statistics.fmean(a) - statistics.fmean(b))
        return gap > _moderated_half(a, sigma, dof, min(d0, dof)) + \
            _moderated_half(b, sigma, dof, min(d0, dof))
    return rule


def t_linear(a: list[float], b: list[float], sigma: float | None, dof: int) -> bool:
    """t_own_sd in the metric's units for a loss too (the service's rule until 2026-11-24)."""
    return t_own_sd(a, b, sigma, dof)


RULES: dict[str, Rule] = {"t_intervals": t_intervals, "t_own_sd": t_own_sd,
                          "t_linear": t_linear, "pooled": pooled, "welch": welch,
                          "pooled_diff": pooled_diff, "moderated": _moderated(4),
                          "moderated_top": _moderated(8)}
# Judged on log values where the metric is a loss (minimised, every value positive), as the
# service ranks a loss (tuner.recommend.metric_scale).
LOG_RULES = ("t_intervals", "t_own_sd", "moderated", "moderated_top")
# Their noise pooled over each family's best configuration only (set A), not every repeated
# configuration of the task (which the noisy, badly tuned ones dominate).
TOP_RULES = ("moderated_top",)


def best_config_runs(task: CorpusTask) -> tuple[Runs, dict[str, TrialConfig]]:
    """Per family, set A's runs of the configuration the answer shows, and that configuration."""
    ranking = task.ranking()["ranking"]
    runs: Runs = {}
    configs: dict[str, TrialConfig] = {}
    for e in ranking:
        rep = next(t for t in task.trials
                   if t.optimizer == e["optimizer"] and t.number == e["trial_number"])
        runs[e["optimizer"]] = [t.value for t in task.trials
                                if t.config_key == rep.config_key and t.setting == rep.setting]
        configs[e["optimizer"]] = TrialConfig(e["optimizer"], e["schedule"] or "constant",
                                              dict(e["params"]))
    return runs, configs


def judge(rule: Rule, a: Runs, sigma: float | None, dof: int, fresh: Runs,
          direction: str, pool: list[list[float]] | None = None) -> dict[str, Any]:
    """What the rule says from A, and whether B bears it out. `pool`: every repeated
    configuration's runs (the service's pooled-noise input; set A's runs when not given), from
    which the service's rule pools its noise on the scale it ranks on."""
    repeats = list(a.values()) if pool is None else pool
    sign = signed(direction)
    if rule in (RULES[n] for n in LOG_RULES):
        to_scale, _ = scale_fns(metric_scale((v for vs in a.values() for v in vs), direction))
        a = {f: [to_scale(v) for v in vs] for f, vs in a.items()}
        repeats = [[to_scale(v) for v in vs] for vs in repeats]
    if rule in (RULES[n] for n in TOP_RULES):  # pooled over the families' best only
        sigma, dof = pooled_noise(a.values())
    elif rule in (RULES[n] for n in LOG_RULES):  # the service pools the noise on its scale
        sigma, dof = pooled_noise(repeats)
    fams = [f for f in a if fresh.get(f)]
    order = sorted(fams, key=lambda f: -sign * statistics.fmean(a[f]))
    calls = [(f, g) for i, f in enumerate(order) for g in order[i + 1:]
             if rule(a[f], a[g], sigma, dof)]
    mean_b = {f: statistics.fmean(fresh[f]) for f in fams}
    reversed_ = sum(sign * (mean_b[g] - mean_b[f]) > 0 for f, g in calls)
    lead = order[0]
    # As the service groups a tie: the first family and every family not separated from it.
    leaders = [lead] + [g for g in order[1:] if not rule(a[lead], a[g], sigma, dof)]
    winner = lead if len(leaders) == 1 else None
    best_b = max(fams, key=lambda f: sign * mean_b[f])
    return {"calls": len(calls), "reversed": reversed_, "leaders": leaders, "winner": winner,
            "winner_held": None if winner is None else winner == best_b,
            "best_on_fresh": best_b, "covered": best_b in leaders}


def calibrate(task: CorpusTask, seeds: int, extend: int = 0,
              vary_split: bool = False) -> dict[str, Any]:
    """`extend`: the first `extend` fresh runs of each family join set A (as more confirmation
    seeds would), and only the rest judge. `vary_split`: each fresh run also trains and
    validates on a new split of the data (does the verdict hold beyond the task's validation
    set?)."""
    a, configs = best_config_runs(task)
    repeated = _repeated(task)
    fresh: Runs = {}
    data = None
    for fam, cfg in configs.items():
        vals, data = run_config(task, cfg, seeds, data, seed_offset=FRESH_SEED_OFFSET,
                                vary_split=vary_split)
        a[fam], fresh[fam] = a[fam] + vals[:extend], vals[extend:]
        repeated.append(vals[:extend])
    sigma, dof = pooled_noise(repeated)
    ranked = task.ranking()
    out = {"task": task.id, "direction": task.direction, "sigma": sigma, "dof": dof,
           "set_a": a, "fresh": fresh, "service_verdict": ranked["verdict"],
           "service_leaders": ranked["leaders"],
           "service_tied_by_width": ranked.get("tied_by_width", []),
           "service_bar": _bar(ranked, task.direction),
           "rules": {name: judge(rule, a, sigma, dof, fresh, task.direction, repeated)
                     for name, rule in RULES.items()}}
    return out


def _bar(ranked: dict[str, Any], direction: str) -> str | None:
    """The leader with the best expected value, the bar of `tied_by_width` and `may_lead`."""
    bar = leader_bar(ranked["ranking"], ranked["leaders"], direction)
    return None if bar is None else bar[0]


def _repeated(task: CorpusTask) -> list[list[float]]:
    """Every configuration's values over its seeds (the store's pooled-noise input)."""
    by: dict[Any, list[float]] = {}
    for t in task.trials:
        by.setdefault((t.config_key, t.setting), []).append(t.value)
    return list(by.values())


def rescore(results: dict[str, Any]) -> dict[str, Any]:
    """The rules judged again on a result file's runs (set A, set B, the pooled sd), and the
    service's verdict from today's ranking of each corpus task: a change of a rule is measured
    without training anything."""
    corpus, _ = corpus_and_tasks(None)
    extend = int(results.get("extend", 0))
    for t in results["tasks"]:
        task = corpus.get(t["task"])
        ranked = task.ranking()
        t["service_verdict"], t["service_leaders"] = ranked["verdict"], ranked["leaders"]
        t["service_tied_by_width"] = ranked.get("tied_by_width", [])
        t["service_bar"] = _bar(ranked, task.direction)
        # The repeats as calibrate() pooled them: the corpus's, and the fresh runs set A took.
        pool = _repeated(task) + ([vs[-extend:] for vs in t["set_a"].values()] if extend else [])
        t["rules"] = {name: judge(rule, t["set_a"], t["sigma"], t["dof"], t["fresh"],
                                  t["direction"], pool) for name, rule in RULES.items()}
    results["summary"] = summarise(results["tasks"])
    results["first_listed"] = first_listed(results["tasks"])
    results["tied_by_width"] = tied_by_width(results["tasks"])
    return results


def summarise(per_task: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for name in RULES:
        js = [t["rules"][name] for t in per_task]
        calls = sum(j["calls"] for j in js)
        winners = [j for j in js if j["winner"] is not None]
        out[name] = {
            "separated_calls": calls,
            "reversed_on_fresh": sum(j["reversed"] for j in js),
            "reversed_share": (sum(j["reversed"] for j in js) / calls) if calls else None,
            "winners": len(winners),
            "winners_held": sum(bool(j["winner_held"]) for j in winners),
            "leaders_cover_fresh_best": statistics.fmean(float(j["covered"]) for j in js),
            "mean_leaders": statistics.fmean(len(j["leaders"]) for j in js)}
    return out


def first_listed(per_task: list[dict[str, Any]]) -> dict[str, Any]:
    """How good the family the service lists first is on the fresh runs: its fresh mean's
    regret against the best family's, normalised by the spread of the fresh means (0 = the
    best family, 1 = the worst). Within a tie the first place says little by design; this
    shows what following it costs."""
    regrets = {}
    for t in per_task:
        sign = 1.0 if t["direction"] == "maximize" else -1.0
        means = {f: statistics.fmean(v) for f, v in t["fresh"].items() if v}
        lead = t["service_leaders"][0] if t["service_leaders"] else None
        if lead not in means:
            continue
        best, worst = max(means.values(), key=lambda v: sign * v), \
            min(means.values(), key=lambda v: sign * v)
        regrets[t["task"]] = sign * (best - means[lead]) / (abs(best - worst) or 1.0)
    vals = list(regrets.values())
    return {"family": {t["task"]: t["service_leaders"][0] for t in per_task
                       if t["service_leaders"]},
            "regret": regrets,
            "median_regret": statistics.median(vals) if vals else None,
            "mean_regret": statistics.fmean(vals) if vals else None}


def tied_by_width(per_task: list[dict[str, Any]]) -> dict[str, Any]:
    """Do the leaders the service says are in a tie only by their interval reaching the best one's
    (`tied_by_width`) fare worse on the fresh runs than the other leaders? For each, against the
    leader with the best expected value (the tie's bar): below it on the fresh means or not, the
    gap normalised by the spread of the fresh means, and whether it is the fresh best family."""
    groups: dict[str, dict[str, Any]] = {
        k: {"n": 0, "below_best_leader": 0, "fresh_best": 0, "gaps": []}
        for k in ("tied_by_width", "other_leaders")}
    for t in per_task:
        wide = set(t.get("service_tied_by_width") or [])
        sign = 1.0 if t["direction"] == "maximize" else -1.0
        means = {f: statistics.fmean(v) for f, v in t["fresh"].items() if v}
        bar = t.get("service_bar")
        leaders = [f for f in t["service_leaders"] if f in means]
        if bar not in means or len(leaders) < 2:
            continue
        spread = abs(max(means.values()) - min(means.values())) or 1.0
        fresh_best = max(means, key=lambda f: sign * means[f])
        for f in leaders:
            if f == bar:
                continue
            g = groups["tied_by_width" if f in wide else "other_leaders"]
            gap = sign * (means[bar] - means[f]) / spread
            g["n"] += 1
            g["below_best_leader"] += gap > 0
            g["fresh_best"] += f == fresh_best
            g["gaps"].append(gap)
    return {k: {"n": g["n"], "below_best_leader": g["below_best_leader"],
                "fresh_best": g["fresh_best"],
                "median_gap": statistics.median(g["gaps"]) if g["gaps"] else None}
            for k, g in groups.items()}


def table(summary: dict[str, Any], n_tasks: int) -> None:
    print(f"{'rule':<12} {'separated':>9} {'reversed':>9} {'winners':>8} {'held':>5} "
          f"{'covers':>7} {'leaders':>8}   ({n_tasks} tasks)")
    for name, s in summary.items():
        share = "-" if s["reversed_share"] is None else f"{s['reversed_share']:.1%}"
        print(f"{name:<12} {s['separated_calls']:>9} {share:>9} {s['winners']:>8} "
              f"{s['winners_held']:>5} {s['leaders_cover_fresh_best']:>7.0%} "
              f"{s['mean_leaders']:>8.1f}")


def _print_width(w: dict[str, Any]) -> None:
    for k, g in w.items():
        if g["n"]:
            print(f"{k:<14} {g['n']:>4} leaders: below the best leader on fresh runs "
                  f"{g['below_best_leader']} ({g['below_best_leader'] / g['n']:.0%}), median "
                  f"normalised gap {g['median_gap']:.3f}, the fresh best family {g['fresh_best']}")


def _print_first(f: dict[str, Any]) -> None:
    if f["median_regret"] is not None:
        print(f"the family listed first, on fresh runs: normalised regret median "
              f"{f['median_regret']:.3f}, mean {f['mean_regret']:.3f} ({len(f['regret'])} tasks)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default=None, help="comma-separated corpus task ids")
    ap.add_argument("--seeds", type=int, default=3, help="fresh seeds per family")
    ap.add_argument("--extend", type=int, default=0, metavar="K",
                    help="the first K fresh seeds join set A (more confirmation seeds); the "
                         "other seeds - K judge")
    ap.add_argument("--vary-split", action="store_true",
                    help="each fresh run on a new train/validation split of the data")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--rescore", type=Path, default=None, metavar="FILE",
                    help="judge the runs of a result file again (no training)")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    if a.rescore is not None:
        results = rescore(json.loads(a.rescore.read_text()))
        save(a.out, results)
        table(results["summary"], len(results["tasks"]))
        _print_first(results["first_listed"])
        _print_width(results["tied_by_width"])
        print(f"wrote {a.out}")
        return results
    corpus, names = corpus_and_tasks(a.tasks)
    if a.smoke:
        names, a.seeds = names[:1], 2
    t0 = time.perf_counter()
    per_task: list[dict[str, Any]] = []
    if not 0 <= a.extend < a.seeds:
        sys.exit(f"--extend must be from 0 to --seeds - 1 ({a.seeds - 1}), got {a.extend}")
    results: dict[str, Any] = {"corpus": corpus.digest, "fresh_seeds": a.seeds,
                               "extend": a.extend, "vary_split": a.vary_split,
                               "fresh_seed_offset": FRESH_SEED_OFFSET, "tasks": per_task}
    for i, n in enumerate(names, 1):
        per_task.append(calibrate(corpus.get(n), a.seeds, a.extend, a.vary_split))
        j = per_task[-1]["rules"]
        print(f"[{i}/{len(names)}] {n}: service {per_task[-1]['service_verdict']}; leaders "
              + ", ".join(f"{r} {len(j[r]['leaders'])}" for r in RULES), file=sys.stderr)
        results["summary"] = summarise(per_task)
        results["first_listed"] = first_listed(per_task)
        results["tied_by_width"] = tied_by_width(per_task)
        results["seconds"] = time.perf_counter() - t0
        save(a.out, results)  # after every task: a long run stopped midway keeps what it has
    table(results["summary"], len(per_task))
    _print_first(results["first_listed"])
    _print_width(results["tied_by_width"])
    print(f"wrote {a.out} ({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
