"""Which optimizer is best for a task, from the trial history: ranking with expected values and
intervals, robustness, cost and ties (`rank_families`); nearest tasks for an unseen one
(`similar_tasks`, `transfer_ranking`). Pure: plain records in, JSON-ready dicts out."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from tuner.errors import count
from tuner.space import BASELINE, BASELINE_LABEL, FAMILIES, baseline_values, is_baseline
from tuner.spec import MAX_CONFIRM_SEEDS, METRIC_BOUNDS

# A trial is "good" for robustness when within this fraction of the family's best value.
ROBUSTNESS_REL_TOL = 0.02
ROBUSTNESS_ABS_TOL = 1e-3
# Inside a tie, a family comes first for its learning-rate range only when that range is wider by
# at least this many decades (a factor of ~3.2).
ROBUSTNESS_STEP_DECADES = 0.5
TOP_TRIALS_FOR_SPREAD = 3
SUMMARY_NAMES = 4  # families the summary names one by one; beyond, it counts them
# A family below the leaders that was tried with fewer configurations than this (complete ones
# and ones stopped early together), fewer than the leader, is `under_tuned`: its place says
# how its few configurations did, not how it does tuned. A 30-trial job over 14 families gives
# most of them one or two.
UNDER_TUNED_BELOW = 3
MIN_SIMILARITY = 0.25
# The reference corpus is the fallback when a team has no task this close: its tasks may be
# further away (another architecture, say) and still say more than literature defaults. Below
# this, the answer is `prior`.
CORPUS_MIN_SIMILARITY = 0.05


# How an expected value's interval was made (structured: ties are decided from these, never from
# the prose in `source`). Only the first two are confidence intervals.
INTERVAL_T = "t"          # 95% t-interval over the seeds of the best configuration
INTERVAL_NOISE = "noise"  # one run (or n identical runs) +/- t975(dof) x pooled noise / sqrt(n)
INTERVAL_SPREAD = "spread"  # range of the family's best trials: no noise estimate, not a CI
CONFIDENCE_KINDS = (INTERVAL_T, INTERVAL_NOISE)

# The scale a ranking's statistics are computed on (means, the pooled noise, intervals, the
# projection of a tie). A loss (a minimised metric, every value positive) is ranked on its
# logarithm: its seed-to-seed spread grows with its size, and on one task it spans orders of
# magnitude (6e-7 for one family, 0.04-0.18 for another), where one noise pooled in the
# metric's units and symmetric intervals reaching below 0 are meaningless. Values shown are
# in the metric's units (on the log scale, a family's value is the geometric mean of its runs).
SCALE_LINEAR = "linear"
SCALE_LOG = "log"


def _identity(x: float) -> float:
    return x


def metric_scale(values: Iterable[float], direction: str) -> str:
    """`log` for a loss whose every value is positive, else `linear`."""
    vals = list(values)
    return SCALE_LOG if direction == "minimize" and vals and all(v > 0 for v in vals) \
        else SCALE_LINEAR


def scale_fns(scale: str) -> tuple[Callable[[float], float], Callable[[float], float]]:
    """(to the scale, back to the metric's units)."""
    return (math.log, math.exp) if scale == SCALE_LOG else (_identity, _identity)


def own_spread(values: Sequence[float]) -> bool:
    """Do a configuration's runs measure its own seed-to-seed noise? Two or more runs that are
    not all the same value. Identical runs measure the metric's resolution, not its noise: an
    accuracy on 30 validation examples moves in steps of 0.033, so four seeds that all land on
    1.0 happen often, and their sd of 0 is no evidence that a fifth seed could not land lower."""
    return len(values) >= 2 and statistics.stdev(values) > 0


def interval_half(values: Sequence[float], sigma: float, dof: int) -> float:
    """Half the width of a 95% confidence interval for a configuration's mean, on the ranking's
    scale: a t-interval over its own runs (n - 1 degrees of freedom); for one run, or runs that
    all gave the same value, the task's pooled noise over the square root of the runs with the
    t quantile of the noise estimate's degrees of freedom. The one rule that decides what is
    "separated", for the answer and for the confirmation race alike. (Until 2026-12-05 identical
    runs got a zero-width interval: on a corpus task, four seeds of momentum at 1.0 and four of
    AdamW at 0.967, one validation example of 30 apart, were called separated.)"""
    if own_spread(values):
        return t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return t975(max(dof, 1)) * sigma / math.sqrt(max(len(values), 1))

# A tie's projection (`to_separate`): how many runs of each of the two best families would put
# their intervals apart if the gap seen were the true one; beyond what one job can confirm (its
# search run and at most MAX_CONFIRM_SEEDS more), "not in reach".
MAX_PROJECTED_RUNS = MAX_CONFIRM_SEEDS + 1

# Verdicts on the leading families (the answer's `verdict`).
VERDICT_WINNER = "winner"            # the leader's interval is clear of every other family's
VERDICT_TIED = "tied"                # leaders' confidence intervals overlap: within the noise
VERDICT_NOT_SEPARATED = "not_separated"  # no noise estimate: nobody can be called ahead
VERDICT_ONE_FAMILY = "one_family"    # only one family completed a trial


@dataclass(frozen=True)
class HistoryTrial:
    """One complete trial (search or confirmation run) of a task. `setting` is what it ran
    under, e.g. (task, epochs, batch size): the same configuration in another setting (another
    training budget, another model size) is another configuration, never a repeat of it."""

    job_id: str
    number: int
    optimizer: str
    schedule: str | None
    params: dict[str, Any]
    value: float
    config_key: str
    confirmation: bool = False
    # a confirmation run of a trial that never completed: the race's second look at a family
    # stopped early while level with the leader (`tuner.confirm.second_looks`)
    second_look: bool = False
    seed: int | None = None
    created_at: datetime | None = None
    state_bytes_per_param: float = 0.0
    seconds_per_epoch: float = 0.0
    setting: tuple[Any, ...] | None = None

    def lr(self) -> float | None:
        for key, v in self.params.items():
            if key.endswith(".lr") and isinstance(v, int | float):
                return float(v)
        return None


@dataclass
class _Config:
    key: tuple[str, tuple[Any, ...] | None]
    trials: list[HistoryTrial] = field(default_factory=list)
    to_scale: Callable[[float], float] = _identity

    @property
    def values(self) -> list[float]:
        """One value per seed. Runs of this configuration with the same seed are not evidence of
        the seed-to-seed noise: training is deterministic given the seed, so two jobs whose
        defaults sweeps both start a family at the same configuration with `training.seed` 0
        repeat one run, not measure two. Counted twice they gave zero-width intervals (a false
        certainty that could call a winner) and pulled the pooled noise towards 0. A seed's
        repeats count once, at their mean; runs with no recorded seed each count."""
        by_seed: dict[int, list[float]] = defaultdict(list)
        out = []
        for t in self.trials:
            if t.seed is None:
                out.append(self.to_scale(t.value))
            else:
                by_seed[t.seed].append(self.to_scale(t.value))
        return [statistics.fmean(v) for v in by_seed.values()] + out

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)


def better(a: float, b: float, direction: str) -> bool:
    """Is value `a` better than `b` for this direction (the one comparison helper)."""
    return a > b if direction == "maximize" else a < b


def pooled_noise(runs: Iterable[Sequence[float]]) -> tuple[float | None, int]:
    """Seed-to-seed standard deviation pooled over configurations run more than once (each
    given as its values over seeds), and its degrees of freedom; (None, 0) without repeats, and
    (None, dof) when every repeat gave the same value as its configuration's other runs: then
    no spread was measured (only the metric's resolution), and a noise of 0 would make every
    difference look certain. A configuration whose runs all gave the same value adds nothing
    either way, for the same reason: it measured the resolution. (Until 2026-12-07 it added its
    degrees of freedom and no spread, so on a task where eight families scored 1.0 over four
    seeds each, their 24 degrees of freedom pulled the noise down to 0.0044, and momentum's
    four runs at 0.9667, one validation example of 30 below, were called separated from them:
    what `own_spread` had stopped for a configuration's own interval, through the pool.)"""
    num, dof, repeated = 0.0, 0, 0
    for values in runs:
        if len(values) >= 2:
            repeated += len(values) - 1
            if own_spread(values):
                num += (len(values) - 1) * statistics.variance(values)
                dof += len(values) - 1
    return (math.sqrt(num / dof), dof) if num > 0 else (None, repeated)


# The runs' best value so far at each epoch: (job id, trial number) -> [(epoch, best so far)].
Curves = Callable[[Sequence[HistoryTrial]], dict[tuple[str, int], list[tuple[int, float]]]]


def rank_families(trials: Sequence[HistoryTrial], direction: str,
                  counts: dict[str, dict[str, Any]] | None = None,
                  incomplete: dict[str, dict[str, Any]] | None = None,
                  metric: str | None = None, curves: Curves | None = None) -> dict[str, Any]:
    """Families ranked by the expected value the answer shows (that of each family's best
    configuration, chosen on a lower confidence bound so one lucky run does not beat a
    configuration confirmed over several seeds), with `ties` and a `verdict` decided from the
    intervals' kinds and bounds. `counts` (per family: n_trials, n_confirmation_runs, n_jobs,
    latest) gives the evidence when `trials` are only each family's best (the store's case);
    `incomplete` (per family tried without a complete trial: its evidence) is listed after the
    ranked families as `not_ranked`. `metric` bounds the intervals shown (an accuracy's
    interval never past 1; the verdict is the same either way, since cutting two intervals at
    a bound their means lie within never parts them). `curves` reads the best leader's runs'
    learning curves, to say where a family that never completed stood against it at the epoch
    it was stopped (`_at_stop`)."""
    sign = 1.0 if direction == "maximize" else -1.0
    bounds = METRIC_BOUNDS.get(metric or "", (None, None))
    scale = metric_scale((t.value for t in trials), direction)
    to_scale, _ = scale_fns(scale)
    configs: dict[tuple[str, tuple[Any, ...] | None], _Config] = {}
    by_family: dict[str, list[_Config]] = defaultdict(list)
    for t in trials:
        key = (t.config_key, t.setting)
        c = configs.get(key)
        if c is None:
            c = configs[key] = _Config(key, to_scale=to_scale)
            by_family[t.optimizer].append(c)
        c.trials.append(t)
    sigma, dof = pooled_noise(c.values for c in configs.values())
    measured_on = [c for c in configs.values() if own_spread(c.values)]

    def score(c: _Config) -> float:
        # Lower confidence bound: a configuration seen once is not trusted like one confirmed
        # over several seeds (confirmation runs weigh more than search trials). The lower end
        # of the 95% interval the pooled noise gives it, so a single run goes above a
        # configuration confirmed over n seeds only when ahead by more than t x sigma x
        # (1 - 1/sqrt(n)). (Until 2026-12-07 one sigma, without the t: on mlp/breast_cancer
        # AdaDelta's one run at 0.9737, the top value any run reached, went above its
        # configuration confirmed over three seeds, 0.9678, and led the tie for it.)
        penalty = (t975(max(dof, 1)) * sigma / math.sqrt(c.n)) if sigma is not None else 0.0
        return sign * c.mean - penalty

    entries = []
    best_of: dict[str, _Config] = {}
    for family, fam_configs in by_family.items():
        best = best_of[family] = max(fam_configs, key=score)
        fam_trials = [t for c in fam_configs for t in c.trials]
        entry = _family_entry(family, best, fam_configs, fam_trials, direction, sigma, scale,
                              dof)
        _clip(entry["expected"], bounds)
        if counts and family in counts:
            entry["evidence"].update(counts[family])
            entry["n_trials"], entry["n_jobs"] = counts[family]["n_trials"], \
                counts[family]["n_jobs"]
        # Configurations run to the end (over the whole history where `counts` says: `trials`
        # holds each family's best 20, and a family tuned over 23 was said to have 20), and the
        # family's trials stopped early (pruned, diverged, failed): how much the family was
        # tuned (`under_tuned`).
        complete = max(len(fam_configs), int(entry["evidence"].get("n_configurations") or 0))
        entry["evidence"]["configurations_tried"] = complete + int(
            ((incomplete or {}).get(family) or {}).get("n_trials", 0))
        # Its one configuration run to the end is the untuned baseline's (AdamW at its
        # defaults, `search.baseline`): its place is its defaults', not the family's tuned.
        rep = best.trials[0]
        entry["evidence"]["baseline_only"] = complete == 1 and is_baseline(
            rep.optimizer, rep.schedule, rep.params)
        entries.append(entry)
    # Ranked by the value shown, best first; ties by the interval's lower end, then the name.
    entries.sort(key=lambda e: (-sign * e["expected"]["value"],
                                -sign * (e["expected"]["low"] if sign > 0
                                         else e["expected"]["high"]), e["optimizer"]))
    groups = _tie_groups(entries)
    ranking = [e for group in groups for e in group]
    verdict, leaders = _verdict(ranking, groups)
    sep = to_separate(groups[0], sigma, direction, scale) if verdict == VERDICT_TIED else None
    bar = leader_bar(ranking, leaders, direction)
    not_ranked = [{"optimizer": f, "rank": None, "status": "no complete trial", "evidence": ev,
                   "may_lead": _may_lead(ev, bar, direction)}
                  for f, ev in sorted((incomplete or {}).items()) if f not in by_family]
    if curves is not None and bar is not None:
        _at_stop(not_ranked, bar[0], best_of[bar[0]].trials, curves, direction)
    # Families this history never ran: nothing is known of them, so a winner is the best of the
    # families tried, never "the best optimizer" (a job's space or budget may leave some out).
    # The history is one data split's (until 2026-12-07 the summary said "not tried on this
    # task", of families another split's search had run: `across_splits` names those).
    tried = set(by_family) | set(incomplete or {})
    not_tried = [f for f in FAMILIES if f not in tried] if by_family else []
    under_tuned = _under_tuned(ranking, leaders)
    wide = _tied_by_width(ranking, leaders, bar, direction) if verdict == VERDICT_TIED else []
    # Families whose best configuration gave the metric's best possible value in every run
    # (accuracy 1.0): the validation set cannot order them, however many runs are made.
    best_possible = bounds[1] if sign > 0 else bounds[0]
    at_ceiling = [e["optimizer"] for e in ranking if best_possible is not None
                  and all(t.value == best_possible for t in best_of[e["optimizer"]].trials)]
    at_ceiling = at_ceiling if len(at_ceiling) > 1 else []
    baseline_only = [e["optimizer"] for e in ranking if e["evidence"]["baseline_only"]]
    return {"noise": {"sigma": sigma, "dof": dof, "scale": scale,
                      "source": _noise_source(sigma, scale, dof, measured_on)},
            "robustness_tolerance": {"relative": ROBUSTNESS_REL_TOL,
                                     "absolute_min": None if scale == SCALE_LOG
                                     else ROBUSTNESS_ABS_TOL},
            "direction": direction, "ranking": ranking,
            "not_ranked": not_ranked,
            "ties": [[e["optimizer"] for e in g] for g in groups if len(g) > 1],
            "verdict": verdict, "leaders": leaders, "to_separate": sep, "not_tried": not_tried,
            "under_tuned": under_tuned, "tied_by_width": wide, "at_ceiling": at_ceiling,
            "baseline_only": baseline_only,
            "summary": _summary(ranking, verdict, leaders, not_ranked, sep, not_tried,
                                repeated=sigma is None and dof > 0, under_tuned=under_tuned,
                                direction=direction, tied_by_width=wide, bar=bar,
                                at_ceiling=(at_ceiling, best_possible),
                                baseline_only={f: (incomplete or {}).get(f) or {}
                                               for f in baseline_only})}


def _under_tuned(ranking: list[dict[str, Any]], leaders: list[str]) -> list[str]:
    """The families ranked below the leaders that were barely tuned: fewer than
    UNDER_TUNED_BELOW configurations tried (`evidence.configurations_tried`: complete, or
    stopped early), and fewer than the first leader. The ranking compares the best
    configurations found, so such a family's place is its few configurations', and tuned like
    the leader it may do better."""
    if not ranking:
        return []
    lead = ranking[0]["evidence"]["configurations_tried"]
    return [e["optimizer"] for e in ranking if e["optimizer"] not in leaders
            and e["evidence"]["configurations_tried"] < min(UNDER_TUNED_BELOW, lead)]


def _tied_by_width(ranking: list[dict[str, Any]], leaders: list[str], bar: Bar | None,
                   direction: str) -> list[str]:
    """The leaders in the tie only by the width of their own interval: their expected value
    lies outside the best leader's 95% interval (worse than its bad end), so the tie says that
    too few runs separate them, not that they are as good (on mlp/wine, adafactor's two runs
    at 0.39 and 0.08, 0.24 [0, 1], tied with AdamW at 1.0 [0.80, 1]). `bar`: `leader_bar`'s."""
    if bar is None or not bar[2]:
        return []
    best, at, _ = bar
    return [e["optimizer"] for e in ranking if e["optimizer"] in leaders
            and e["optimizer"] != best and better(at, e["expected"]["value"], direction)]


def _at_stop(not_ranked: list[dict[str, Any]], lead: str, runs: Sequence[HistoryTrial],
             curves: Curves, direction: str) -> None:
    """Where each family that never completed stood against the best leader when it was
    stopped: `leader_at_stop`, the range of that leader's best configuration's runs' best so
    far by the same epoch (the last any of the family's trials reached), and `level_at_stop`,
    its best intermediate value at least as good as the worst of those runs there. A pruner
    stops a trial against the trials beside it (a Hyperband bracket, the sweep's starts), not
    against the leader: a family stopped while level with the leader's configuration is not
    shown to be behind it, and the answer says so rather than leave it read as beaten."""
    stopped = [n for n in not_ranked if n["evidence"].get("max_stop_epoch")
               and n["evidence"].get("best_intermediate_value") is not None
               and math.isfinite(n["evidence"]["best_intermediate_value"])]
    if not stopped:
        return
    fetched = curves(runs)
    for n in stopped:
        epoch, v = n["evidence"]["max_stop_epoch"], n["evidence"]["best_intermediate_value"]
        at = [pts[-1][1] for c in fetched.values() if (pts := [p for p in c if p[0] <= epoch])]
        if not at:
            continue
        worst = min(at) if direction == "maximize" else max(at)
        n["leader_at_stop"] = {"optimizer": lead, "epoch": epoch, "low": min(at),
                               "high": max(at), "runs": len(at)}
        n["level_at_stop"] = not better(worst, v, direction)


def _may_lead(ev: dict[str, Any], bar: Bar | None, direction: str) -> bool:
    """Has a family with no complete trial already reached the best leader's 95% interval (its
    expected value where it has no confidence interval)? A trial's value is its best so far,
    so one stopped early (pruned at epoch 9 of 10, say) would have ended at least that good:
    such a family may be as good as the leaders, and the answer must not read as if it were
    behind them. The bar is the best leader's, not the weakest's: a family in the tie only by
    its wide interval (two runs far apart) would let a value far below the best pass. Until
    2026-12-06 it was the weakest leader's expected value, and a family at 0.53 by epoch 1 was
    called possibly as good as leaders at 1.0, beside one at 0.24 [0, 1]. `bar`: `leader_bar`'s."""
    v = ev.get("best_intermediate_value")
    if v is None or not math.isfinite(v):
        return False
    return bar is not None and not better(bar[1], v, direction)


# The best leader, the value at its interval's bad end (or its value), and whether that is an
# interval's bound (`leader_bar`).
Bar = tuple[str, float, bool]


def leader_bar(ranking: list[dict[str, Any]], leaders: list[str],
               direction: str) -> Bar | None:
    """The bar of `may_lead` and `tied_by_width`: the bound on the bad side of the 95% interval
    of the leader with the best expected value, or that value where its interval is not a
    confidence interval (a spread, or no noise). With that leader and whether the bar is an
    interval's bound."""
    lead = [e for e in ranking if e["optimizer"] in leaders]
    if not lead:
        return None
    best = (max if direction == "maximize" else min)(lead, key=lambda e: e["expected"]["value"])
    x = best["expected"]
    if x["kind"] not in CONFIDENCE_KINDS:
        return best["optimizer"], float(x["value"]), False
    return best["optimizer"], float(x["low"] if direction == "maximize" else x["high"]), True


def _clip(x: dict[str, Any], bounds: tuple[float | None, float | None]) -> None:
    """A confidence interval cut at what the metric can be (its `sd` is kept as computed)."""
    lo, hi = bounds
    if x["kind"] in CONFIDENCE_KINDS:
        if lo is not None:
            x["low"] = max(x["low"], lo)
        if hi is not None:
            x["high"] = min(x["high"], hi)


def _pooled_over(configs: Sequence[_Config]) -> str:
    """Which configurations the pooled noise was measured on, in words: "3 repeated
    configurations whose runs differ: adamw, nadam and rmsprop"; the baseline named as such,
    since where it is the only one the intervals of tuned families borrow an untuned
    configuration's spread."""
    families = []
    for c in configs:
        t = c.trials[0]
        name = ("the untuned baseline" if is_baseline(t.optimizer, t.schedule, t.params)
                else t.optimizer)
        if name not in families:
            families.append(name)
    return (f"{count(len(configs), 'repeated configuration')} whose runs differ: "
            f"{_some(families)}")


def _noise_source(sigma: float | None, scale: str, dof: int = 0,
                  measured_on: Sequence[_Config] = ()) -> str:
    if sigma is None and dof:
        return (f"none measured: every configuration run with several seeds gave the same value "
                f"on each ({dof} repeats), which shows the metric's resolution (a few validation "
                f"examples), not how far a new seed could land; so no family can be called "
                f"better than another")
    if sigma is None:
        return ("none: no configuration was run with several seeds, so no family can be called "
                "better than another (confirmation runs are on by default: "
                "search.confirm_top_k)")
    over = _pooled_over(measured_on) if measured_on else "repeated configurations"
    if scale == SCALE_LOG:
        return (f"seed-to-seed spread of {over}, on the log scale of the loss (sigma is in log "
                f"units: runs vary by about {as_factor(sigma)})")
    return f"seed-to-seed spread of {over}"


def _sd(e: dict[str, Any]) -> float | None:
    """The seed-to-seed sd behind a family's confidence interval, on the ranking's scale."""
    x = e["expected"]
    return float(x["sd"]) if x["kind"] in CONFIDENCE_KINDS else None


def runs_to_separate(gap: float, sd: float, limit: int = MAX_PROJECTED_RUNS) -> int | None:
    """The fewest runs n of each of two configurations whose means differ by `gap`, with
    seed-to-seed sd `sd`, at which their 95% t-intervals no longer overlap (the rule that calls
    a winner): 2 x t975(n - 1) x sd / sqrt(n) < gap. None when no gap was seen or more than
    `limit` runs would be needed."""
    if gap <= 0:
        return None
    for n in range(2, limit + 1):
        if 2 * t975(n - 1) * sd / math.sqrt(n) < gap:
            return n
    return None


def as_factor(x: float) -> str:
    """A difference in log units in words: `a factor of 1.002 (0.2%)`. (Three significant
    digits said "a factor of 1" of a gap of 0.2%.)"""
    pct = 100 * math.expm1(x)
    return f"a factor of {math.exp(x):.4g} ({pct:.2g}%)" if abs(pct) < 10 else \
        f"a factor of {math.exp(x):.3g} ({pct:.0f}%)"


def to_separate(tie: list[dict[str, Any]], sigma: float | None, direction: str,
                scale: str = SCALE_LINEAR) -> dict[str, Any] | None:
    """For a tie: what more evidence could tell its two best values apart. A projection, not a
    claim: if the gap seen between them is the true one, and their seed-to-seed sd stays what
    their runs show (the task's pooled sd where theirs is 0), this many runs of each would put
    their intervals apart. A lower bound: the gap between the two best of a tie is partly luck
    (they are the best of several), so it tends to shrink with more runs (on the corpus, a tie
    projected to part at 7 runs was still a tie at 7), and a gap that is noise stays a tie
    however many runs are made. On the log scale (a loss), `gap` and `sd` are in log units and
    the words give them as factors."""
    best = sorted(tie, key=lambda e: e["expected"]["value"], reverse=direction == "maximize")
    a, b = best[0], best[1]
    own = [x for x in (_sd(a), _sd(b)) if x is not None]
    sd = (statistics.fmean(own) if own else 0.0) or (sigma or 0.0)
    if sd <= 0:
        return None
    to_scale, _ = scale_fns(scale)
    gap = abs(to_scale(a["expected"]["value"]) - to_scale(b["expected"]["value"]))
    n = runs_to_separate(gap, sd)
    fams = f"{a['optimizer']} and {b['optimizer']}"

    def words(x: float) -> str:
        return as_factor(x) if scale == SCALE_LOG else f"{x:.3g}"

    if n is None:
        meaning = (f"no gap is seen between {fams} (the same expected value)" if gap <= 0 else
                   f"the gap seen between {fams} ({words(gap)}) is small against their "
                   f"seed-to-seed sd ({words(sd)}): even if it is real, more runs of each than a "
                   f"job can confirm ({MAX_PROJECTED_RUNS}, search.confirm_seeds at most "
                   f"{MAX_CONFIRM_SEEDS}) would be needed to tell it apart")
    else:
        meaning = (f"if the gap seen between {fams} ({words(gap)}) is real, at least {n} runs "
                   f"of each (search.confirm_seeds: {n - 1}) would be needed to tell it from "
                   f"the noise (seed-to-seed sd {words(sd)})")
    return {"families": [a["optimizer"], b["optimizer"]], "gap": gap, "sd": sd,
            "scale": scale, "runs_each": n, "confirm_seeds": None if n is None else n - 1,
            "meaning": meaning}


@lru_cache(maxsize=256)
def t975(dof: float) -> float:
    """The 97.5% quantile of Student's t with `dof` degrees of freedom (a two-sided 95%
    interval). SciPy is imported here, not at module level: its import costs most of a second,
    and the store and the CLI read jobs without ever needing it."""
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def _interval(best: _Config, fam_trials: list[HistoryTrial], direction: str,
              sigma: float | None, scale: str = SCALE_LINEAR, dof: int = 0) -> dict[str, Any]:
    """The family's expected value and its interval, computed on the ranking's scale and
    given in the metric's units. One run with the task's pooled noise: run ± t975(dof) x sigma,
    the t quantile of the noise estimate's degrees of freedom (a default job measures its noise
    over a handful of runs: at 4 degrees of freedom the interval is 2.78 sigma, not 1.96)."""
    _, back = scale_fns(scale)
    on_log = " of the loss's logarithm" if scale == SCALE_LOG else ""
    value = back(best.mean)
    if sigma is not None:  # some configuration was run with several seeds (the best, maybe)
        half = interval_half(best.values, sigma, dof)
        low, high = back(best.mean - half), back(best.mean + half)
        if own_spread(best.values):
            return {"value": value, "low": low, "high": high, "n": best.n, "kind": INTERVAL_T,
                    "sd": statistics.stdev(best.values),
                    "source": f"95% t-interval{on_log} over {best.n} seeds of the best "
                              f"configuration"}
        runs = ("one run" if best.n == 1 else
                f"the mean of {best.n} runs that all gave the same value (which shows the "
                f"metric's resolution, not its noise)")
        per = "" if best.n == 1 else f" / √{best.n}"
        return {"value": value, "low": low, "high": high, "n": best.n, "kind": INTERVAL_NOISE,
                "sd": sigma,
                "source": f"{runs} ± {t975(max(dof, 1)):.3g} x the task's seed-to-seed "
                          f"noise{on_log}{per} (the 95% t quantile of its {dof} degrees of "
                          f"freedom)"}
    top = sorted((t.value for t in fam_trials), reverse=direction == "maximize")
    top = top[:TOP_TRIALS_FOR_SPREAD]
    return {"value": value, "low": min(top), "high": max(top), "n": len(top),
            "kind": INTERVAL_SPREAD,
            "source": f"the best configuration's one run, and the range of the family's best "
                      f"{len(top)} trials (no repeated seeds: not a confidence interval)"}


def _family_entry(family: str, best: _Config, fam_configs: list[_Config],
                  fam_trials: list[HistoryTrial], direction: str,
                  sigma: float | None, scale: str = SCALE_LINEAR, dof: int = 0) -> dict[str, Any]:
    best_value = max(t.value for t in fam_trials) if direction == "maximize" else \
        min(t.value for t in fam_trials)
    # A loss on the log scale is judged relative to its size alone: with the absolute floor, a
    # best loss of 6e-7 counted every trial under 1e-3 (a thousand times worse) as good.
    tol = ROBUSTNESS_REL_TOL * abs(best_value) if scale == SCALE_LOG else \
        max(ROBUSTNESS_REL_TOL * abs(best_value), ROBUSTNESS_ABS_TOL)
    good = [t for t in fam_trials if abs(t.value - best_value) <= tol]
    lrs = [lr for t in good if (lr := t.lr()) is not None and lr > 0]
    decades = math.log10(max(lrs) / min(lrs)) if lrs else 0.0
    # Is the range's narrowness measured: a trial at a learning rate outside it did worse? Else
    # the range is only as wide as the learning rates the search happened to try, and says
    # nothing of how far the family works (`wider`).
    good_ids = {id(t) for t in good}
    bounded = bool(lrs) and any(
        (lr := t.lr()) is not None and lr > 0 and not min(lrs) <= lr <= max(lrs)
        for t in fam_trials if id(t) not in good_ids)
    # Under 2 learning rates tried, no range was measured (a narrow range is one where others
    # were tried and did worse).
    tried = len({lr for t in fam_trials if (lr := t.lr()) is not None})
    schedules: dict[str, float] = {}
    for t in fam_trials:
        s = t.schedule or "constant"
        if s not in schedules or better(t.value, schedules[s], direction):
            schedules[s] = t.value
    rep = best.trials[0]
    dates = [t.created_at for t in fam_trials if t.created_at is not None]
    expected = _interval(best, fam_trials, direction, sigma, scale, dof)
    return {
        "optimizer": family,
        "schedule": rep.schedule,
        "params": rep.params,
        "value": expected["value"],
        "best_trial_value": best_value,
        "expected": expected,
        "evidence": {"n_trials": len(fam_trials),
                     "n_confirmation_runs": sum(t.confirmation for t in fam_trials),
                     # of them, second looks: a run to the end of a trial the pruner stopped
                     # ("1 confirmation run" read as confirming a trial the answer never had)
                     "n_second_looks": sum(t.second_look for t in fam_trials),
                     # of them, runs of the untuned baseline (`search.baseline`): "adamw, 9
                     # trials" read as nine tuned trials where five were the baseline's
                     "n_baseline_runs": sum(is_baseline(t.optimizer, t.schedule, t.params)
                                            for t in fam_trials),
                     "n_configurations": len(fam_configs),
                     "n_jobs": len({t.job_id for t in fam_trials}),
                     "latest": max(dates) if dates else None,
                     "best_configuration_runs": best.n},
        "robustness": {"lr_decades": round(decades, 3), "n_good_trials": len(good),
                       "lr_range": [min(lrs), max(lrs)] if lrs else None,
                       "n_learning_rates": tried,
                       "bounded": bounded,
                       "tolerance": tol,
                       "meaning": _robustness_meaning(tol, decades, bounded, lrs)
                                  if tried > 1
                                  else "the family's complete trials ran one learning rate: "
                                       "no range was measured"},
        "cost": {"state_bytes_per_param": statistics.median(t.state_bytes_per_param
                                                            for t in fam_trials),
                 "seconds_per_epoch": statistics.median(t.seconds_per_epoch
                                                        for t in fam_trials)},
        "schedules": [{"schedule": k, "best_value": v} for k, v in
                      sorted(schedules.items(), key=lambda kv: -kv[1]
                             if direction == "maximize" else kv[1])],
        "job_id": rep.job_id, "trial_number": rep.number,
        "n_trials": len(fam_trials), "n_jobs": len({t.job_id for t in fam_trials}),
    }


def confident(e: dict[str, Any]) -> bool:
    """Is this family's interval a confidence interval (from repeated seeds)?"""
    return e["expected"]["kind"] in CONFIDENCE_KINDS


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Do the two families' intervals overlap (bounds only)?"""
    x, y = a["expected"], b["expected"]
    return bool(x["low"] <= y["high"] and y["low"] <= x["high"])


def separated(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Is one family ahead of the other by more than the noise: both intervals are confidence
    intervals and they do not overlap. Without a noise estimate, never."""
    return confident(a) and confident(b) and not overlap(a, b)


def wider(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Does family `a` work over a range of learning rates wider than `b`'s by at least
    ROBUSTNESS_STEP_DECADES, `b`'s range being measured (`bounded`: a trial of `b` at a learning
    rate outside it did worse)? What may put it ahead of `b` in a tie. A finer difference says
    nothing (one good trial more at a nearby learning rate moves it), and an unmeasured range
    is as narrow as the learning rates the search happened to try: on a team's churn data,
    adamw (two runs, 1e-3 and 1.5e-2, both good) went above proximal (0.914 over 3 runs
    against 0.903 over 1), whose only learning rates, 0.71 and 0.90, were both good too."""
    return bool(b["robustness"].get("bounded") and a["robustness"]["lr_decades"]
                >= b["robustness"]["lr_decades"] + ROBUSTNESS_STEP_DECADES - 1e-9)


def _shown(e: dict[str, Any]) -> tuple[float, float, float]:
    x = e["expected"]
    return x["value"], x["low"], x["high"]


def _tie_order(group: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A tie within the noise, in the order it is listed: `group` arrives best expected value
    first (equal values: the better end of the interval, then the cheaper optimizer state).
    Each place goes to the best remaining value, unless a remaining family's learning-rate
    range is wider than it by half a decade (`wider`): then to the best value among those,
    checked again the same way. So a family is listed above a better value only for a range
    wider than that value's by half a decade (binned at whole half-decades, 0.52 decades
    against 0.39 had crossed a bin and listed a worse value first). Only a family whose expected
    value lies within the interval of the group's best value may go above a better value this
    way: one outside it is in the tie only by its own interval's width (`tied_by_width`), not
    shown to be as good, and the family listed first is the one `start_from` recommends (until
    2026-12-06 it could: on the corpus's mlp-digits-b16, adadelta at 0.963 went above nadam,
    whose interval starts above 0.963, for its wider range)."""
    rest, out = list(group), []
    best = group[0]["expected"]
    liftable = [e for e in group if best["low"] <= e["expected"]["value"] <= best["high"]]
    while rest:
        pick = rest[0]
        while more := [e for e in rest if wider(e, pick) and any(e is x for x in liftable)]:
            pick = more[0]
        out.append(pick)
        rest.remove(pick)
    return out


def _tie_groups(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The best family not yet grouped and every other family not yet grouped whose interval
    overlaps its own form a group: the families that may be as good as its leader. A family
    with a wide interval (two runs, say) joins the leader's group wherever its value ranks it,
    so the first group holds every family that may be the best. (Grouping only neighbours in
    value order, a family ranked third with an interval spanning the leader's was left out of
    the tie, and the leader called the winner.) Inside a group of confidence intervals (a tie
    within the noise) the family that works over a wider range of learning rates (by at least
    half a decade) comes first, then the one with the better expected value, then the
    cheapest (`_tie_order`); groups without a noise estimate keep the order of their values,
    families level on them the widest learning-rate range first, then the cheapest.
    (Entries arrive best value first.)"""
    groups: list[list[dict[str, Any]]] = []
    rest = list(entries)
    while rest:
        lead = rest[0]
        group = [e for e in rest if e is lead or overlap(lead, e)]
        rest = [e for e in rest if all(e is not g for g in group)]
        groups.append(group)
    rank = 0
    for g in groups:
        # Families with the same value and interval keep their place among the others; among
        # themselves they are ordered below, never by name.
        first: dict[tuple[float, float, float], int] = {}
        for i, e in enumerate(g):
            first.setdefault(_shown(e), i)
        if all(confident(e) for e in g):
            g.sort(key=lambda e: (first[_shown(e)], e["cost"]["state_bytes_per_param"]))
            g[:] = _tie_order(g)
        else:
            # No noise estimate: the order of the values seen. Families level on them (a small
            # validation set's accuracy of 1.0 for six families) go widest learning-rate range
            # first, then the cheapest state: they were listed by name, and `start_from`
            # recommended adadelta at lr 2.4 on mlp/wine for its first letter.
            g.sort(key=lambda e: (first[_shown(e)], -e["robustness"]["lr_decades"],
                                  e["cost"]["state_bytes_per_param"]))
        for i, e in enumerate(g):
            rank += 1
            e["rank"] = rank
            e["tied_with"] = [x["optimizer"] for j, x in enumerate(g) if j != i]
    return groups


# How the answer's leader compares with the baseline (`versus_baseline`).
BASELINE_NOT_RUN = "not_run"          # no complete run of it at this budget: nothing is said
BASELINE_BEATEN = "beaten"            # the leader's interval is clear of it, on the good side
BASELINE_WITHIN_NOISE = "within_noise"  # their confidence intervals overlap
BASELINE_AHEAD = "ahead"              # the baseline's interval is clear of the leader's
BASELINE_NO_NOISE = "not_separated"   # no noise estimate: neither can be called better
BASELINE_IS_LEADER = "is_leader"      # the leader's configuration is the baseline itself
BASELINE_NOT_RANKED = "not_ranked"    # (`baseline_across_splits`) the family has no complete
                                      # trial on that split


def versus_baseline(trials: Sequence[HistoryTrial], ranked: dict[str, Any],
                    metric: str | None = None) -> dict[str, Any]:
    """The answer's leader against the baseline (AdamW at its defaults with cosine: what most
    teams train with untuned), by the rule that separates families: each a 95% interval on the
    ranking's scale (the baseline's over its own seeds, else one run +/- the task's pooled
    noise), `beaten` only when the leader's is clear of the baseline's. `trials`: complete runs
    of its family and schedule at the answer's budget; those at the baseline's configuration
    are its runs (a seed's repeats count once)."""
    out: dict[str, Any] = {"label": BASELINE_LABEL, "optimizer": BASELINE[0],
                           "schedule": BASELINE[1], "params": baseline_values()}
    runs = [t for t in trials if is_baseline(t.optimizer, t.schedule, t.params)]
    ranking = ranked.get("ranking") or []
    if not runs or not ranking:
        return {**out, "verdict": BASELINE_NOT_RUN, "expected": None, "gain": None,
                "summary": f"{BASELINE_LABEL} was not run on this task at this budget, so the "
                           f"answer does not say whether following it beats that "
                           f"(`search.baseline: true` in the spec, or `--baseline`, runs it)"}
    direction, noise = ranked["direction"], ranked["noise"]
    sigma, dof, scale = noise["sigma"], noise["dof"], noise["scale"]
    to_scale, back = scale_fns(scale)
    values = _Config(("baseline", None), list(runs), to_scale).values
    mean = statistics.fmean(values)
    expected: dict[str, Any] = {"value": back(mean), "n": len(values)}
    if own_spread(values) or sigma is not None:
        half = interval_half(values, sigma or 0.0, dof)
        expected.update(low=back(mean - half), high=back(mean + half),
                        kind=INTERVAL_T if own_spread(values) else INTERVAL_NOISE)
        _clip(expected, METRIC_BOUNDS.get(metric or "", (None, None)))
    lead = ranking[0]
    x = lead["expected"]
    gain = x["value"] - expected["value"] if direction == "maximize" \
        else expected["value"] - x["value"]
    runs_said = f"{len(values)} run{'s' if len(values) > 1 else ''}"
    shown = f"{expected['value']:.4g}" + (
        f" [{expected['low']:.4g}, {expected['high']:.4g}]" if "low" in expected else "") + \
        f" over {runs_said}"
    name = f"{lead['optimizer']} ({lead['schedule']})"
    if is_baseline(lead["optimizer"], lead["schedule"], lead["params"]):
        verdict = BASELINE_IS_LEADER
        said = (f"the leading configuration is {BASELINE_LABEL} itself ({shown}): tuning found "
                f"nothing better on this data split")
    elif "low" not in expected or x["kind"] not in CONFIDENCE_KINDS:
        verdict = BASELINE_NO_NOISE
        said = (f"against {BASELINE_LABEL} ({shown}), {name} is {_words_gain(gain)}, but there "
                f"is no noise estimate, so neither can be called better")
    elif better(x["low"] if direction == "maximize" else x["high"],
                expected["high"] if direction == "maximize" else expected["low"], direction):
        verdict = BASELINE_BEATEN
        said = (f"following the answer beats {BASELINE_LABEL} on this data split of the task: "
                f"{name} is "
                f"{_words_gain(gain)} ({x['value']:.4g} [{x['low']:.4g}, {x['high']:.4g}] "
                f"against {shown}), outside the noise")
    elif better(expected["low"] if direction == "maximize" else expected["high"],
                x["high"] if direction == "maximize" else x["low"], direction):
        verdict = BASELINE_AHEAD
        said = (f"{BASELINE_LABEL} ({shown}) is ahead of {name} ({x['value']:.4g}), outside "
                f"the noise: the search has not found its equal yet")
    else:
        verdict = BASELINE_WITHIN_NOISE
        said = (f"against {BASELINE_LABEL} ({shown}), {name} is {_words_gain(gain)}, within "
                f"the noise: on this data split following the answer is not shown to beat it")
    if verdict != BASELINE_IS_LEADER and not own_spread(values):
        said += _borrowed_noise(len(values), verdict == BASELINE_NO_NOISE)
    return {**out, "verdict": verdict, "expected": expected, "gain": gain,
            "leader": lead["optimizer"], "summary": said}


# The family against the baseline on one split, the family the subject: "rmsprop ... against it
# there: ahead of it, outside the noise on training.seed 0". (Until 2026-12-07 "beaten" and,
# where the baseline was ahead, "ahead of it": both read as the family's, the second the
# opposite of what was measured.)
_BASELINE_WORDS = {BASELINE_BEATEN: "ahead of it, outside the noise",
                   BASELINE_WITHIN_NOISE: "within the noise",
                   BASELINE_AHEAD: "behind it, outside the noise",
                   BASELINE_NO_NOISE: "not separated (no noise estimate)",
                   BASELINE_IS_LEADER: "its best configuration is the baseline itself",
                   BASELINE_NOT_RUN: "the baseline not run",
                   BASELINE_NOT_RANKED: "not ranked (no complete trial)"}


def baseline_across_splits(baseline: dict[str, Any], family: str,
                           per_split: Sequence[tuple[int, dict[str, Any] | None]]
                           ) -> dict[str, Any]:
    """The answer's `baseline` (`versus_baseline` of `family`, the family start_from takes) with
    `splits` added when the task was searched at the answer's budget on other data splits too:
    `per_split` holds (training.seed, `family`'s best configuration there against the baseline
    there, by that split's own runs and noise, never pooled; None where `family` completed no
    trial), the answer's split first. Whether following the answer beats the untuned default
    on one validation set is that split's evidence; a team that searched three splits is told
    on how many of those where both ran it was beaten (`beaten_on`, `run_on`), and the summary
    says it split by split. (Each split's own leader is not what the answer tells a team to
    train with.)"""
    if len(per_split) < 2:
        return baseline
    verdicts = [(sd, b["verdict"] if b else BASELINE_NOT_RANKED, b) for sd, b in per_split]
    run_on = [sd for sd, v, _ in verdicts if v not in (BASELINE_NOT_RUN, BASELINE_NOT_RANKED)]
    beaten_on = [sd for sd, v, _ in verdicts if v == BASELINE_BEATEN]
    groups: dict[str, list[int]] = {v: [] for v in _BASELINE_WORDS}  # beaten first
    for sd, v, _ in verdicts:
        groups[v].append(sd)
    brief = (f"{family} beat AdamW at lr 1e-3 with cosine on {len(beaten_on)} of the "
             f"{len(run_on)} data split{'s' if len(run_on) > 1 else ''} where both ran"
             if run_on else None)
    said = (f"; split by split, {family} (the answer's family, its best configuration on each "
            f"split) against it there, by each split's own runs and noise: " + "; ".join(
                f"{_BASELINE_WORDS[v]} on {_seeds(sds)}" for v, sds in groups.items() if sds)
            ) if run_on else ""
    return {**baseline, "summary": baseline["summary"] + said, "splits": {
        "optimizer": family,
        "per_split": [{"training_seed": sd, "verdict": v, "gain": b["gain"] if b else None}
                      for sd, v, b in verdicts],
        "beaten_on": beaten_on, "run_on": run_on, "brief": brief}}


def _borrowed_noise(runs: int, no_noise: bool) -> str:
    """What a baseline without a spread of its own leaves unknown, and how to measure it
    (`no_noise`: the task has no noise estimate either, so nothing was judged)."""
    how = ("the baseline ran once" if runs == 1 else
           f"the baseline's {runs} runs gave one value")
    if no_noise:
        return (f" ({how}; search.baseline_runs: 5 runs of it, each its own seed, measure a "
                f"spread of its own)")
    return (f" ({how}, so its interval borrows the task's seed-to-seed noise, measured on "
            f"repeated tuned configurations; an untuned one can vary far more: "
            f"search.baseline_runs: 5 measures its own)")


def _words_gain(gain: float) -> str:
    return "level" if gain == 0 else f"ahead by {gain:.3g}" if gain > 0 \
        else f"behind by {-gain:.3g}"


def _verdict(ranking: list[dict[str, Any]],
             groups: list[list[dict[str, Any]]]) -> tuple[str | None, list[str]]:
    """What may be claimed about the leaders, and who they are."""
    if not ranking:
        return None, []
    if len(ranking) == 1:
        return VERDICT_ONE_FAMILY, [ranking[0]["optimizer"]]
    first = groups[0]
    if len(first) > 1:
        kind = VERDICT_TIED if all(confident(e) for e in first) else VERDICT_NOT_SEPARATED
        return kind, [e["optimizer"] for e in first]
    lead, nxt = first[0], ranking[1]
    if all(separated(lead, e) for e in ranking[1:]):
        return VERDICT_WINNER, [lead["optimizer"]]
    return VERDICT_NOT_SEPARATED, [lead["optimizer"], nxt["optimizer"]]


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def _some(names: list[str]) -> str:
    """Up to SUMMARY_NAMES names, then how many more (the answer's fields list them all)."""
    if len(names) <= SUMMARY_NAMES:
        return _names(names)
    return ", ".join(names[:SUMMARY_NAMES]) + f" and {len(names) - SUMMARY_NAMES} more"


def _robustness_meaning(tol: float, decades: float, bounded: bool, lrs: list[float]) -> str:
    """What a family's `lr_decades` says, in words: a span of 0.00 decades is one learning rate
    (it read "span 0.00 decades of learning rate")."""
    if lrs and decades == 0:
        return (f"only trials at one learning rate ({lrs[0]:.3g}) came within {tol:.3g} of the "
                f"family's best" + ("; trials at others did worse" if bounded else
                                    "; no other learning rate was run to the end"))
    return (f"trials within {tol:.3g} of the family's best span {decades:.2f} decades of "
            f"learning rate" + ("; trials outside that range did worse" if bounded else
                                "; no trial run to the end outside that range did worse, so "
                                "how far it extends is not measured"))


def _why_first(ranking: list[dict[str, Any]], direction: str) -> str:
    """Why the first of a tie is listed first: the key of `_tie_order` that decided it."""
    lead, nxt = ranking[0], ranking[1]
    span = lead["robustness"]["lr_decades"]
    sign = 1.0 if direction == "maximize" else -1.0
    best = max((e for e in ranking if e is lead or e["optimizer"] in lead["tied_with"]),
               key=lambda e: sign * e["expected"]["value"])
    if best["expected"]["value"] != lead["expected"]["value"]:
        return (f"its good learning rates span {span:.2f} decades, wider by half a decade or "
                f"more than {best['robustness']['lr_decades']:.2f} for {best['optimizer']} "
                f"(whose trials outside its range did worse), whose expected value is better")
    if lead["expected"]["value"] != nxt["expected"]["value"]:
        return ("the best expected value of the tied families (none works over a range of "
                "learning rates half a decade wider than a tied family's measured range)")
    if _shown(lead) != _shown(nxt):
        x, y = lead["expected"], nxt["expected"]
        return (f"the same expected value as {nxt['optimizer']}, with a narrower interval "
                f"({x['n']} runs of its best configuration against {y['n']})")
    if lead["cost"]["state_bytes_per_param"] != nxt["cost"]["state_bytes_per_param"]:
        return (f"the same expected value and interval, and the least optimizer state "
                f"({lead['cost']['state_bytes_per_param']:.3g} bytes per parameter)")
    return "the same expected value, interval and optimizer state: listed by name"


def out_of_memory_note(not_ranked: Sequence[dict[str, Any]]) -> str:
    """'; every trial ran out of memory ...: adam, ...' for the families tried on the task
    whose every trial ran out of memory on its device (never measured), else ''."""
    no_room = [n["optimizer"] for n in not_ranked
               if 0 < n["evidence"].get("n_trials", 0) <= n["evidence"].get("n_out_of_memory", 0)]
    if not no_room:
        return ""
    return (f"; every trial ran out of memory on its device, so nothing is known of their value "
            f"on this task: {', '.join(no_room)} (a smaller training.batch_size, or more of a "
            f"GPU per trial, resources.gpus_per_trial, may let them run)")


def _summary(ranking: list[dict[str, Any]], verdict: str | None, leaders: list[str],
             not_ranked: list[dict[str, Any]], sep: dict[str, Any] | None = None,
             not_tried: Sequence[str] = (), repeated: bool = False,
             under_tuned: Sequence[str] = (), direction: str = "maximize",
             tied_by_width: Sequence[str] = (), bar: Bar | None = None,
             at_ceiling: tuple[Sequence[str], float | None] = ((), None),
             baseline_only: dict[str, dict[str, Any]] | None = None) -> str:
    tail = ""
    ceiling, best = at_ceiling
    for family, stopped in (baseline_only or {}).items():
        # On mlp/breast_cancer with --baseline, adamw's tuned trial was pruned and its one
        # complete run, the baseline's, ranked it last of the tie: read as tuned AdamW's place.
        # Its tuned trials stopped early are said as a family's that never completed are.
        value = stopped.get("best_intermediate_value")
        tuned = (f"its tuned trials here were stopped before the end ({how_ended(stopped)}, by "
                 f"epoch {stopped.get('max_stop_epoch', 0)}"
                 + (f", best intermediate value {value:.4g}" if value is not None else "") + ")"
                 if stopped.get("n_trials") else f"no tuned {family} trial ran at this budget")
        tail += (f"; {family}'s only configuration run to the end is the untuned baseline, "
                 f"{BASELINE_LABEL}: its place is that of its defaults, and says nothing of "
                 f"{family} tuned: {tuned}")
    if ceiling and best is not None:
        # Said plainly: on mlp/wine (36 validation examples) four of six tied families scored
        # 1.0 on every run, and the answer read as a tie the noise might yet part.
        tail += (f"; {_names(list(ceiling))} scored {best:.4g}, the best the metric can "
                 f"give, on every run of their best configurations: this validation set "
                 f"cannot tell them apart, however many runs are made (a larger one could)")
    if under_tuned:
        by = {e["optimizer"]: e["evidence"]["configurations_tried"] for e in ranking}
        lead = ranking[0]
        against = (f"against {by[lead['optimizer']]} for {lead['optimizer']}, so they may do "
                   f"better tuned")
        tail += (f"; {len(under_tuned)} families below the leaders were barely tuned (fewer "
                 f"than {UNDER_TUNED_BELOW} configurations each, {against}; under_tuned lists "
                 f"them)" if len(under_tuned) > SUMMARY_NAMES else
                 "; below the leaders but barely tuned (configurations tried, " + against
                 + "): " + ", ".join(f"{f} ({by[f]})" for f in under_tuned))
    # A few families are named with their evidence; more are counted (`not_ranked` and
    # `not_tried` list them), so the sentence stays readable after a default job of 14 families.
    # (Added to the barely-tuned note: until 2026-12-06 this replaced it, so a job with any
    # family stopped before completing, nearly every job, never said which were barely tuned.)
    if len(not_ranked) > SUMMARY_NAMES:
        tail += (f"; {len(not_ranked)} families never completed a trial (not_ranked lists "
                 f"them)")
    elif not_ranked:
        tail += "; never completed a trial: " + ", ".join(
            f"{n['optimizer']} ({count(n['evidence'].get('n_trials', 0), 'trial')}"
            + (f": {ended}" if (ended := how_ended(n["evidence"])) else "")
            + f", stopped by epoch {n['evidence'].get('max_stop_epoch', 0)})" for n in not_ranked)
    tail += out_of_memory_note(not_ranked)
    close = [n for n in not_ranked if n.get("may_lead")]
    if close and bar is not None:
        family, at, interval = bar
        reached = (f"within the 95% interval of {family}, the best leader ({at:.4g} or better)"
                   if interval else f"as good as {family}'s value, the best leader's ({at:.4g})")
        tail += (f"; stopped before completing, yet already {reached}, so possibly as good as "
                 f"the leaders (a complete run would tell): " + ", ".join(
                     f"{n['optimizer']} ({n['evidence']['best_intermediate_value']:.4g} by epoch "
                     f"{n['evidence'].get('max_stop_epoch', 0)})" for n in close))
    tail += _level_note(not_ranked)
    if len(not_tried) > SUMMARY_NAMES:
        tail += (f"; {len(not_tried)} families not tried on this data split at this budget, so "
                 f"nothing is known of them here (not_tried lists them)")
    elif not_tried:
        tail += (f"; not tried on this data split at this budget, so nothing is known of them "
                 f"here: {', '.join(not_tried)}")
    if verdict is None:
        return "no complete trial in this history" + tail
    lead = ranking[0]
    if verdict == VERDICT_ONE_FAMILY:
        return f"only {lead['optimizer']} completed a trial: nothing to compare it with" + tail
    if verdict == VERDICT_WINNER:
        nxt = ranking[1]
        # Families never run, or never run to the end, may be better: say what was compared.
        # And where: one data split's validation set (another split's search found another
        # family best on 4 of 6 such winners of linear/digits: benchmarks.split_agreement).
        scope = "on this data split of the task" if not (not_tried or not_ranked) else \
            f"of the {len(ranking)} families ranked on this data split of the task"
        return (f"{lead['optimizer']} is best {scope}: its interval is clear of every other "
                f"family's (ahead of {nxt['optimizer']}, the runner-up, by more than the "
                f"noise)" + tail)
    if verdict == VERDICT_TIED:
        return (f"{_names(leaders)} are tied on this data split of the task (differences within the noise); "
                f"{lead['optimizer']} is listed first: {_why_first(ranking, direction)}"
                + (f"; {sep['meaning']}" if sep else "")
                + _width_note(ranking, tied_by_width, bar) + tail)
    # Not separated: with a measured spread every interval is a confidence interval (tied or
    # winner above), so this is the case without a noise estimate.
    why = ("every configuration run with several seeds gave the same value on each, which "
           "measures the metric's resolution, not the noise" if repeated else
           "no configuration was run with several seeds")
    level = [e for e in ranking if e["optimizer"] in leaders
             and e["expected"]["value"] == lead["expected"]["value"]]
    said = f"there is no noise estimate ({why}), so none can be called better"
    if len(level) > 1 and len(level) == len(leaders):
        return (f"{_names(leaders)} are level on the values seen "
                f"({lead['expected']['value']:.4g} each; {lead['optimizer']} is listed first: "
                f"{_why_level(level)}) and not separated: {said}" + tail)
    return (f"{lead['optimizer']} leads on the values seen, but {_names(leaders)} are not "
            f"separated: {said}" + tail)


def _why_level(level: list[dict[str, Any]]) -> str:
    """Why the first of families level on their values (no noise estimate) is listed first:
    the key of `_tie_groups`' order for them that decided it."""
    lead, nxt = level[0], level[1]
    span = lead["robustness"]["lr_decades"]
    if span != nxt["robustness"]["lr_decades"]:
        return (f"its trials this good span the widest range of learning rates, {span:.2f} "
                f"decades")
    if lead["cost"]["state_bytes_per_param"] != nxt["cost"]["state_bytes_per_param"]:
        return (f"the same range of learning rates and the least optimizer state "
                f"({lead['cost']['state_bytes_per_param']:.3g} bytes per parameter)")
    return "the same range of learning rates and optimizer state: listed by name"


def how_ended(evidence: dict[str, Any]) -> str:
    """How a family's trials that never completed ended (its `not_ranked` evidence): `2
    pruned, 1 diverged`, `2 out of memory`, `1 interrupted` (its job cancelled, its worker lost
    or the database down, after an epoch); "" when the evidence does not say."""
    oom = evidence.get("n_out_of_memory") or 0
    cut = evidence.get("n_interrupted") or 0
    ends = ((evidence.get("n_pruned") or 0, "pruned"), (evidence.get("n_diverged") or 0, "diverged"),
            ((evidence.get("n_failed") or 0) - oom - cut, "failed"), (oom, "out of memory"),
            (cut, "interrupted"))
    return ", ".join(f"{n} {what}" for n, what in ends if n > 0)


def stop_range(at: dict[str, Any]) -> str:
    """`leader_at_stop`'s runs in words: `0.8444-0.9111`, or one value."""
    return f"{at['low']:.4g}" if at["low"] == at["high"] else f"{at['low']:.4g}-{at['high']:.4g}"


def _level_note(not_ranked: Sequence[dict[str, Any]]) -> str:
    """'; stopped early while level with or ahead of X's best configuration at the same epoch
    ...' for the
    families `_at_stop` found level (those that may lead are said above); where it found none
    level, that each was behind; else ''."""
    level = [n for n in not_ranked if n.get("level_at_stop") and not n.get("may_lead")]
    # (One already within the best leader's interval is said above, as possibly as good: "each
    # was behind" after it read as a contradiction, on churn data.)
    behind = [n for n in not_ranked if n.get("leader_at_stop") and not n.get("level_at_stop")
              and not n.get("may_lead")]
    if not level:
        if not behind:
            return ""
        who = "each was" if len(behind) == len(not_ranked) else \
            f"{_some([n['optimizer'] for n in behind])} {'was' if len(behind) == 1 else 'were'}"
        # Early, not at the budget: run to the end, such families reached the leader's interval
        # on 9 of 24 linear/breast_cancer jobs' (2 of 73 on the digits tasks):
        # benchmarks/pruned_families.py.
        it = ("they", "epochs they were") if who.endswith("were") else ("it", "epoch it was")
        return (f"; {who} behind {behind[0]['leader_at_stop']['optimizer']}'s best "
                f"configuration at the {it[1]} stopped, which does not say where {it[0]} would "
                f"have ended")
    lead = level[0]["leader_at_stop"]["optimizer"]

    def stood(n: dict[str, Any]) -> str:
        at = n["leader_at_stop"]
        return (f"{n['optimizer']} ({n['evidence']['best_intermediate_value']:.4g} by epoch "
                f"{at['epoch']}, {lead} {stop_range(at)})")

    shown = (f"{len(level)} families (not_ranked marks them level_at_stop)"
             if len(level) > SUMMARY_NAMES else ", ".join(map(stood, level)))
    # "level with or ahead of": at or past the worst of the leader's runs then (nadam at 0.70
    # by epoch 2 against adam's 0.66-0.69 read "level with"; a loss's adadelta at 0.0137
    # against adamw's 0.038-0.043 likewise)
    return (f"; stopped early while level with or ahead of {lead}'s best configuration at the "
            f"same epoch "
            f"(the pruner judged them against the trials beside them, not against {lead}), so "
            f"not shown to be behind it: {shown}")


def _width_note(ranking: list[dict[str, Any]], wide: Sequence[str], bar: Bar | None) -> str:
    """'; in the tie only because its own interval reaches into ...' for `tied_by_width`,
    else ''. Not "wide": such a family's interval may be narrow (12 runs), its value just
    outside the best leader's interval; its interval reaching that one is what makes the tie."""
    if not wide or bar is None:
        return ""
    by = {e["optimizer"]: e["expected"] for e in ranking}
    # A few are named with their intervals; more are counted (`tied_by_width` lists them).
    shown = (f"{len(wide)} families (tied_by_width lists them)" if len(wide) > SUMMARY_NAMES
             else ", ".join(f"{f} at {by[f]['value']:.4g} [{by[f]['low']:.4g}, "
                            f"{by[f]['high']:.4g}] over {count(by[f]['n'], 'run')}" for f in wide))
    what = (f"its own interval reaches into {bar[0]}'s, its expected value" if len(wide) == 1
            else f"their own intervals reach into {bar[0]}'s, their expected values")
    return (f"; in the tie only because {what} outside {bar[0]}'s interval, so not shown to be "
            f"as good (more runs would tell): {shown}")


_SPLIT_STATES = {"leads": "leads", "behind": "behind",
                 "not_separated": "not separated (no noise estimate)",
                 "not_ranked": "not ranked"}


def _seeds(seeds: Sequence[int]) -> str:
    return "training.seed " + ", ".join(str(sd) for sd in seeds)


def _standing(splits: Sequence[tuple[int, int, dict[str, Any]]]) -> dict[str, dict[str, list[int]]]:
    """Per family ranked on any of the splits, in the order first ranked (the answer's split
    first): the splits where it leads, is behind, is not separated or is not ranked."""
    families: dict[str, dict[str, list[int]]] = {}
    for _, _, ranked in splits:
        for e in ranked["ranking"]:
            families.setdefault(e["optimizer"], {k: [] for k in _SPLIT_STATES})
    for seed, _, ranked in splits:
        on = {e["optimizer"] for e in ranked["ranking"]}
        outside = "not_separated" if ranked["verdict"] == VERDICT_NOT_SEPARATED else "behind"
        for f, where in families.items():
            where["leads" if f in ranked["leaders"] else outside if f in on
                  else "not_ranked"].append(seed)
    return families


def _tried(ranked: dict[str, Any]) -> set[str]:
    """The families a split's history ran: ranked, or stopped before completing a trial."""
    return {e["optimizer"] for e in (*ranked["ranking"], *ranked.get("not_ranked", ()))}


def across_splits(splits: Sequence[tuple[int, int, dict[str, Any]]],
                  whose: str = "the team's") -> dict[str, Any] | None:
    """The answer's families on each of the task's data splits at its budget: `splits` holds
    (training.seed, complete trials, `rank_families` of that split's history), the answer's
    own split first. Each split is ranked on its own (two splits are two validation sets, so
    their values are never pooled): a family `leads` on a split when it is among that split's
    leaders; is `behind` when ranked there outside them on a split with a noise estimate (its
    interval clear of the best leader's); `not_separated` when ranked outside them on a split
    without one (nothing shows it behind); and `not_ranked` when it never completed a trial
    there. None with one split.

    What a team that ran its search on several splits asks: does the answer hold beyond this
    split? A family among the leaders on every split was shown behind on none of them; one
    that leads here but is behind on another split is good for this validation set, not shown
    for the task."""
    if len(splits) < 2:
        return None
    families = _standing(splits)
    n, seeds = len(splits), [sd for sd, _, _ in splits]
    here = splits[0][2]
    every = [f for f, w in families.items() if len(w["leads"]) == n]
    # With none on every split, those that lead on the most (when on more than one).
    most = max(len(w["leads"]) for w in families.values())
    nearly = [f for f, w in families.items() if len(w["leads"]) == most] \
        if not every and most > 1 else []
    short = f" ({_some(nearly)} on {most} of {n})" if nearly else ""
    clauses = [f"leading on every split: {_some(every)}" if every else
               f"no family leads on every split{short}"]
    first, verdict = (here["leaders"] or [None])[0], here["verdict"]
    pick = None
    if first is not None and first not in every:
        role = "the winner" if verdict == VERDICT_WINNER else "listed first"
        w = families[first]
        states = [f"{words} on {_seeds(w[k])}" for k, words in _SPLIT_STATES.items() if w[k]
                  and k != "leads"]
        # The leaders where it is behind, each list once with its splits.
        lead_there: dict[tuple[str, ...], list[int]] = {}
        for sd, _, r in splits[1:]:
            if sd in w["behind"]:
                lead_there.setdefault(tuple(r["leaders"]), []).append(sd)
        clauses.append(f"{first}, {role} on this split, is " + " and ".join(states)
                       + (" (leaders there: " + "; ".join(
                           f"{_some(list(ls))} on {_seeds(sds)}"
                           for ls, sds in lead_there.items()) + ")" if lead_there else ""))
        # A leader here that leads everywhere: the answer's start_from (a tie's order is
        # within the noise on this split; the other splits' evidence is not).
        pick = next((f for f in here["leaders"] if f in every), None)
        if pick is not None:
            clauses.append(f"{pick}, also among this split's leaders, leads on every split: "
                           f"start_from is its configuration")
    rest = [f for f in here["leaders"] if f != first and f not in every]
    if rest:
        clauses.append(f"this split's other leaders not leading on every split: {_some(rest)}")
    elsewhere = [f for f, w in families.items() if f not in here["leaders"] and w["leads"]]
    if elsewhere:
        clauses.append("leading on another split, not on this one: " + ", ".join(
            f"{f} ({_seeds(families[f]['leads'])})" for f in elsewhere[:SUMMARY_NAMES])
            + (f" and {len(elsewhere) - SUMMARY_NAMES} more" if len(elsewhere) > SUMMARY_NAMES
               else ""))
    # The families this split never ran that another split's search did (ranked there or not):
    # "not tried on this data split" is this split's word, not the task's.
    tried_there: dict[tuple[int, ...], list[str]] = {}
    for f in here.get("not_tried") or []:
        sds = tuple(sd for sd, _, r in splits[1:] if f in _tried(r))
        if sds:
            tried_there.setdefault(sds, []).append(f)
    if tried_there:
        clauses.append("not tried on this split, tried on another: " + ", ".join(
            f"{_some(fs)} ({_seeds(sds)})" for sds, fs in tried_there.items()))
    brief = (f"on {n} data splits, leading on all: {', '.join(every)}" if every else
             f"on {n} data splits, none leads on all{short}")
    return {"training_seeds": seeds,
            "per_split": [{"training_seed": sd, "n_complete_trials": k, "verdict": r["verdict"],
                           "leaders": r["leaders"]} for sd, k, r in splits],
            "families": families, "lead_on_every_split": every, "brief": brief,
            "lead_on_most": {"families": nearly, "splits": most} if nearly else None,
            "start_from": pick if first not in every else first,
            "summary": f"across {whose} {n} data splits at this budget ({_seeds(seeds[:1])}, "
                       f"this answer's, and {', '.join(str(sd) for sd in seeds[1:])}; each "
                       f"ranked on its own, never pooled): " + "; ".join(clauses)}


def read_across_splits(per_split: Sequence[tuple[int, int, dict[str, Any]]],
                       against: Callable[[int, dict[str, Any]], dict[str, Any]],
                       whose: str = "the team's"
                       ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[str, Any]]:
    """The answer's split read with its others (the service's answer about a task searched on
    several splits, and `tuner run --splits`): `per_split` as `across_splits` takes it, the
    answer's split first; `against(training_seed, ranked)`, `versus_baseline` on that split's
    trials; `whose` the splits are, in the summary (a team's, `tuner run`'s). Returns
    (`splits`, or None with one split; the ranking `start_from` takes its first
    family from; the answer's `baseline`).

    `start_from`'s family is the one listed first, unless it is not among the leaders on every
    split and another of this split's leaders is (a tie's order is within the noise on this
    split; the other splits' evidence is not): then that leader. Following the answer is
    training with it, so that family is held to the baseline, here and (its best configuration
    there) on each other split (`baseline_across_splits`)."""
    seed, _, here = per_split[0]
    splits = across_splits(per_split, whose)
    pick = (splits or {}).get("start_from")
    follow = [e for e in here["ranking"] if e["optimizer"] == pick] or here["ranking"]
    baseline = against(seed, {**here, "ranking": follow})
    if splits and follow:
        family = follow[0]["optimizer"]
        cells: list[tuple[int, dict[str, Any] | None]] = [(seed, baseline)]
        for sd, _, r in per_split[1:]:
            mine = [e for e in r["ranking"] if e["optimizer"] == family]
            cells.append((sd, against(sd, {**r, "ranking": mine}) if mine else None))
        baseline = baseline_across_splits(baseline, family, cells)
    return splits, follow, baseline


# A model that ignores its inputs, by metric and kind: what it predicts (`tuner.datasets.no_skill`).
NO_SKILL_PREDICTS = {
    ("val_accuracy", "classification"): "the training set's most common class",
    ("val_loss", "classification"): "the training set's class frequencies",
    ("val_loss", "regression"): "the training set's mean",
    ("val_r2", "regression"): "the training set's mean",
}
NO_SKILL_NONE = "no_better"          # the best family's value is no better than it
NO_SKILL_UNSHOWN = "not_shown"       # better on the values seen, not outside the noise
NO_SKILL_ABOVE = "above"             # better, its interval (or its runs' range) clear of it


def versus_no_skill(ranked: dict[str, Any], value: float | None, metric: str | None,
                    kind: str | None) -> dict[str, Any] | None:
    """The answer's best family against a model that ignores its inputs (`value`: what one
    scores on this data split's validation set; None when not known): a search whose best
    family is no better learned nothing from the inputs, whatever its families' order says.
    On a table whose label is 93% one class every family "tied" at 0.93, and the answer never
    said that predicting that class scores 0.93 (2026-12-07). `clause`: the summary's words
    where the best family is not clear of it ("" where it is); `summary`: the comparison in
    words whatever it found (`tuner recommend`'s `no skill:` line, the task page's)."""
    predicts = NO_SKILL_PREDICTS.get((metric or "", kind or ""))
    lead = next((e for e in ranked.get("ranking") or [] if e.get("expected")), None)
    if value is None or predicts is None or lead is None:
        return None
    sign = 1.0 if ranked.get("direction", "maximize") == "maximize" else -1.0
    # Its interval as the ranking gives it: a confidence interval where the noise was
    # measured, else the range of its runs (the values seen: nothing more can be said).
    x = lead["expected"]
    worst = x["low"] if sign > 0 else x["high"]
    verdict = (NO_SKILL_NONE if sign * x["value"] <= sign * value else
               NO_SKILL_ABOVE if sign * worst > sign * value else NO_SKILL_UNSHOWN)
    said = f"predicting {predicts} for every example"
    clause = {
        NO_SKILL_NONE: f"the best family, {lead['optimizer']}, at {x['value']:.4g}, does no "
                       f"better than {said} ({value:.4g} on this validation set): no family is "
                       f"shown to have learned anything from the inputs",
        NO_SKILL_UNSHOWN: f"the best family, {lead['optimizer']}, at {x['value']:.4g}, is not "
                          f"shown to do better than {said} ({value:.4g} on this validation "
                          f"set): its interval reaches it",
        NO_SKILL_ABOVE: ""}[verdict]
    # With no noise measured, "clear of" would claim a margin nobody measured: on mlp/wine
    # (3 trials, one run each) rmsprop's one run at 1.0 was "clear of" 0.3889, in the answer
    # that said no family could be called better than another for want of a noise estimate.
    above = (f"is clear of {said} ({value:.4g} on this validation set)"
             if x.get("kind") != "spread" else
             f"is above {said} ({value:.4g} on this validation set) on the values seen, every "
             f"run of its best configuration: there is no noise estimate to say by more than "
             f"the noise")
    return {"value": value, "predicts": predicts, "verdict": verdict, "clause": clause,
            "meaning": f"what {said} scores on this validation set",
            "summary": clause or f"the best family, {lead['optimizer']}, at {x['value']:.4g}, "
                                 f"{above}"}


def with_no_skill(summary: str, blind: dict[str, Any] | None) -> str:
    """The summary led by what `versus_no_skill` found, where the best family is not clear of
    a model that ignores its inputs: nothing after it matters as much."""
    return f"{blind['clause']}; {summary}" if blind and blind["clause"] else summary


def no_skill_words(rec: dict[str, Any]) -> str:
    """The one line's word on the answer against a model that ignores its inputs ("" where the
    best family is clear of it, or it is not known)."""
    ns = rec.get("no_skill") or {}
    short = str(ns.get("predicts", "")).replace("the training set's ", "the ")
    if ns.get("verdict") == NO_SKILL_NONE:
        return f"no better than predicting {short} ({ns['value']:.4g})"
    if ns.get("verdict") == NO_SKILL_UNSHOWN:
        return f"not shown to beat predicting {short} ({ns['value']:.4g})"
    return ""


def one_split_note(ranked: dict[str, Any], training_seed: int,
                   how: str = "`tuner submit --splits 3` submits the job on 3") -> str:
    """What a winner on one data split does not show, for an answer with no other split: on
    linear/digits, 4 of 6 winners of one split's search were behind on another split's
    (benchmarks.split_agreement). `how` to search more splits (the service's way; `tuner
    run`'s is its own `--splits`)."""
    if ranked.get("verdict") != VERDICT_WINNER or not ranked.get("leaders"):
        return ""
    return (f"; measured on one data split (training.seed {training_seed}) with one search: a "
            f"search on another split can find another family best, so search other splits too "
            f"({how}; the answer then says where each family stands on each) to know whether "
            f"{ranked['leaders'][0]} holds")


def brief(rec: dict[str, Any]) -> str:
    """An answer in a few words, for a list of tasks (`tuner tasks`; `/ui/tasks` says the same
    in ui.js): the verdict and its leaders, and which lead on every data split when the task
    was searched on several; for a transferred answer (no verdict: it predicts an order,
    nothing measured on the task), the first three of that order; for a prior one (literature
    defaults in the catalogue's order), that nothing informs it. A best family not clear of a
    model that ignores its inputs says so (`no_skill_words`)."""
    splits, blind = rec.get("splits"), no_skill_words(rec)
    # A family stopped before the end while already within the best leader's interval: the
    # verdict is of the families ranked, and this one may be as good (the summary said so, the
    # one line did not: "adadelta, nadam, adamw tied" where adagrad was at 0.540 by epoch 9).
    close = [str(n["optimizer"]) for n in rec.get("not_ranked") or [] if n.get("may_lead")] \
        if rec.get("method") == "direct" else []
    maybe = f"; stopped early yet possibly as good: {', '.join(close)}" if close else ""
    return _verdict_words(rec) + maybe + (f"; {blind}" if blind else "") \
        + (f"; {splits['brief']}" if splits else "")


# The answer against the untuned default in a few words, for a list of tasks (`tuner tasks`;
# /ui/tasks says the same in ui.js `againstText`).
AGAINST_DEFAULT_BRIEF = {
    BASELINE_BEATEN: "beats it", BASELINE_WITHIN_NOISE: "within the noise",
    BASELINE_AHEAD: "behind it", BASELINE_NO_NOISE: "no noise estimate",
    BASELINE_IS_LEADER: "its leader is it", BASELINE_NOT_RUN: "not run (search.baseline)"}


def against_default(rec: dict[str, Any]) -> str:
    """Where a direct answer stands against AdamW at lr 1e-3 with cosine, in a few words (on
    its split; with other splits, on how many of those where both ran its family beat it);
    "-" for a transferred or prior answer, which measured nothing on the task."""
    b = rec.get("baseline")
    if rec.get("method") != "direct" or not b:
        return "-"
    words = AGAINST_DEFAULT_BRIEF.get(b["verdict"], str(b["verdict"]))
    sp = b.get("splits")
    if sp and sp["run_on"]:
        words += (f" on this split; {sp['optimizer']} beats it on {len(sp['beaten_on'])} of "
                  f"{len(sp['run_on'])} split{'s' if len(sp['run_on']) > 1 else ''}")
    return words


# The answer against the untuned default (`baseline.verdict`), in a few words of a line.
AGAINST_DEFAULT = {
    BASELINE_BEATEN: "following it beats AdamW at lr 1e-3 with cosine, outside the noise",
    BASELINE_WITHIN_NOISE: "not shown to beat AdamW at lr 1e-3 with cosine (within the noise)",
    BASELINE_AHEAD: "AdamW at lr 1e-3 with cosine is ahead of its leader, outside the noise",
    BASELINE_NO_NOISE: "no noise estimate to hold it against AdamW at lr 1e-3 with cosine",
    BASELINE_IS_LEADER: "its leader is AdamW at lr 1e-3 with cosine itself",
    BASELINE_NOT_RUN: "AdamW at lr 1e-3 with cosine not run at this budget (search.baseline "
                      "or --baseline runs it)",
}


def in_short(rec: dict[str, Any]) -> str:
    """The answer in one line (a service answer's `in_short`; `tuner recommend`'s last line,
    the task page's headline): its verdict in a few words (`brief`, as /ui/tasks says it) and,
    for a direct answer, where it stands against the untuned default (on this split; and on
    how many of the task's data splits where the default ran it was beaten)."""
    baseline = rec.get("baseline") or {}
    against = AGAINST_DEFAULT.get(baseline.get("verdict") or "")
    across = (baseline.get("splits") or {}).get("brief")
    if against and across:
        against += f" on this split; {across}"
    # A team's loop that never used what its budget rests on (`loop_notes`): said here too, as
    # the one line is what a team reads of an answer (`tuner submit --wait`'s last line).
    loop = "; its loop's runs may not be what the budget says (loop_notes)" \
        if rec.get("loop_notes") else ""
    return brief(rec) + (f"; {against}" if against else "") + loop


def _verdict_words(rec: dict[str, Any]) -> str:
    ranking = rec.get("ranking") or []
    if rec.get("method") == "prior":  # its order is the catalogue's: nothing is predicted
        # (it said "predicted order: sgd, momentum, nesterov, …" of literature defaults)
        return "nothing measured on this task or a similar one yet"
    if rec.get("method") != "direct":
        top = [r["optimizer"] for r in ranking[:3]]
        # Similar tasks where no family learned: their order is of failures (the summary says
        # which; the one line said nothing of it until 2026-12-07).
        blind, of = len(rec.get("learned_nothing_on") or []), len(rec.get("similar_tasks") or [])
        nothing = (f"; on {blind} of its {of} similar tasks no family beat a model that ignores "
                   f"its inputs" if blind else "")
        return f"not measured here; predicted order: {', '.join(top)}, …{nothing}" if top else \
            "no answer yet"
    leaders, verdict = list(rec.get("leaders") or []), rec.get("verdict")
    ranked = sum(r.get("expected") is not None for r in ranking)
    first = leaders[0] if leaders else (ranking[0]["optimizer"] if ranking else "?")
    if verdict == VERDICT_WINNER:
        # As the summary scopes it: families never run to the end, or never run, may be better
        # (it said "clear of every other family" where 11 of 14 had never completed a trial).
        # One data split: said so (another split's search may find another family best).
        where = "" if rec.get("splits") else " on one data split"
        if rec.get("not_ranked") or rec.get("not_tried"):
            return f"{first} is best of {ranked} ranked{where}: clear of the others"
        return f"{first} is best{where}: clear of every other family"
    if verdict == VERDICT_TIED:
        wide = len(rec.get("tied_by_width") or [])
        ceiling = len(rec.get("at_ceiling") or [])
        # The families tried that never completed a trial, counted: "3 of 3 ranked" read as if
        # 3 were all there were (mlp on a diabetes table: 11 of 14 stopped in the sweep).
        unranked = len(rec.get("not_ranked") or [])
        return (f"tied within the noise: {', '.join(leaders)} ({len(leaders)} of {ranked} ranked"
                + (f"; {wide} only by interval overlap" if wide else "")
                + (f"; {ceiling} at the metric's best possible value" if ceiling else "")
                + (f"; {unranked} more never completed a trial" if unranked else "") + ")")
    if verdict == VERDICT_ONE_FAMILY:
        return f"only {first} completed a trial"
    if verdict == VERDICT_NOT_SEPARATED:
        # (mlp/wine, 3 trials: both leaders at 1.0 read as a tie a noise estimate might part)
        ceiling = len(rec.get("at_ceiling") or [])
        return (f"not separated (no noise estimate): {', '.join(leaders)}"
                + (f" ({ceiling} at the metric's best possible value)" if ceiling else ""))
    return "no complete trial yet"


# transfer -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class TaskProfile:
    """Features that make two tasks alike (see tuner.tasks.TaskFeatures)."""

    task_id: int | str | None
    model: str
    kind: str
    n_params: int
    depth: int
    input_shape: tuple[int, ...]
    n_train: int
    n_classes: int | None
    batch_size: int
    epochs: int

    def vector(self) -> dict[str, float]:
        return {
            "log10_params": math.log10(max(self.n_params, 1)),
            "depth": float(self.depth),
            "log10_n_train": math.log10(max(self.n_train, 1)),
            "log10_input_size": math.log10(max(math.prod(self.input_shape), 1)),
            "input_rank": float(len(self.input_shape)),
            "log2_classes": math.log2(max(self.n_classes or 1, 1)),
            "log2_batch_size": math.log2(max(self.batch_size, 1)),
            "log2_epochs": math.log2(max(self.epochs, 1)),
        }


# How much one unit of each feature counts (one decade of parameters ~ one of data size).
WEIGHTS = {"log10_params": 1.0, "depth": 0.3, "log10_n_train": 1.0, "log10_input_size": 0.7,
           "input_rank": 0.5, "log2_classes": 0.3, "log2_batch_size": 0.25, "log2_epochs": 0.25}
MODEL_MISMATCH = 1.0
KIND_MISMATCH = 3.0


def similarity(a: TaskProfile, b: TaskProfile) -> tuple[float, dict[str, float]]:
    """exp(-distance) in (0, 1]: weighted L1 over the features, plus penalties for another
    model family or another kind (classification vs regression). Returns the contributions."""
    va, vb = a.vector(), b.vector()
    parts = {k: WEIGHTS[k] * abs(va[k] - vb[k]) for k in WEIGHTS}
    parts["model"] = 0.0 if a.model == b.model else MODEL_MISMATCH
    parts["kind"] = 0.0 if a.kind == b.kind else KIND_MISMATCH
    return math.exp(-sum(parts.values())), parts


def similar_tasks(query: TaskProfile, candidates: Sequence[TaskProfile], k: int = 3,
                  min_similarity: float = MIN_SIMILARITY) -> list[dict[str, Any]]:
    """The k nearest candidates (not the query itself) above `min_similarity`, nearest first,
    each with its similarity and what made it differ."""
    out: list[tuple[float, dict[str, Any]]] = []
    for c in candidates:
        if c.task_id is not None and c.task_id == query.task_id:
            continue
        sim, parts = similarity(query, c)
        if sim < min_similarity:
            continue
        biggest = sorted(((v, n) for n, v in parts.items() if v > 0), reverse=True)[:2]
        why = "same model and kind, close in size" if not biggest else \
            "differs most in " + ", ".join(n for _, n in biggest)
        out.append((sim, {"task_id": c.task_id, "similarity": round(sim, 4),
                          "explanation": why, "model": c.model, "kind": c.kind}))
    out.sort(key=lambda pair: -pair[0])
    return [d for _, d in out[:k]]


def transfer_neighbours(query: TaskProfile, team: Sequence[TaskProfile],
                        corpus: Sequence[TaskProfile], k: int = 3
                        ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The tasks a transfer answer is drawn from, as (the corpus's, the team's), each nearest
    first; the corpus's are all nearer than the team's. The team's own tasks come first among
    equally near ones: its k nearest above `MIN_SIMILARITY`, with the reference corpus's tasks
    that are nearer than every one of them (at most k - 1, so the team's nearest is always
    used). With no team task that near, the corpus's k nearest above `CORPUS_MIN_SIMILARITY`.
    (Until 2026-12-06 a team task just above `MIN_SIMILARITY` shut the corpus out: a team with
    mlp/wine, 4 families ranked, was answered about mlp/breast_cancer from it alone, at 0.29,
    where the corpus held mlp/breast_cancer itself at 0.67 with every family ranked.)"""
    mine = similar_tasks(query, team, k)
    if not mine:
        return similar_tasks(query, corpus, k, min_similarity=CORPUS_MIN_SIMILARITY), []
    nearer = [n for n in similar_tasks(query, corpus, k - 1, min_similarity=MIN_SIMILARITY)
              if n["similarity"] > mine[0]["similarity"]]
    return nearer, mine[:k - len(nearer)]


def _runs(e: dict[str, Any]) -> int:
    """The runs (seeds) behind a ranked family's best configuration."""
    return int(e["evidence"].get("best_configuration_runs") or 1)


def transfer_ranking(neighbours: Sequence[tuple[dict[str, Any], dict[str, Any]]],
                     splits: Sequence[int] | None = None) -> dict[str, Any]:
    """Combine the rankings of similar tasks. Values of different tasks are not comparable, so
    on each task a family's expected value is normalised between the worst (0) and the best (1)
    family there; families tied (or not separated) there share their group's mean, so nobody is
    moved ahead by a difference within that task's noise. `score` is the similarity-weighted
    mean over the tasks. Families with equal scores are ordered by `evidence_score`, the same
    mean without pooling ties (the measured gaps, however small), then by name.

    A family that a task did not rank is scored there by what that task knows of it: one whose
    every trial diverged there as its worst (0); one never tried there, or stopped there before
    completing (its bracket's pruner, a failure), as that task's average family: not known to
    be better or worse. `coverage` is the share of the similarity behind the measured scores.
    (Until 2026-12-06 a family a task did not rank scored 0 there, as its worst: an answer
    drawn partly from a team task where 4 of 14 families completed put those 4 first.)

    `splits`: the neighbours are the task asked about, at the budget asked about, on these other
    data splits (training.seed), and the summary says so rather than "similar tasks" (a team's
    second split of a task was told of "the 3 most similar tasks", its own first split)."""
    score: dict[str, float] = defaultdict(float)
    raw: dict[str, float] = defaultdict(float)
    weight: dict[str, float] = defaultdict(float)
    best_from: dict[str, tuple[float, dict[str, Any], dict[str, Any], str | None]] = {}
    total = sum(n["similarity"] for n, _ in neighbours)
    per_task: list[tuple[float, dict[str, float], dict[str, float]]] = []
    for n, ranked in neighbours:
        entries = ranked["ranking"]
        normalised = _normalised_values(entries, ranked.get("direction", "maximize"),
                                        (ranked.get("noise") or {}).get("scale", SCALE_LINEAR))
        pooled = {}
        for e in entries:
            f = e["optimizer"]
            group = [g for g in (f, *e.get("tied_with", [])) if g in normalised]
            pooled[f] = statistics.fmean(normalised[g] for g in group)
            # The configuration to start from: the most similar task's; among tasks as similar
            # (the task's other data splits) the one whose best configuration ran over the
            # most seeds, the least lucky pick (it took the first split listed, whatever its
            # evidence: one run there against four confirmed runs on another split).
            if f not in best_from or (n["similarity"], _runs(e)) > (best_from[f][0],
                                                                     _runs(best_from[f][2])):
                best_from[f] = (n["similarity"], n, e, ranked.get("verdict"))
        for x in ranked.get("not_ranked") or []:
            ev = x.get("evidence") or {}
            if ev.get("n_trials") and ev.get("n_diverged") == ev["n_trials"]:
                pooled[x["optimizer"]] = normalised[x["optimizer"]] = 0.0
        per_task.append((n["similarity"], pooled, normalised))
    for sim, pooled, normalised in per_task:
        average = statistics.fmean(pooled.values()) if pooled else 0.5
        average_raw = statistics.fmean(normalised.values()) if normalised else 0.5
        for f in best_from:
            score[f] += sim * pooled.get(f, average)
            raw[f] += sim * normalised.get(f, average_raw)
            weight[f] += sim if f in pooled else 0.0
    ranking = []
    norm = max(total, 1e-12)
    for family in sorted(score, key=lambda f: (-round(score[f], 9), -raw[f], f)):
        sim, n, e, verdict = best_from[family]
        ranking.append({
            "optimizer": family, "score": round(score[family] / norm, 4),
            "evidence_score": round(raw[family] / norm, 4),
            "coverage": round(weight[family] / norm, 4),
            "schedule": e["schedule"], "params": e["params"], "value": None,
            "source_task": {"task_id": n["task_id"], "similarity": sim,
                            "source": n.get("source"), "budget": n.get("budget"),
                            "value_there": e["expected"]["value"],
                            "interval_there": [e["expected"]["low"], e["expected"]["high"]],
                            "tied_there_with": e.get("tied_with", []),
                            "verdict_there": verdict},
            "robustness": e["robustness"], "cost": e["cost"],
            "evidence": e["evidence"], "n_trials": e["n_trials"], "n_jobs": e["n_jobs"],
        })
    for i, r in enumerate(ranking, 1):
        r["rank"] = i
    summary = None
    if ranking:
        top = ranking[0]
        tied = top["source_task"]["tied_there_with"]
        # A family tied on a task scores its tie's mean there, so a tie scores alike: "best"
        # of one family only where no other shares its score.
        sharing = [r["optimizer"] for r in ranking if r["score"] == top["score"]]
        seeds = ", ".join(map(str, splits or ()))
        if splits:
            where = (f"over this task's other data split at this budget (training.seed {seeds})"
                     if len(splits) == 1 else f"over {len(splits)} other data splits of this "
                     f"task at this budget (training.seed {seeds})")
        else:
            where = ("over the most similar task" if len(neighbours) == 1 else
                     f"over the {len(neighbours)} most similar tasks")
        there = (f"on training.seed {(top['source_task']['budget'] or {}).get('training_seed')}"
                 if splits else "on the nearest where it ran")
        head = (f"{top['optimizer']} scores best {where}" if len(sharing) == 1 else
                f"{_some(sharing)} share the best score {where} (a family tied on a task "
                f"scores its tie's mean there); {top['optimizer']} is listed first for its own "
                f"values there")
        # Families grouped there are tied (intervals overlap) only where that task measured a
        # noise; where it had none they are level on the values seen, which says less.
        # (Until 2026-12-07 both read "tied ... (within the noise)".)
        level = top["source_task"]["verdict_there"] == VERDICT_NOT_SEPARATED
        summary = (head + ((f"; {there} it is level with {_some(tied)} on the values seen "
                            f"(not separated: no noise estimate there)" if level else
                            f"; {there} it is tied with {_some(tied)} (within the noise)")
                           if tied else "")
                   + ("; a prediction from the task's other data splits, not a measurement on "
                      "this one (each split's validation set is its own): a job on this split "
                      "measures the families" if splits else
                      "; a prediction from similar tasks, not a measurement of this task at this "
                      "budget: a job on it measures the families"))
    # A similar task whose best family did no better than a model that ignores its inputs
    # ranked failures: said, as its own answer leads with it.
    blind = [str(n.get("corpus_task") or f"task {n.get('task_id')}") for n, r in neighbours
             if (r.get("no_skill") or {}).get("verdict") == NO_SKILL_NONE]
    if summary and blind:
        summary += (f"; on {_names(blind)} no family did better than a model that ignores its "
                    f"inputs, so {'its' if len(blind) == 1 else 'their'} order says little of "
                    f"which optimizer learns")
    # A family no similar task ranked is not predicted at all, not predicted to be worse.
    # (Until 2026-12-06 such families were left out without a word: an answer from a team task
    # where 4 families completed said nothing of the other 10.)
    not_tried = [f for f in FAMILIES if f not in score]
    if summary and not_tried:
        these = "these splits" if splits else "these tasks"
        summary += (f"; {len(not_tried)} families have no complete trial on any of {these}, "
                    f"so nothing is predicted of them (not_tried lists them)"
                    if len(not_tried) > SUMMARY_NAMES else
                    f"; no complete trial on any of {these}, so nothing is predicted of "
                    f"them: {', '.join(not_tried)}")
    return {"ranking": ranking, "summary": summary, "not_tried": not_tried,
            "learned_nothing_on": blind}


def _normalised_values(entries: list[dict[str, Any]], direction: str,
                       scale: str = SCALE_LINEAR) -> dict[str, float]:
    """Each family's expected value on one task, on the ranking's scale (a loss's logarithm),
    scaled so the worst family there is 0 and the best 1 (all 1 when they are equal)."""
    if not entries:
        return {}
    sign = 1.0 if direction == "maximize" else -1.0
    to_scale, _ = scale_fns(scale)
    v = {e["optimizer"]: sign * to_scale(e["expected"]["value"]) for e in entries}
    hi, lo = max(v.values()), min(v.values())
    return {f: (x - lo) / (hi - lo) if hi > lo else 1.0 for f, x in v.items()}


# Learning rate against batch size: linear for SGD-like updates (Goyal et al., 2017), square
# root for adaptive ones (Malladi et al., 2022).
SGD_LIKE = ("sgd", "momentum", "nesterov", "proximal")


def scale_lr_for_batch(optimizer: str, params: dict[str, Any], from_batch: int,
                       to_batch: int) -> tuple[dict[str, Any], float]:
    """A configuration's learning rates moved from one batch size to another; returns the new
    params and the factor applied (1.0 when the batch sizes are equal)."""
    if from_batch == to_batch or from_batch <= 0 or to_batch <= 0:
        return dict(params), 1.0
    base = params.get("lookahead.base") if optimizer == "lookahead" else optimizer
    power = 1.0 if base in SGD_LIKE else 0.5
    factor = (to_batch / from_batch) ** power
    out = {k: (v * factor if k.endswith(".lr") and isinstance(v, int | float)
               and not isinstance(v, bool) else v) for k, v in params.items()}
    return out, factor


def prior_ranking() -> dict[str, Any]:
    """No history: every family at its literature defaults, clearly not measured."""
    return {"ranking": [{"optimizer": name, "rank": None, "schedule": "constant",
                         "params": {f"{name}.{p.name}": p.default for p in f.params
                                    if not p.requires},
                         "value": None, "n_trials": 0, "n_jobs": 0}
                        for name, f in FAMILIES.items()],
            "note": "no finished trials for this task or a similar one in your team's history: "
                    "literature defaults of each family, not measured"}
