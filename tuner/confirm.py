"""Confirmation runs as an adaptive race (pure): after the search, the leading configurations are
re-run with new seeds, round by round, until the leader is separated from every other candidate
(by the answer's own interval rule: `still_racing`), the reserved share of the budget is spent,
or each has `confirm_seeds` extra runs. A default job
of 4 or more trials thus ends with a seed-to-seed noise estimate (when at least one of its trials
completed), so its intervals are confidence intervals.

The dispatcher and the in-process search both call `next_round` after the search and after each
round; it reads only the trials themselves, so a restarted dispatcher continues the same race."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.recommend import better, interval_half, metric_scale, pooled_noise, scale_fns

if TYPE_CHECKING:
    from tuner.spec import JobSpec

CONFIRM_SEED_OFFSET = 1000  # confirmation seeds: training.seed + 1000, + 1001, ...

STOP_SEPARATED = "the leader is separated from the other candidates"
STOP_BUDGET = "the reserved share of the budget is spent"
STOP_SEEDS = "every candidate has its confirm_seeds extra runs"
STOP_NOTHING = "no complete trial to confirm"
LOOK_SHARE = 3  # second looks take at most 1/LOOK_SHARE of the race's reserved runs


def confirm_reserve(n_trials: int, top_k: int, share: float) -> int:
    """Runs reserved for the race out of a budget of `n_trials`: floor(share x n_trials), so
    0 when turned off or for budgets under 1/share trials; the search keeps at least one."""
    if top_k <= 0 or share <= 0 or n_trials < 2:
        return 0
    return min(n_trials - 1, math.floor(share * n_trials))


def job_confirm_reserve(spec: JobSpec) -> int:
    """Runs of the spec's `budget.n_trials` reserved for the race."""
    s = spec.search
    return confirm_reserve(spec.budget.n_trials, s.confirm_top_k, s.confirm_share)


@dataclass(frozen=True)
class RaceTrial:
    """What the race needs of a trial: finished or not, its value, and what it repeats."""

    number: int
    optimizer: str | None
    config_key: str | None
    value: float | None
    complete: bool
    finished: bool
    confirm_of: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  # Optuna parameters, to enqueue
    # Its reported values by epoch (Optuna's intermediate values): where a pruned trial stood.
    intermediate: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfirmRun:
    params: dict[str, Any]
    confirm_of: int
    seed: int


@dataclass
class _Candidate:
    trial: RaceTrial
    values: list[float]  # the search run's, then its complete confirmation runs'
    reruns: int = 0  # confirmation runs so far, finished or not (each took the next seed)
    pending: int = 0

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)


def _looks(trials: Sequence[RaceTrial]) -> set[int]:
    """The trials that are second looks: confirmation runs of a trial that did not complete
    (`second_looks`); the race takes them as search runs of their configuration."""
    complete = {t.number for t in trials if t.complete}
    return {t.number for t in trials if t.confirm_of is not None and t.confirm_of not in complete}


def candidates(trials: Sequence[RaceTrial], direction: str, top_k: int) -> list[_Candidate]:
    """The best search configuration of each of the top `top_k` families (the comparison a
    recommendation makes), topped up with the next-best configurations when fewer families ran;
    each with its values over seeds so far. A second look's complete run counts as a search
    run of its configuration."""
    looks = _looks(trials)
    search = sorted((t for t in trials if (t.confirm_of is None or t.number in looks)
                     and t.complete and t.value is not None and t.config_key is not None),
                    key=lambda t: (-(t.value or 0.0) if direction == "maximize" else t.value or 0.0,
                                   t.number))
    chosen: list[RaceTrial] = []
    keys: set[str | None] = set()
    families: set[str | None] = set()
    for t in search:  # one per family first
        if len(chosen) < top_k and t.optimizer not in families and t.config_key not in keys:
            chosen.append(t)
            families.add(t.optimizer)
            keys.add(t.config_key)
    for t in search:
        if len(chosen) < top_k and t.config_key not in keys:
            chosen.append(t)
            keys.add(t.config_key)
    out = []
    for c in chosen:
        reps = [t for t in trials if t.confirm_of == c.number]
        # Every complete run of its configuration, as the answer counts them: the search may
        # have run it over several seeds already (the baseline's runs, a configuration drawn
        # again), which counted as one run until 2026-12-07, so the baseline as AdamW's best
        # was raced and re-run as if unmeasured beside its five runs.
        same = [t for t in trials if c.number not in (t.number, t.confirm_of)
                and t.config_key == c.config_key]
        out.append(_Candidate(c, [float(c.value or 0.0)]
                              + [float(t.value) for t in (*same, *reps)
                                 if t.complete and t.value is not None],
                              reruns=len(reps), pending=sum(not t.finished for t in reps)))
    return out


def repeats(trials: Sequence[RaceTrial]) -> list[list[float]]:
    """The values of each of the job's configurations run more than once, candidates and
    others (the baseline's runs over its seeds, a configuration drawn again): the seed-to-seed
    noise the answer pools."""
    groups: dict[str, list[float]] = {}
    for t in trials:
        if t.complete and t.value is not None and t.config_key is not None:
            groups.setdefault(t.config_key, []).append(float(t.value))
    return [v for v in groups.values() if len(v) > 1]


def still_racing(cands: Sequence[_Candidate], direction: str,
                 pool: Sequence[Sequence[float]]) -> list[_Candidate]:
    """The candidates not separated from the leader, by the recommendation's own rule
    (tuner.recommend): a 95% t-interval over each candidate's runs (its search run and its
    confirmation runs), one run ± t975(dof) x the pooled seed-to-seed noise, a loss on its
    logarithm; the candidates whose interval overlaps the leader's race on. The noise is pooled,
    as the answer pools it, over every repeated configuration: `pool` (`repeats`: the job's,
    those of configurations that are not candidates included). Without a noise estimate, all
    of them.
    (Until 2026-11-24 the race used the pooled noise for every candidate, a looser test than
    the answer's: a job could note "the leader is separated" while its answer called the same
    families tied, with reserved runs left unspent. Until 2026-12-07 it pooled the candidates'
    runs alone, so with none repeated yet every candidate raced: `make demo`'s race ran AdaGrad
    at 0.28 beside AdamW at 0.97, where the baseline's five runs already put the noise at
    0.007, and again when its two scattered runs gave a t-interval reaching 0.)"""
    if not cands:
        return []
    to_scale, _ = scale_fns(metric_scale([v for c in cands for v in c.values]
                                         + [v for o in pool for v in o], direction))
    runs = [[to_scale(v) for v in c.values] for c in cands]
    sigma, dof = pooled_noise([to_scale(v) for v in o] for o in pool)
    if sigma is None:
        return list(cands)

    def bounds(v: list[float]) -> tuple[float, float]:
        mean, half = statistics.fmean(v), interval_half(v, sigma, dof)
        return mean - half, mean + half

    lead = 0
    for i in range(1, len(cands)):
        if better(statistics.fmean(runs[i]), statistics.fmean(runs[lead]), direction):
            lead = i
    lo, hi = bounds(runs[lead])
    return [c for i, (c, v) in enumerate(zip(cands, runs, strict=True))
            if i == lead or (bounds(v)[0] <= hi and lo <= bounds(v)[1])]


def looked_at(trials: Sequence[RaceTrial]) -> list[str]:
    """The families given a second look (`second_looks`), in the order they were run."""
    looks = _looks(trials)
    return list(dict.fromkeys(str(t.optimizer) for t in sorted(trials, key=lambda t: t.number)
                              if t.number in looks and t.optimizer is not None))


def confirm_note(total: int, n_trials: int, why: str, looked: Sequence[str]) -> str:
    """The job's note on its confirmation runs: how many, why the race ended, and the families
    given a second look among them."""
    return (f"confirmation: {total} runs ({total / max(n_trials, 1):.0%} of the budget)"
            + (f", {len(looked)} of them a second look at a family stopped early while level "
               f"with the leader, run to the end ({', '.join(looked)})" if looked else "")
            + f"; stopped: {why}")


def _best_so_far(values: dict[int, float], epoch: int, direction: str) -> float | None:
    seen = [v for e, v in values.items() if e <= epoch and math.isfinite(v)]
    if not seen:
        return None
    return max(seen) if direction == "maximize" else min(seen)


def second_looks(trials: Sequence[RaceTrial], direction: str, cands: Sequence[_Candidate],
                 limit: int) -> list[RaceTrial]:
    """Families the search stopped before any of their trials completed, one of which was level
    with the leader when it was stopped: at its last epoch, its best value so far at least as
    good as that of the worst of the leader's runs by the same epoch (the answer's
    `level_at_stop`). The pruner judged it against the trials beside it (its Hyperband bracket),
    not against the leader, so nothing says it is behind; a complete run of it, out of the
    reserved runs, says where it ends. Each family's most advanced such trial, at most `limit`,
    those furthest ahead first; none for a family that had one already. (mlp on a team's
    diabetes table, 30 trials: rmsprop pruned at epoch 1 at 0.538, inside the leader's interval,
    adam and lookahead level with it, and the answer could only say "a complete run would
    tell".)"""
    if not cands or limit <= 0:
        return []
    sign = 1.0 if direction == "maximize" else -1.0
    lead = max(cands, key=lambda c: sign * c.mean)
    runs = [lead.trial.intermediate] + [t.intermediate for t in trials if t.complete and (
        t.confirm_of == lead.trial.number
        or (t.config_key == lead.trial.config_key and t.number != lead.trial.number))]
    done = {t.optimizer for t in trials if t.complete}
    looked = {t.optimizer for t in trials if t.number in _looks(trials)}
    found: dict[str, tuple[float, RaceTrial]] = {}
    for t in trials:
        if not t.finished or t.complete or not t.intermediate or t.optimizer is None \
                or t.optimizer in done or t.optimizer in looked or t.confirm_of is not None:
            continue
        epoch = max(t.intermediate)
        mine = _best_so_far(t.intermediate, epoch, direction)
        theirs = [v for r in runs if (v := _best_so_far(r, epoch, direction)) is not None]
        if mine is None or not theirs:
            continue
        worst = min(theirs) if direction == "maximize" else max(theirs)
        if better(worst, mine, direction):
            continue  # behind every run of the leader by then
        ahead = sign * (mine - worst)
        if t.optimizer not in found or (epoch, ahead) > (max(found[t.optimizer][1].intermediate),
                                                         found[t.optimizer][0]):
            found[t.optimizer] = (ahead, t)
    chosen = sorted(found.values(), key=lambda x: -x[0])[:limit]
    return [t for _, t in chosen]


def next_round(trials: Sequence[RaceTrial], direction: str, *, top_k: int, max_seeds: int,
               budget_left: int, base_seed: int,
               second_look: bool = True) -> tuple[list[ConfirmRun], str | None]:
    """The next round of confirmation runs, or ([], why the race is over). While a round's runs
    are still pending, ([], None): wait for them. First, out of the same reserve, one complete
    run of each family stopped early while level with the leader (`second_looks`, at most
    `top_k` and a third of the reserve, looks already taken counted), unless `second_look` is
    off; they then race like search runs."""
    cands = candidates(trials, direction, top_k)
    if not cands:
        return [], STOP_NOTHING
    looks = _looks(trials)
    if any(c.pending for c in cands) or any(
            t.number in looks and not t.finished for t in trials):
        return [], None
    if second_look and budget_left > 0:
        # At most a third of the reserve: the rest stays with the race, whose repeats of the
        # leaders measure the noise every verdict rests on (with 3 of 7 runs on second looks,
        # one mlp/digits job's pooled noise rested on 2 degrees of freedom, and its answer
        # no longer beat the untuned baseline outside it: benchmarks.baseline_check).
        reserve = budget_left + sum(t.confirm_of is not None for t in trials)
        cap = reserve // LOOK_SHARE - len(looks)
        again = second_looks(trials, direction, cands, min(top_k, budget_left, cap))
        if again:
            return [ConfirmRun(dict(t.params), t.number, base_seed + CONFIRM_SEED_OFFSET)
                    for t in again], None
    racing = still_racing(cands, direction, repeats(trials))
    # The leader runs again at least once, separated or not, unless it ran over several seeds
    # already: one search run is the best of many, lucky by selection, and only a fresh seed
    # shows what it gives.
    if len(cands) > 1 and len(racing) <= 1 and (len(racing[0].values) > 1 or racing[0].reruns):
        return [], STOP_SEPARATED
    racing = [c for c in racing if len(c.values) - 1 < max_seeds]
    if not racing:
        return [], STOP_SEEDS
    if budget_left <= 0:
        return [], STOP_BUDGET
    racing.sort(key=lambda c: -c.mean if direction == "maximize" else c.mean)
    return [ConfirmRun(dict(c.trial.params), c.trial.number,
                       base_seed + CONFIRM_SEED_OFFSET + c.reruns)
            for c in racing[:budget_left]], None
