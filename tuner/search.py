"""Samplers, pruners, study creation (with the defaults sweep) and the in-process search."""

from __future__ import annotations

import hashlib
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler

from tuner.attrs import (
    ATTR_BASELINE,
    ATTR_CONFIG,
    ATTR_CONFIRM_OF,
    ATTR_RECORD,
    ATTR_SEED,
    ATTR_SWEEP,
    ATTR_WARM_START,
)
from tuner.confirm import (
    STOP_BUDGET,
    STOP_NOTHING,
    RaceTrial,
    confirm_note,
    job_confirm_reserve,
    looked_at,
    next_round,
)
from tuner.errors import DataChanged, DataError, SpecError, TrialsFailed, TunerError, UnknownName
from tuner.objective import Objective, Provenance
from tuner.results import answer, failing_alike, leaderboard, study_records, trial_record
from tuner.sampling import SearchSpace
from tuner.space import BASELINE, BASELINE_LABEL, TrialConfig, is_baseline
from tuner.spec import PRUNERS, SAMPLERS, SWEEP_PRUNINGS, TRAINING_FORMAT, JobSpec
from tuner.trial import DATA_ERROR, SameFailure, TrialRecord, config_key


def _indep(seed: int | None) -> BaseSampler:
    # CMA-ES, GP and QMC handle the conditional part of the space (the family's own parameters)
    # with an independent random sampler.
    return optuna.samplers.RandomSampler(seed=seed)


# name -> factory(seed, parallel); the names are tuner.spec.SamplerName.
SAMPLER_FACTORIES: dict[str, Callable[[int | None, bool], BaseSampler]] = {
    # TPE uses constant_liar when trials run in parallel.
    "tpe": lambda seed, parallel: optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=True, constant_liar=parallel),
    "random": lambda seed, parallel: optuna.samplers.RandomSampler(seed=seed),
    "cmaes": lambda seed, parallel: optuna.samplers.CmaEsSampler(
        seed=seed, independent_sampler=_indep(seed), warn_independent_sampling=False,
        consider_pruned_trials=True),
    "gp": lambda seed, parallel: optuna.samplers.GPSampler(
        seed=seed, independent_sampler=_indep(seed), warn_independent_sampling=False),
    "qmc": lambda seed, parallel: optuna.samplers.QMCSampler(
        seed=seed, independent_sampler=_indep(seed), scramble=True,
        warn_independent_sampling=False, warn_asynchronous_seeding=False),
}

# name -> factory(epochs); the resource is measured in epochs. Names: tuner.spec.PrunerName.
PRUNER_FACTORIES: dict[str, Callable[[int], BasePruner]] = {
    "hyperband": lambda epochs: optuna.pruners.HyperbandPruner(
        min_resource=1, max_resource=max(epochs, 1), reduction_factor=3),
    "asha": lambda epochs: optuna.pruners.SuccessiveHalvingPruner(min_resource=1,
                                                                  reduction_factor=3),
    "median": lambda epochs: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    "percentile": lambda epochs: optuna.pruners.PercentilePruner(25.0, n_startup_trials=5,
                                                                 n_warmup_steps=1),
    "wilcoxon": lambda epochs: optuna.pruners.WilcoxonPruner(p_threshold=0.1),  # see below
    "none": lambda epochs: optuna.pruners.NopPruner(),
}


# Optuna's WilcoxonPruner (built for scores over problem instances) here takes a trial's epochs
# as its instances: it stops a trial whose best-so-far curve is below the best trial's, epoch by
# epoch, at p < 0.1. Its signed-rank test over 3 pairs cannot go below p = 1/8, so it stops no
# trial before the 4th epoch (measured on Optuna 5.0: a curve worse at every epoch is stopped at
# the 4th), and a trial at its last epoch is complete: a job of 4 epochs or fewer stops none.
WILCOXON_FIRST_EPOCH = 4


def pruner_notes(spec: JobSpec) -> list[str]:
    """What the job's notes say of its pruner: a choice that can stop no trial at its budget."""
    epochs = spec.training.epochs
    if spec.search.pruner == "wilcoxon" and epochs <= WILCOXON_FIRST_EPOCH:
        return [f"search.pruner wilcoxon stops no trial of {epochs} epochs: its signed-rank test "
                f"of a trial's curve against the best trial's, epoch by epoch, can first stop one "
                f"at epoch {WILCOXON_FIRST_EPOCH}, and a trial at its last epoch is complete "
                f"(hyperband, the default, can stop one after its first epoch)"]
    return []


def make_sampler(name: str, seed: int | None, parallel: bool = False) -> BaseSampler:
    """An Optuna sampler by name."""
    if name not in SAMPLER_FACTORIES:
        raise UnknownName("search.sampler", "sampler", name, SAMPLERS)
    return SAMPLER_FACTORIES[name](seed, parallel)


def sweep_should_prune(study: optuna.Study, trial: optuna.trial.FrozenTrial,
                       warmup: int) -> bool:
    """The defaults sweep's own rule: a sweep trial is compared only with the other sweep
    trials, at the same epoch, from epoch `warmup` on, and stopped when it is worse than their
    median (at least two of them must have reached that epoch)."""
    step = trial.last_step
    if step is None or step < warmup:
        return False
    value = trial.intermediate_values[step]
    if math.isnan(value):
        return True
    others = [v for t in study.get_trials(deepcopy=False)
              if t.number != trial.number and t.user_attrs.get(ATTR_SWEEP)
              and (v := t.intermediate_values.get(step)) is not None and not math.isnan(v)]
    if len(others) < 2:
        return False
    median = statistics.median(others)
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return value < median if maximize else value > median


class FairSweepPruner(BasePruner):
    """`inner` for every trial but the defaults sweep's, which `sweep_should_prune` judges
    (warm-up: a third of the epochs). Each sweep trial is its family's one trial at a good
    start; under Hyperband alone a slow starter that lands in the aggressive bracket is stopped
    after its first epoch, judged against whatever that bracket holds. Optuna's samplers see the
    same trials either way: TPE reads the whole study even under Hyperband (Optuna 5.0's
    bracket view filters only `get_trials`, not the `_get_trials` TPE calls)."""

    def __init__(self, inner: BasePruner, epochs: int) -> None:
        self.inner = inner
        self.warmup = max(1, math.ceil(epochs / 3))

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        if trial.user_attrs.get(ATTR_SWEEP):
            return sweep_should_prune(study, trial, self.warmup)
        return self.inner.prune(study, trial)


def make_pruner(name: str, epochs: int, sweep_pruning: str = "pruner") -> BasePruner:
    """An Optuna pruner by name, with the resource measured in epochs; with `sweep_pruning`
    `apart` (`search.sweep_pruning`), wrapped so that it judges the defaults sweep apart."""
    if name not in PRUNER_FACTORIES:
        raise UnknownName("search.pruner", "pruner", name, PRUNERS)
    if sweep_pruning not in SWEEP_PRUNINGS:
        raise UnknownName("search.sweep_pruning", "sweep pruning", sweep_pruning, SWEEP_PRUNINGS)
    inner = PRUNER_FACTORIES[name](epochs)
    return FairSweepPruner(inner, epochs) if name != "none" and sweep_pruning == "apart" \
        else inner


ORDER_CORPUS = "defaults measured on the reference corpus's built-in tasks"
ORDER_STARTS = "the reference corpus's built-in tasks"
# What a submit's notes add to the order (`sweep_plan(provisional=True)`): the dispatcher reorders.
PROVISIONAL = ("; planned at submit: when the job starts, the service orders the sweep by your "
               "team's ranking of this task or of similar tasks (the reference corpus's "
               "included) where there is one, and rewrites these notes")
# How the job's notes say what the warm start's seeds are, by `search.warm_start`.
WARM_FROM = {"task": "search.warm_start: task, from this task's history",
             "similar": "search.warm_start: similar, from this task's history or its nearest "
                        "tasks, the reference corpus's included"}
# How the job's notes say where a learned start comes from, by `search.sweep_start`.
LEARNED_FROM = {
    "corpus": "the configuration that scored best over the reference corpus's tasks",
    "portfolio": "configurations chosen together to cover the reference corpus's tasks",
}


@dataclass(frozen=True)
class SweepPlan:
    """The defaults sweep of a job: the families it runs, in order, each at its start (Optuna
    parameters; its literature defaults where `starts` has none), and those its budget leaves to
    the sampler."""

    families: list[str]
    left_out: list[str]
    order_source: str
    cap: int
    starts: dict[str, dict[str, Any]] = field(default_factory=dict)
    learned_from: str = LEARNED_FROM["corpus"]
    baseline: int = 0  # search.baseline: its runs (search.baseline_runs) come before the sweep
    # Made at submit by the service: the dispatcher orders the sweep again when the job starts.
    provisional: bool = False
    pruner: list[str] = field(default_factory=list)  # `pruner_notes`
    # The warm start's seeds (search.warm_start), run before the sweep: their families, what
    # they are the best known configurations of, and the sweep's families whose start is one of
    # them (Optuna enqueues a configuration once: those are not run again).
    warm: list[str] = field(default_factory=list)
    warm_from: str = ""
    repeated: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        runs = "" if self.baseline < 2 else f" over {self.baseline} seeds (search.baseline_runs)"
        first = [f"baseline first: {BASELINE_LABEL}, run to the end (never pruned){runs}, the "
                 f"bar the answer's leader is held to (search.baseline)"] \
            if self.baseline else []
        if self.warm:  # the job's notes said nothing of them
            first.append(f"warm start first ({self.warm_from}): the best known configuration "
                         f"of {', '.join(self.warm)}")
        return first + self._sweep_notes() + self.pruner

    def _sweep_notes(self) -> list[str]:
        if not self.families:
            return [f"no defaults sweep: the warm-start seeds fill the search's trials; left to "
                    f"the sampler: {', '.join(self.left_out)}"] if self.left_out else []
        learned = [f for f in self.families if f in self.starts]
        at = [f for f in self.families if f not in self.starts]
        where = []
        if learned:
            where.append(f"{', '.join(learned)} at {self.learned_from}")
        if at:
            where.append(f"{', '.join(at)} at {'their' if len(at) > 1 else 'its'} literature "
                         f"defaults")
        source = self.order_source + (PROVISIONAL if self.provisional else "")
        out = [f"defaults sweep, in this order ({source}): {'; '.join(where)}" + (
            f"; {', '.join(self.repeated)} already ran as warm-start seeds at that "
            f"configuration, so not again" if self.repeated else "")]
        if self.left_out:
            out.append(f"the budget covers the defaults sweep of {len(self.families)} of "
                       f"{len(self.families) + len(self.left_out)} families (search.sweep_share "
                       f"x budget.n_trials = {self.cap}); left to the sampler: "
                       f"{', '.join(self.left_out)}")
        return out


def sweep_plan(spec: JobSpec, order: Sequence[str] | None = None,
               order_source: str | None = None, seeded: int = 0,
               provisional: bool = False, seeds: Sequence[dict[str, Any]] = ()) -> SweepPlan:
    """Which chosen families the defaults sweep runs, in what order and at which configuration:
    `order` (families best first, e.g. from the team's history) then the reference corpus's
    order (of its learned starts, or of literature defaults: `search.sweep_start`); at most
    `search.sweep_share` of `budget.n_trials`, and never more than the search's share left
    after `seeded` warm-start seeds (or `seeds`, their Optuna parameters, which the notes then
    name). `provisional`: the plan of a service's submit, whose notes say that the job's start
    may reorder it."""
    from tuner import corpus

    space = SearchSpace(spec.space)
    families = list(space.families)
    baseline = spec.search.baseline_runs if spec.search.baseline else 0
    if not spec.search.defaults_sweep:
        return SweepPlan([], [], "off", 0, baseline=baseline, pruner=pruner_notes(spec))
    ref = corpus.load()
    kind = spec.search.sweep_start
    learned = {s.optimizer: s for s in corpus.sweep_starts(ref, kind)} \
        if kind in corpus.START_KINDS else {}
    base = list(learned) if learned else corpus.defaults_order(ref)
    ranked = [*(order or []), *base]
    position = {f: i for i, f in reversed(list(enumerate(ranked)))}
    families.sort(key=lambda f: position.get(f, len(position)))
    seeded = max(seeded, len(seeds))
    room = max(0, spec.budget.n_trials - job_confirm_reserve(spec) - seeded - baseline)
    cap = min(room, max(1, int(spec.search.sweep_share * spec.budget.n_trials + 1e-9)))
    source = order_source if order else ORDER_STARTS if learned else ORDER_CORPUS
    starts = {f: p for f in families[:cap] if (s := learned.get(f)) is not None
              and (p := space.optuna_params(TrialConfig(s.optimizer, s.schedule, s.params)))}
    defaults = {p["optimizer"]: p for p in space.defaults()}
    repeated = [f for f in families[:cap] if (starts.get(f) or defaults[f]) in seeds]
    return SweepPlan(families[:cap], families[cap:], source or ORDER_CORPUS, cap, starts,
                     LEARNED_FROM.get(kind, LEARNED_FROM["corpus"]), baseline, provisional,
                     pruner_notes(spec), [str(p["optimizer"]) for p in seeds],
                     WARM_FROM.get(spec.search.warm_start, ""), repeated)


def baseline_params(spec: JobSpec) -> dict[str, Any]:
    """The baseline's Optuna parameters in this job's space (`search.baseline`); SpecError
    when the space cannot run it as it is (adamw or cosine left out, or ranges that leave out
    a default: it would run clamped, another configuration under the baseline's name)."""
    space = SearchSpace(spec.space)
    params = space.optuna_params(TrialConfig(*BASELINE, {}))
    config = None
    if params is not None:  # what the trial will run: its parameters as sampled, pins included
        config = space.sample(optuna.trial.FixedTrial(params))  # type: ignore[arg-type]
    if config is None or params is None:
        raise SpecError("search.baseline", f"the baseline is {BASELINE_LABEL}: it needs "
                        f"{BASELINE[0]} in space.optimizers and {BASELINE[1]} in "
                        f"space.schedules")
    if not is_baseline(config.optimizer, config.schedule, config.params):
        raise SpecError("search.baseline", f"the baseline is {BASELINE_LABEL}, and "
                        f"space.overrides leave out or pin away its defaults (it would run as "
                        f"{config.params}); widen them or turn search.baseline off")
    return params


def default_study_name(spec: JobSpec) -> str:
    """Deterministic for a spec, so Hyperband's brackets (hashed from the study name) and hence
    a seeded run are reproducible."""
    # search.baseline off (and baseline_runs at 1) is left out, so that specs from before them
    # keep their names.
    drop: dict[str, Any] | None = {"search": {"baseline", "baseline_runs"}} \
        if not spec.search.baseline else {"search": {"baseline_runs"}} \
        if spec.search.baseline_runs == 1 else None
    digest = hashlib.sha256(spec.model_dump_json(exclude=drop).encode()).hexdigest()[:10]
    return f"run-{digest}"


def create_study(spec: JobSpec, direction: str, storage: str | optuna.storages.BaseStorage | None,
                 study_name: str, *, load_if_exists: bool = False,
                 seed_configs: Sequence[dict[str, Any]] = (),
                 sampler_seed: int | None = None,
                 sweep: SweepPlan | None = None,
                 user_attrs: dict[str, Any] | None = None) -> optuna.Study:
    """The job's study. A new study is seeded with `seed_configs` (warm start), then the
    defaults sweep (`sweep`, else `sweep_plan(spec)`): the plan's families at their literature
    defaults; it carries `user_attrs` (what it is: team, model, dataset, metric, job) and the
    names of parameters Optuna holds under another name (`param_names`)."""
    seed = spec.training.seed if sampler_seed is None else sampler_seed
    study = optuna.create_study(
        storage=storage, study_name=study_name, direction=direction,  # type: ignore[arg-type]
        sampler=make_sampler(spec.search.sampler, seed, spec.budget.parallelism > 1),
        pruner=make_pruner(spec.search.pruner, spec.training.epochs, spec.search.sweep_pruning),
        load_if_exists=load_if_exists,
    )
    if not study.get_trials(deepcopy=False):
        attrs = {**(user_attrs or {}), "param_names": SearchSpace(spec.space).optuna_names()}
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        # Never more than the search's share of the budget: an enqueued trial left waiting would
        # be run by the confirmation race's tickets instead of its runs.
        room = spec.budget.n_trials - job_confirm_reserve(spec)
        queued = [(p, {ATTR_WARM_START: True}) for p in seed_configs]
        plan = sweep or sweep_plan(spec)
        defaults = {p["optimizer"]: p for p in SearchSpace(spec.space).defaults()}
        queued += [(plan.starts.get(f) or defaults[f], {ATTR_SWEEP: True})
                   for f in plan.families]
        base = baseline_runs(spec)[:room]  # more than fit is refused at submit (check_budget)
        for params, attrs in base:  # first; the same parameters, other seeds
            study.enqueue_trial(params, user_attrs=attrs)
        for params, attrs in queued[:room - len(base)]:
            study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)
    return study


BASELINE_SEED_OFFSET = 2000  # the baseline's own runs after its first: training.seed + 2001, ...


def baseline_runs(spec: JobSpec) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The baseline's enqueued runs (`search.baseline`, `search.baseline_runs`): Optuna
    parameters and user attributes; the first at the job's training seed, each other at a seed
    of its own, apart from the confirmation race's (a seed that this configuration ran before,
    in this task, still moves to a fresh one when the trial starts)."""
    if not spec.search.baseline:
        return []
    params, seed = baseline_params(spec), spec.training.seed
    return [(params, {ATTR_BASELINE: True} if i == 0 else
             {ATTR_BASELINE: True, ATTR_SEED: seed + BASELINE_SEED_OFFSET + i})
            for i in range(spec.search.baseline_runs)]


def load_study(spec: JobSpec, storage: str | optuna.storages.BaseStorage,
               study_name: str) -> optuna.Study:
    """A worker's handle on an existing study, with the spec's sampler and pruner."""
    return optuna.load_study(
        study_name=study_name, storage=storage,
        sampler=make_sampler(spec.search.sampler, None, spec.budget.parallelism > 1),
        pruner=make_pruner(spec.search.pruner, spec.training.epochs, spec.search.sweep_pruning),
    )


def race_trials(trials: Sequence[optuna.trial.FrozenTrial]) -> list[RaceTrial]:
    out = []
    for t in trials:
        cfg = t.user_attrs.get(ATTR_CONFIG, {})
        confirm_of = t.user_attrs.get(ATTR_CONFIRM_OF)
        # An enqueued trial not started yet has no configuration of its own (None).
        key = config_key(cfg.get("optimizer"), cfg.get("schedule"), cfg.get("params", {})) \
            if cfg else None
        complete = t.state == optuna.trial.TrialState.COMPLETE
        steps = t.intermediate_values
        # Where a trial stood by epoch: complete ones, and those pruned (a diverged trial is
        # pruned with NaN at its last epoch, and is not where a family stood: left out).
        stood = complete or (t.state == optuna.trial.TrialState.PRUNED and bool(steps)
                             and math.isfinite(steps[max(steps)]))
        out.append(RaceTrial(
            number=t.number, optimizer=cfg.get("optimizer"), config_key=key,
            value=t.value if complete else None,
            complete=complete, finished=t.state.is_finished(),
            confirm_of=int(confirm_of) if confirm_of is not None else None,
            params=dict(t.params), intermediate=dict(steps) if stood else {}))
    return out


def confirm_round(study: optuna.Study, spec: JobSpec, budget_left: int) -> tuple[int, str | None]:
    """Enqueue the confirmation race's next round in the study (never pruned: the objective
    sees `confirm_of`); returns (runs enqueued, why the race ended or None)."""
    s = spec.search
    if not s.confirm_top_k:
        return 0, None
    trials = study.get_trials(deepcopy=False)
    runs, done = next_round(race_trials(trials), study.direction.name.lower(),
                            top_k=s.confirm_top_k, max_seeds=s.confirm_seeds,
                            budget_left=budget_left, base_seed=spec.training.seed,
                            second_look=s.second_look)
    for r in runs:
        study.enqueue_trial(r.params, user_attrs={ATTR_CONFIRM_OF: r.confirm_of,
                                                  ATTR_SEED: r.seed})
    return len(runs), done


def confirmation_count(study: optuna.Study) -> int:
    """Confirmation runs in the study so far (enqueued or run)."""
    return sum(ATTR_CONFIRM_OF in t.user_attrs for t in study.get_trials(deepcopy=False))


@dataclass
class SearchResult:
    study: optuna.Study
    metric: str
    direction: str
    records: list[TrialRecord]
    notes: list[str] = field(default_factory=list)
    budget: dict[str, Any] = field(default_factory=dict)  # epochs, batch_size
    interrupted: bool = False  # stopped by Ctrl-C: `records` are the trials that ended
    late_notes: list[str] = field(default_factory=list)  # what its trials showed (`trial_notes`)
    # What a model that ignores its inputs scores on its validation set, and the task's kind
    # (`tuner.datasets.no_skill`); None for a team's own loop.
    no_skill: tuple[float | None, str] | None = None

    def summary(self, alone: bool = True) -> dict[str, Any]:
        """The leaderboard and the answer (`alone`: as `tuner.results.answer` takes it)."""
        board = leaderboard(self.records, self.direction)
        return {
            "study": self.study.study_name,
            "metric": self.metric,
            "notes": self.notes + self.late_notes,
            "interrupted": self.interrupted,
            **board,
            "answer": answer(self.records, self.direction, self.metric, budget=self.budget,
                             alone=alone, no_skill=self.no_skill),
            "trials": [r.to_json() for r in self.records],
        }


def run_search(spec: JobSpec, *, storage: str | None = None, study_name: str | None = None,
               on_trial: Callable[[TrialRecord], None] | None = None,
               on_start: Callable[[list[str]], None] | None = None,
               seed_configs: Sequence[dict[str, Any]] = (),
               sampler_seed: int | None = None, stop_on_interrupt: bool = False) -> SearchResult:
    """Run the whole search in this process (threads for parallelism) and return its trials.
    `seed_configs` (Optuna parameter dicts) are tried first: a warm start. `on_start` is called
    with the job's notes once the data is loaded and checked against the spec (a metric that
    does not fit the data is refused before it), just before the first trial. The budget is
    checked as a service's submit checks it (`tuner.tasks.check_budget`), and so is the model
    against the data (`tuner.tasks.check_model`), and a demand for a GPU against this machine
    (`check_local_device`): every trial failed instead. bf16 asked for where the trials run on
    the CPU is said in the notes (`local_precision_note`). `stop_on_interrupt`: Ctrl-C ends the
    search and returns the trials that ended (`SearchResult.interrupted`), not a
    KeyboardInterrupt."""
    from tuner.tasks import check_budget, check_local_device, check_model, local_precision_note

    check_budget(spec)
    check_local_device(spec)
    objective = Objective(spec)
    direction = objective.direction  # loads the dataset: fails early on bad data
    blind = None  # what a model that ignores its inputs scores there, and the task's kind
    if spec.task.trainable is None:
        features = check_model(spec, objective.data)
        blind = (features.no_skill, features.kind)
    else:
        from tuner.trainable import check_params

        check_params(spec.task.trainable)
    name = study_name or default_study_name(spec)
    if storage is not None and study_name is None:
        existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
        base, i = name, 1
        while name in existing:
            i += 1
            name = f"{base}-{i}"
    plan = sweep_plan(spec)
    study = create_study(spec, direction, storage, name, seed_configs=seed_configs,
                         sampler_seed=sampler_seed, sweep=plan)
    notes = plan.notes() + local_precision_note(spec)
    if on_start is not None:
        on_start(notes)

    unreadable: list[str] = []  # what a trial could not read of the task's data
    alike: list[SameFailure] = []  # the failure trials shared (tuner.trial.same_failure)

    ended: set[int] = set()  # the trials that ran to their end (a Ctrl-C cut none of them)

    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        ended.add(trial.number)
        rec = trial_record(trial)
        if rec.stop_reason == DATA_ERROR:  # every trial reads the same files: stop here
            unreadable.append(rec.detail)
            study.stop()
        elif rec.stop_reason == "failed" and not alike and \
                (same := failing_alike(study.get_trials(deepcopy=False))) is not None:
            alike.append(same)
            study.stop()
        if on_trial is not None:
            on_trial(rec)

    reserve = job_confirm_reserve(spec)
    kwargs: dict[str, Any] = dict(n_jobs=spec.budget.parallelism, callbacks=[callback],
                                  catch=(Exception,), gc_after_trial=False)
    # budget.timeout_s holds for the whole job, the confirmation race too (as the dispatcher
    # holds it): no trial starts after it (the race's rounds ran on past it).
    deadline = None if spec.budget.timeout_s is None else \
        time.monotonic() + spec.budget.timeout_s

    def left() -> float | None:
        return None if deadline is None else deadline - time.monotonic()

    def optimize(n: int, **more: Any) -> None:
        study.optimize(objective, n_trials=n, timeout=left(), **{**kwargs, **more})
        if unreadable:
            raise DataError(unreadable[0])
        # (Trials in flight when it stopped have ended since: one may have got further.)
        if alike and (same := failing_alike(study.get_trials(deepcopy=False))) is not None:
            raise TrialsFailed(same.message("search"))

    interrupted = False
    used, why = 0, None
    try:
        optimize(spec.budget.n_trials - reserve)
        while used < reserve and ((t := left()) is None or t > 0):  # the race, round by round
            n, why = confirm_round(study, spec, reserve - used)
            if why == STOP_NOTHING:  # nothing completed: the reserve goes back to the search
                optimize(reserve - used)
                break
            if not n:
                break
            optimize(n, n_jobs=min(n, spec.budget.parallelism))
            used += n
    except KeyboardInterrupt:
        # Ctrl-C with `stop_on_interrupt` (`tuner run`): the search stops; the trials that
        # ended are kept and judged, the one it cut short is dropped (Optuna failed it for the
        # interrupt, not for its configuration, and calls no callback for it). It printed a
        # traceback and nothing the search had found. Other callers (the benchmarks) stop
        # whole, as before: a partial search returned there would be scored as a whole one.
        if not stop_on_interrupt:
            raise
        interrupted = True
    records = study_records(study)
    if interrupted:
        records = [r for r in records if r.number in ended]
    # The race in words, as a service job's `confirm_note` says it (`tuner run` printed
    # nothing of it, and of the families it gave a second look).
    raced = [confirm_note(used, spec.budget.n_trials, why or (
        STOP_BUDGET if used >= reserve else "the job's timeout"),
        looked_at(race_trials(study.get_trials(deepcopy=False))))] \
        if used and not interrupted else []
    return SearchResult(study, objective.metric, direction, records, notes,
                        {"epochs": spec.training.epochs, "batch_size": spec.training.batch_size,
                         "training_seed": spec.training.seed}, interrupted,
                        late_notes=raced + trial_notes(spec, study), no_skill=blind)


def trial_notes(spec: JobSpec, study: optuna.Study) -> list[str]:
    """What the job's trials showed that its notes add at its end (the dispatcher's and
    `tuner run`'s): a trainable that never read `ctx.split_seed` or `ctx.batch_size`, never
    applied bf16, or returned before its epochs with no early stopping asked
    (`trainable_notes`)."""
    if spec.task.trainable is None:
        return []
    from tuner.trainable import trainable_notes

    return trainable_notes(spec.task.trainable.name, (
        t.user_attrs.get(ATTR_RECORD) for t in study.get_trials(deepcopy=False)),
        spec.training.early_stopping_patience)


@dataclass
class Rerun:
    """One trial of a job, ready to run again in this process (`prepare_rerun`)."""

    objective: Objective
    study: optuna.Study

    def run(self) -> TrialRecord:
        """Train it and return its record, with as many torch threads as the job's workers
        trained with (`resources.cpus_per_trial`, as `workers.trial_worker` sets them): a
        sum over other threads rounds otherwise, and a conv net's rerun on this machine's 2
        threads differed from its worker's by 0.008 in accuracy by epoch 30, where 1 thread
        repeats it bit for bit. The trial's own error is not caught: it propagates whole, for
        its caller to print (or a debugger to stop in)."""
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(rerun_threads(self.objective.spec))
        try:
            self.study.optimize(self.objective, n_trials=1, catch=(), gc_after_trial=False)
        finally:
            torch.set_num_threads(before)
        return trial_record(self.study.trials[-1])


def rerun_threads(spec: JobSpec) -> int:
    """The torch threads a job's trial trained with on its worker."""
    return max(1, int(spec.resources.cpus_per_trial))


def prepare_rerun(spec: JobSpec, config: TrialConfig, seed: int,
                  made_from: Provenance | None = None) -> Rerun:
    """A trial of the job `spec` to run again here: its configuration at the seed it ran with,
    on the job's data split (the split comes from `training.seed`, the trial's seed draws its
    initial weights and batch order), for the job's epochs, never pruned. `made_from`: the
    task's digests and the job's training format, which the data, model, plugin code and
    training code here must match (as a dispatcher checks them), so what runs is what the
    job ran. The data are loaded and checked here, before any training."""
    spec = spec.model_copy(update={
        "budget": spec.budget.model_copy(update={"n_trials": 1, "parallelism": 1,
                                                 "timeout_s": None}),
        "search": spec.search.model_copy(update={
            "pruner": "none", "warm_start": "none", "defaults_sweep": False,
            "baseline": False, "confirm_top_k": 0})})
    from tuner.tasks import check_local_device

    check_local_device(spec)  # a job that trained on cuda, here without a GPU: said, not raised
    if made_from is not None and made_from.training_format not in (None, TRAINING_FORMAT):
        raise TunerError(f"the job ran the training code of another release of the service "
                         f"(training format {made_from.training_format}; this one's is "
                         f"{TRAINING_FORMAT}): install the release the job ran to rerun its "
                         f"trials")
    try:
        if made_from is not None:  # before any training (a trial would record them as its error)
            made_from.check_code(spec.task)
            made_from.check_model(spec.task, None)
        objective = Objective(spec, made_from=made_from)
        direction = objective.direction  # loads and checks the data (a trainable brings its own)
    except DataChanged as exc:
        raise DataError(f"{exc.field}: {exc.what} here is not what the job trained on (digest "
                        f"{exc.expected}, here {exc.now}): rerun it with a copy of the files "
                        f"the job read") from None
    params = objective.space.optuna_params(config)
    if params is None:
        raise SpecError("trial", f"{config.optimizer} with the {config.schedule} schedule is "
                                 f"not in the job's space")
    study = optuna.create_study(direction=direction,  # type: ignore[arg-type]
                                pruner=optuna.pruners.NopPruner(),
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    study.enqueue_trial(params, user_attrs={ATTR_SEED: seed})
    return Rerun(objective, study)
