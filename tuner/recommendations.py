"""The recommendation service: which answer to give for a task, and when a cached one may be
served. Above the store (its reads are in `tuner.store.history`), below the API.

An answer is about one task: a question by model and dataset name that matches several of the
team's tasks (other model or dataset parameters) is answered about the task of the team's most
recent job among them, the others listed in `other_tasks`.

Order of evidence, most specific first:
1. `direct`: this task's own trials at the training budget asked about (epochs, batch size,
   early stopping patience; by default the most recent budget with complete trials). Trials
   at other budgets are never pooled with them; they are listed in `other_budgets`.
2. `transfer` from the team's nearest (task, budget) pairs, the same task at another budget
   included, with the read-only reference corpus's tasks that are nearer than all of them
   (`transfer_neighbours`). A team's own task comes before an equally near corpus task.
3. `transfer` from the reference corpus alone (`source: reference corpus`), when the team
   has no similar task.
4. `prior`: literature defaults, labelled as not measured.
Another team's history is never used."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import ValidationError

from tuner import corpus as reference
from tuner.errors import SpecError, TaskNotFound, count
from tuner.recommend import (
    HistoryTrial,
    TaskProfile,
    in_short,
    one_split_note,
    out_of_memory_note,
    prior_ranking,
    rank_families,
    read_across_splits,
    scale_lr_for_batch,
    transfer_neighbours,
    transfer_ranking,
    versus_baseline,
    versus_no_skill,
    with_no_skill,
)
from tuner.space import TrialConfig, baseline_keys, is_baseline
from tuner.spec import PRECISIONS, TRAINING_FORMAT
from tuner.store import history as h
from tuner.store.history import DbSession as Session
from tuner.store.models import Task
from tuner.store.queries import team_tasks
from tuner.trial import loop_note_gist

# The format of an answer: part of every cache key, so an answer cached by an earlier release
# is never served after the way answers are computed or shaped has changed. Bump it with any
# change to tuner.recommend's ranking, verdicts, fields or wording. (2: ties ordered by value
# before optimizer state, and `to_separate`; 3: a seed run again counts once; 4: a
# configuration is read with all its runs; 5: early stopping patience is part of the budget;
# 6: one task per answer, `other_tasks`; 7: a tie holds every family overlapping the leader,
# and a loss is ranked on its logarithm; 8: `not_tried`; 9: one run's interval from the t
# quantile of the noise's degrees of freedom; 10: intervals cut at the metric's bounds,
# `expected.sd`; 11: `may_lead`; 12: a loss's robustness relative alone; 13: the summary
# counts long lists of families; 14: identical runs get the pooled noise, and no noise is
# claimed when every repeat was identical; 15: precision is part of the budget; 16: a transfer
# summary says it is a prediction; 17: `under_tuned`; 18: the training seed (the data split)
# is part of the budget; 19: a task on the team's own data, hf: model folder or plugin code
# holds their digests, rewritten contents being a new task, and the service's training format
# is part of the budget; 20: a tie lists a family above a better value only for a learning-rate
# range wider than that value's by half a decade, equal values by the interval then the state,
# and a hub reference's fetched copy is part of its task; 21: `baseline`, the leader against
# AdamW at its defaults with cosine; 22: `robustness.n_learning_rates`, and a baseline without
# a spread of its own says that its interval is borrowed; 23: `may_lead` against the best
# leader's interval, not the weakest leader's value, and `tied_by_width`, never lifted first
# in a tie by its learning-rate range; 24: a loss's gaps in words to four digits and in percent;
# 25: a transferred answer says when families share the best score; 26: a tie by interval
# overlap is not called a wide interval; 27: the barely-tuned note is kept beside the families
# that never completed a trial (it was replaced by it); 28: where a family that never completed
# stood against the best leader's configuration at the epoch it was stopped (`level_at_stop`);
# 29: `configurations_tried` and `n_configurations` over the whole history, not the best 20;
# 30: a transfer draws on the corpus's tasks nearer than the team's, scores a family a task did
# not rank as that task's average family, and lists the families no similar task ranked;
# 31: a family not ranked says how its trials ended; 32: the families behind the leader at the
# epoch they were stopped are not said to be behind at the budget; 33: families level on their
# values without a noise estimate are said level, the widest learning-rate range listed first,
# and the trials left out at other budgets are said to differ in what they differ in; 34:
# `splits`, the families on each of the task's data splits at the answer's budget; 35: a winner
# is best on its data split, and on one split alone says what that does not show; 36: a tie is
# on its data split too, and a transfer answer drawn from the task's other data splits alone
# says so, `from_splits`; 37: the baseline is held to start_from's family, on its split and,
# with other splits, on each (`baseline.splits`); 38: a transfer answer from the task's other
# splits draws on every one of them; 39: a tie lists a family above a better value for a wider
# learning-rate range only against a range measured narrower, `robustness.bounded`; 40: a
# family whose complete trials ran one learning rate is said so (not "tried"); 41: families
# behind at their stop are "they", and one possibly as good is not said behind; 42: among
# equally similar neighbours (other splits) a family's configuration is its most confirmed; 43: a
# trial stopped before its first epoch by no doing of its own does not make its family tried;
# 44: a transfer's source task's verdict (`source_task.verdict_there`): families level there
# with no noise estimate are not called tied within the noise; 45: a family's configuration is
# chosen on the lower end of its pooled-noise 95% interval, mean - t sigma / sqrt(n); 46: the
# pooled noise leaves out configurations whose runs all gave the same value; 47: the answer's
# family against the baseline split by split, in the family's words ("ahead of it" / "behind
# it", not "beaten" / "ahead of it"), `in_short`, the answer in one line, and the explanation
# names the data split beside others, the noise what it was measured on, and a family's
# interrupted trials (`n_interrupted`); 48: a family a split never ran is "not tried on this
# data split", and the splits that ran it are named; 49: `loop_notes`, what a team's loop
# never used of what keeps its runs what the budget says; 50: one learning rate's robustness in
# words; 51: `at_ceiling`, families at the metric's best possible value on every run; 52:
# `no_skill`, the best family against a model that ignores its inputs; 53: a transfer says which
# of its team tasks ranked families that learned nothing; 54: `baseline_only`, a family ranked
# on the untuned baseline's runs alone; 55: with no noise measured, the best family is "above" a
# model that ignores its inputs on the values seen, not "clear of" it, and a family's evidence
# counts its runs of the untuned baseline (`n_baseline_runs`); a `not_separated` one line counts
# the families at the metric's ceiling, as a tie's does; 56: a transfer's `learned_nothing_on`,
# and its one line counts the similar tasks where no family learned; a direct answer's one line
# counts a tie's families that never completed a trial and names those stopped early yet
# possibly as good; 57: a family's evidence counts its second looks, `n_second_looks`.)
ANSWER_FORMAT = 57
SOURCE_TEAM = "team history"
# The learning-rate picture shows each family's most recent complete trials, this many.
LR_POINTS_PER_FAMILY = 1000


def _check_task_matches(s: Session, team_id: int, task_id: int, **asked: str | None) -> None:
    """Raised for a task id that matched nothing: the team's task is there but is not the model,
    dataset or metric also asked for (a 404 said it was not found), or it is not there."""
    for t in h.find_tasks(s, team_id, task_id=task_id):
        mine = {"model": t.model_name, "dataset": t.dataset_name, "metric": t.metric}
        field = next((k for k, v in asked.items() if v is not None and v != mine[k]), None)
        if field is None:  # nothing asked that it is not: not reached (it would have matched)
            break
        raise SpecError(field, f"task {task_id} is model {t.model_name} on dataset "
                               f"{t.dataset_name} ({t.metric}), not {field} {asked[field]}; give "
                               f"task alone, or the model and dataset without it")
    raise TaskNotFound(task_id)


def recommend(s: Session, team_id: int, *, task_id: int | None = None, model: str | None = None,
              dataset: str | None = None, metric: str | None = None, epochs: int | None = None,
              batch_size: int | None = None, early_stopping_patience: int | None = None,
              precision: str | None = None, training_seed: int | None = None,
              training_format: int | None = None,
              exclude_job: str | None = None, cache: bool = True) -> dict[str, Any]:
    """Optimizer families ranked for a task (see the module's docstring), JSON-ready.

    Answers are cached in `tuner_recommendation_cache` under a version of what they were
    computed from: the matched tasks' `history_version` (bumped by every recorded trial, and by
    a job that re-describes the task), and for transfer and prior answers also the team's task
    count and version sum and the reference corpus's digest; the key holds the question and
    `ANSWER_FORMAT`. A read whose version still matches costs a few indexed lookups; any change
    makes the next read compute the answer again."""
    tasks = h.find_tasks(s, team_id, task_id=task_id, model=model, dataset=dataset, metric=metric)
    if task_id is not None and not tasks:
        _check_task_matches(s, team_id, task_id, model=model, dataset=dataset, metric=metric)
    if len({t.direction for t in tasks}) > 1:  # e.g. val_loss and val_accuracy: caller must pick
        metrics = sorted({t.metric for t in tasks})
        raise SpecError("metric", "the matching tasks use different metrics; valid choices: "
                                  + ", ".join(metrics))
    asked = BudgetAsked(epochs, batch_size, early_stopping_patience, precision, training_seed,
                        training_format)
    args = (team_id, tasks, model, dataset, metric, asked)
    if exclude_job is not None or not cache:
        return _json_ready(_with_in_short(_compute(s, *args, exclude_job=exclude_job)))
    key = _cache_key(team_id, task_id, model, dataset, metric, asked)
    direct_version = ",".join(f"{t.id}:{t.history_version}" for t in tasks)
    row = h.cached_answer(s, key)
    if row is not None and row.method == "direct" and row.version == direct_version:
        return dict(row.body)
    corpus = reference.load()
    # Read before computing: the version is never newer than the answer.
    wide_version = f"{direct_version}|{h.team_version(s, team_id)}|" \
                   f"{corpus.digest if corpus else '-'}"
    if row is not None and row.version == wide_version:
        return dict(row.body)
    answer = _json_ready(_with_in_short(_compute(s, *args, exclude_job=None)))
    h.store_answer(s, key, team_id,
                   direct_version if answer["method"] == "direct" else wide_version, answer,
                   keep_prefix=_cache_key_prefix())
    return answer


@dataclass(frozen=True)
class BudgetAsked:
    """The parts of a training budget a question names; a part left None is taken from the
    task's history (`_budget`), and `early_stopping_patience` 0 asks about training without
    early stopping. (`training_format` is asked by the dispatcher, about its job's own runs.)"""

    epochs: int | None = None
    batch_size: int | None = None
    early_stopping_patience: int | None = None
    precision: str | None = None
    training_seed: int | None = None
    training_format: int | None = None

    def __post_init__(self) -> None:
        if self.precision is not None and self.precision not in PRECISIONS:
            raise SpecError("precision", f"unknown {self.precision!r}; valid choices: "
                                         + ", ".join(PRECISIONS))

    def parts(self) -> list[int | str | None]:
        return [self.epochs, self.batch_size, self.early_stopping_patience, self.precision,
                self.training_seed, self.training_format]


def _cache_key(team_id: int, task_id: int | None, model: str | None, dataset: str | None,
               metric: str | None, asked: BudgetAsked) -> str:
    return json.dumps([ANSWER_FORMAT, team_id, task_id, model, dataset, metric, *asked.parts()])


def _cache_key_prefix() -> str:
    """What every cache key of this answer format starts with (`[<format>, `): the team's
    rows of other formats are deleted when an answer is stored, since nothing reads them
    again."""
    return json.dumps([ANSWER_FORMAT, 0])[:-2]


def cached_json(s: Session, team_id: int, task_id: int, *, metric: str | None = None,
                epochs: int | None = None, batch_size: int | None = None,
                early_stopping_patience: int | None = None,
                precision: str | None = None, training_seed: int | None = None) -> str | None:
    """The answer `recommend(s, team_id, task_id=...)` would give, as stored JSON text, when it
    is a current cached direct answer (one query); None means: call `recommend`."""
    asked = BudgetAsked(epochs, batch_size, early_stopping_patience, precision, training_seed)
    return h.cached_direct_json(s, _cache_key(team_id, task_id, None, None, metric, asked),
                                team_id, task_id)


def loop_clause(notes: Sequence[str]) -> str:
    """The summary's word on `loop_notes`: what the team's loop never used of what keeps its
    runs what the budget says (the jobs' notes say what that leaves unknown)."""
    said = list(dict.fromkeys(g for n in notes if (g := loop_note_gist(n))))
    words = ", ".join(said[:-1]) + f" and {said[-1]}" if len(said) > 1 else "".join(said)
    return (f"; the team's loop {words} in this budget's jobs, so its runs may not be what the "
            f"budget says (loop_notes)") if said else ""


def _with_in_short(answer: dict[str, Any]) -> dict[str, Any]:
    return {**answer, "in_short": in_short(answer)}


def _json_ready(answer: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(
        answer, default=lambda o: o.isoformat() if isinstance(o, datetime) else str(o)))
    return out


def _budget(tasks: Sequence[Task], known: list[tuple[h.Budget, int, Any]],
            asked: BudgetAsked) -> h.Budget | None:
    """The budget asked about: as given, a part not given taken from the most recent budget
    with complete trials that has the parts given (else from the latest), and `patience` 0
    asking about training without early stopping; nothing given: the most recent budget with
    complete trials, else the task's own."""
    latest = known[0][0] if known else (h.Budget(tasks[0].epochs, tasks[0].batch_size)
                                        if tasks else None)
    if asked == BudgetAsked():
        return latest
    a, patience = asked, asked.early_stopping_patience
    stop = None if patience is None else (patience or None)
    if latest is None:
        return h.Budget(a.epochs or 10, a.batch_size or 64, stop,
                        a.precision or h.PRECISION_DEFAULT, a.training_seed or 0,
                        TRAINING_FORMAT if a.training_format is None else a.training_format)
    base = next((b for b, _, _ in known if a.epochs in (None, b.epochs)
                 and a.batch_size in (None, b.batch_size)
                 and (patience is None or stop == b.early_stopping_patience)
                 and a.precision in (None, b.precision)
                 and a.training_seed in (None, b.training_seed)
                 and a.training_format in (None, b.training_format)), latest)
    return h.Budget(a.epochs or base.epochs, a.batch_size or base.batch_size,
                    base.early_stopping_patience if patience is None else stop,
                    a.precision or base.precision,
                    base.training_seed if a.training_seed is None else a.training_seed,
                    base.training_format if a.training_format is None else a.training_format)


def _one_task(s: Session, team_id: int, tasks: list[Task]
              ) -> tuple[list[Task], list[dict[str, Any]], list[dict[str, Any]]]:
    """The task an answer is about, and the others the question matched. A model and a dataset
    name a task only up to their parameters (mlp with hidden [16] and with [128] on iris are two
    tasks) and, for the team's own file, folder or plugin, its contents (rewritten, it is a new
    task: `data_digest`, `model_digest`, `code_digest`), and trials of different tasks are never
    ranked together: the answer is
    about the task of the team's most recent job among them; the others are listed
    (`other_tasks`)."""
    listed = team_tasks(s, team_id, [t.id for t in tasks]) if tasks else []
    if len(listed) <= 1:
        return tasks, listed, []
    oldest = datetime.min.replace(tzinfo=UTC)
    chosen = max(listed, key=lambda t: (t["latest_job_at"] or oldest, t["id"]))
    return ([t for t in tasks if t.id == chosen["id"]], [chosen],
            [t for t in listed if t is not chosen])


# A budget's parts in words, for what the budgets an answer leaves out differ in.
_PARTS = {"epochs": "epochs or batch size", "batch_size": "epochs or batch size",
          "early_stopping_patience": "early stopping", "precision": "precision",
          "training_seed": "data split (training.seed)",
          "training_format": "the release's training code"}


def _differing(budget: dict[str, Any], others: Sequence[dict[str, Any]]) -> str:
    """What the other budgets differ in from the answer's, in words ("epochs or batch size",
    "data split (training.seed)"): "other budgets" said the same of a job at the same epochs
    and batch size on another split."""
    words = list(dict.fromkeys(_PARTS[k] for b in others for k in _PARTS
                               if b.get(k) != budget.get(k)))
    if len(words) < 2:
        return words[0] if words else "budget"
    return ", ".join(words[:-1]) + ", or " + words[-1]


def _compute(s: Session, team_id: int, tasks: list[Task], model: str | None,
             dataset: str | None, metric: str | None, asked: BudgetAsked, *,
             exclude_job: str | None) -> dict[str, Any]:
    tasks, listed, others = _one_task(s, team_id, tasks)
    ids = [t.id for t in tasks]
    known = h.budgets(s, ids)
    budget = _budget(tasks, known, asked)
    base: dict[str, Any] = {
        "tasks": listed, "other_tasks": others,
        "budget": budget.to_json() if budget else None,
        "other_budgets": [{**b.to_json(), "n_complete_trials": n} for b, n, _ in known
                          if b != budget]}
    trials = h.history(s, ids, budget, exclude_job) if budget else []
    if trials and budget:
        direction = tasks[0].direction

        def rank(b: h.Budget, found: Sequence[HistoryTrial], evidence: dict[str, Any],
                 **more: Any) -> dict[str, Any]:
            return rank_families(found, direction, evidence,
                                 h.unfinished_families(s, ids, direction, b, exclude_job),
                                 metric=tasks[0].metric, **more)

        evidence = h.evidence(s, ids, budget, exclude_job)
        ranked = rank(budget, trials, evidence, curves=partial(h.best_so_far, s))
        n = sum(c["n_trials"] for c in evidence.values())
        # The same budget on the task's other data splits, each ranked on its own.
        on_split = [(b, h.history(s, ids, b, exclude_job), h.evidence(s, ids, b, exclude_job))
                    for b, _, _ in known
                    if b != budget and replace(b, training_seed=budget.training_seed) == budget]
        per_split = [(budget.training_seed, n, ranked)] + [
            (b.training_seed, sum(c["n_trials"] for c in ev.values()), rank(b, found, ev))
            for b, found, ev in on_split if found]
        jobs = h.n_jobs_with_complete(s, ids, budget)
        # The split is named where the history holds others (its seed 0 went unnamed beside
        # "trials that differ in data split").
        split_apart = any(b.training_seed != budget.training_seed for b, _, _ in known)
        other = (f"; {sum(b['n_complete_trials'] for b in base['other_budgets'])} trials that "
                 f"differ in {_differing(base['budget'], base['other_budgets'])} are not pooled "
                 f"with them" if base["other_budgets"] else "")
        if others:
            other += (f"; {count(len(others), 'other task')} of the team "
                      f"{'matches' if len(others) == 1 else 'match'} this model and dataset "
                      f"with other parameters, data or code (task "
                      + ", ".join(str(o["id"]) for o in others)
                      + "): their trials are not pooled with this task's; ask with task=<id>")
        def against(b: h.Budget, r: dict[str, Any]) -> dict[str, Any]:
            return versus_baseline(h.history(s, ids, b, exclude_job, top_per_family=None,
                                             config_keys=baseline_keys()), r, tasks[0].metric)

        on = {b.training_seed: b for b, _, _ in on_split} | {budget.training_seed: budget}
        splits, follow, baseline = read_across_splits(per_split, lambda sd, r: against(on[sd], r))
        loop = h.loop_notes(s, tasks, budget, exclude_job)
        blind = versus_no_skill(ranked, h.no_skill(s, ids, budget), tasks[0].metric,
                                tasks[0].kind)
        return {**base, "method": "direct", "source": SOURCE_TEAM, "metric": tasks[0].metric,
                "direction": direction, **ranked, "baseline": baseline, "splits": splits,
                "loop_notes": loop, "no_skill": blind,
                "summary": with_no_skill(ranked["summary"] + (
                    f"; {splits['summary']}" if splits else
                    one_split_note(ranked, budget.training_seed)) + loop_clause(loop), blind),
                "start_from": _start_from(follow),
                "explanation": f"from {count(n, 'complete trial')} in {count(jobs, 'job')} of "
                               f"this task at "
                               f"{budget.label(name_split=split_apart) if budget else '?'}"
                               f"{other}"}
    # This task's own trials that never completed (all pruned, say) still say something.
    tried = [{"optimizer": f, "rank": None, "status": "no complete trial on this task",
              "evidence": ev} for f, ev in sorted(h.unfinished_families(
                  s, ids, tasks[0].direction, budget, exclude_job).items())] \
        if tasks and budget else []
    query, metric = _query(tasks, model, dataset, metric, budget,
                           [] if tasks or not (metric and model and dataset) else
                           h.find_tasks(s, team_id, model=model, dataset=dataset))
    if query is not None:
        out = _transfer(query, metric, reference.load(), s, team_id,
                        (tasks[0].id, budget) if tasks and budget else None)
        if out is not None:
            return {**base, **out, "not_ranked": tried,
                    "summary": str(out.get("summary") or "") + out_of_memory_note(tried)}
    prior = prior_ranking()
    return {**base, "method": "prior", "source": "literature defaults", "metric": metric,
            "start_from": None, **prior, "not_ranked": tried,
            "note": prior["note"] + out_of_memory_note(tried)}


def _query(tasks: list[Task], model: str | None, dataset: str | None, metric: str | None,
           budget: h.Budget | None, other_metric: Sequence[Task] = ()
           ) -> tuple[TaskProfile | None, str | None]:
    """The features of the task asked about, and its metric. A task nobody ran yet is inspected
    once (dataset loaded, model built with default params; cached per process).
    `other_metric`: the team's tasks of this model and dataset under another metric than the
    one asked (an error names them)."""
    if tasks:
        return replace(h.profile(tasks[0], budget), task_id=_key(tasks[0].id, budget)), \
            metric or tasks[0].metric
    if not (model and dataset):
        return None, metric
    from tuner.spec import JobSpec
    from tuner.tasks import inspect_task

    training: dict[str, Any] = {}
    if budget:  # the budget's parts as a spec's training section names them
        training = {k: v for k, v in budget.to_json().items()
                    if k not in ("training_seed", "training_format")}
        training["seed"] = budget.training_seed
    try:
        spec = JobSpec.model_validate({"task": {"model": {"name": model},
                                                "dataset": {"name": dataset}, "metric": metric},
                                       "training": training})
    except ValidationError as exc:  # an unknown model or dataset name
        err = exc.errors()[0]
        raise SpecError(_query_field(".".join(str(p) for p in err["loc"])),
                        str(err["msg"]).removeprefix("Value error, ")) from None
    try:
        f = inspect_task(spec)
    except SpecError as exc:  # a model or dataset that needs params to be one: `file`
        part = next((p for p in ("model", "dataset")
                     if exc.field.startswith(f"task.{p}.params.")), None)
        if part is None:  # named as the query names it (`metric`, not `task.metric`)
            raise SpecError(_query_field(exc.field), exc.message) from None
        name = model if part == "model" else dataset
        why = (f"{name!r} names no task without its params "
               f"({exc.field.removeprefix('task.')}: {exc.message}), which a query cannot give, ")
        if other_metric:  # (it said "none of the team's tasks is mlp on file yet" of two)
            metrics = sorted({t.metric for t in other_metric})
            raise SpecError("metric", why + (
                f"and none of the team's tasks of {model} on {dataset} is measured by "
                f"{metric}: task {', '.join(str(t.id) for t in other_metric)} "
                f"{'is' if len(other_metric) == 1 else 'are'}, by {' or '.join(metrics)} (ask "
                f"with task=<id>, or metric={metrics[0]})")) from None
        raise SpecError(part, why + (
            f"and none of the team's tasks is {model} on {dataset} yet: submit a job on it, "
            f"then ask with task=<id> (or model and dataset, which then find it)")) from None
    return f.profile(model), f.metric


# The query's parameters, by the part of the job spec built from them.
_QUERY_FIELDS = {"task.model": "model", "task.dataset": "dataset", "task.metric": "metric",
                 "training.epochs": "epochs", "training.batch_size": "batch_size",
                 "training.early_stopping_patience": "early_stopping_patience",
                 "training.precision": "precision", "training.seed": "training_seed"}


def _query_field(field: str) -> str:
    """The query parameter that a field of the spec built from the query came from."""
    return next((q for part, q in _QUERY_FIELDS.items()
                 if field == part or field.startswith(part + ".")), field)


def _key(task_id: int, b: h.Budget | None) -> str:
    if b is None:
        return str(task_id)
    p = b.early_stopping_patience
    return (f"{task_id}@{b.epochs}x{b.batch_size}" + (f"p{p}" if p is not None else "")
            + (f"-{b.precision}" if b.precision != h.PRECISION_DEFAULT else "")
            + (f"s{b.training_seed}" if b.training_seed else "")
            + (f"t{b.training_format}" if b.training_format != TRAINING_FORMAT else ""))


def _transfer(query: TaskProfile, metric: str | None, corpus: reference.Corpus | None,
              s: Session | None = None, team_id: int | None = None,
              asked: tuple[int, h.Budget] | None = None) -> dict[str, Any] | None:
    """An answer from the nearest tasks (`transfer_neighbours`): the team's (task, budget)
    pairs, and the reference corpus's tasks nearer than any of them; with no team task near
    enough, the corpus's alone. None when nothing is near. `asked`: the team's task and the
    budget asked about; when every neighbour is that task at that budget on another data
    split, the answer says so (`from_splits`), not "similar tasks"."""
    team: dict[str, tuple[Task, h.Budget]] = {}
    if s is not None and team_id is not None:
        team = {_key(t.id, b): (t, b)
                for t, b in h.transfer_candidates(s, team_id, query.kind, metric)}
    usable = {f"ref:{t.id}": t for t in (corpus.tasks if corpus else ())
              if metric in (None, t.metric)}
    from_corpus, from_team = transfer_neighbours(
        query, [replace(h.profile(t, b), task_id=k) for k, (t, b) in team.items()],
        [t.profile() for t in usable.values()])
    splits = None if from_corpus else \
        _other_splits([team[n["task_id"]] for n in from_team], asked)
    if splits is not None:
        # This task on other splits (as alike as can be): every one of them, not the first 3
        # (it drew on splits 0-2 of 4 and left out the latest).
        chosen = {n["task_id"] for n in from_team}
        more = [k for k, tb in team.items()
                if k not in chosen and _other_splits([tb], asked) is not None]
        from_team += [{**from_team[0], "task_id": k} for k in more]
        splits += [team[k][1].training_seed for k in more]
    neighbours = []
    heads: list[tuple[str, str]] = []  # (metric, direction) of each neighbour, nearest first
    for n in from_corpus:
        c = usable[str(n["task_id"])]
        n.update(model=c.spec["task"]["model"]["name"],
                 dataset=c.spec["task"]["dataset"]["name"], metric=c.metric,
                 budget={"epochs": c.features["epochs"], "batch_size": c.features["batch_size"]},
                 source=reference.SOURCE, corpus_task=c.id)
        neighbours.append((n, c.ranking()))
        heads.append((c.metric, c.direction))
    for n in from_team:
        t, b = team[n["task_id"]]
        n.update(task_id=t.id, model=t.model_name, dataset=t.dataset_name, metric=t.metric,
                 budget=b.to_json(), source=SOURCE_TEAM)
        assert s is not None
        ranked = rank_families(h.history(s, [t.id], b), t.direction, h.evidence(s, [t.id], b),
                               metric=t.metric)
        ranked["no_skill"] = versus_no_skill(ranked, h.no_skill(s, [t.id], b), t.metric, t.kind)
        neighbours.append((n, ranked))
        heads.append((t.metric, t.direction))
    if not neighbours:
        return None
    corpus_names = ", ".join(f"{n['corpus_task']} ({n['similarity']:.2f})" for n in from_corpus)
    team_names = ", ".join(f"{n['model']}/{n['dataset']} at {h.Budget(**n['budget']).label()} "
                           f"({n['similarity']:.2f})" for n in from_team)
    if splits is not None and asked is not None:
        source = SOURCE_TEAM
        explanation = (f"no history for this task on this data split (training.seed "
                       f"{asked[1].training_seed}) at this budget; ranked from its other data "
                       f"splits at this budget, each ranked on its own (never pooled): "
                       f"training.seed {', '.join(map(str, splits))}")
    elif not from_team:
        source = reference.SOURCE
        explanation = (f"no similar task in the team's history; ranked from the reference "
                       f"corpus's most similar tasks (similarity in parentheses): {corpus_names}")
    elif not from_corpus:
        source = SOURCE_TEAM
        explanation = (f"no history for this task at this budget; ranked from the team's most "
                       f"similar tasks by features (similarity in parentheses): {team_names}")
    else:
        source = f"{SOURCE_TEAM} and {reference.SOURCE}"
        explanation = (f"no history for this task at this budget; ranked from the most similar "
                       f"tasks by features (similarity in parentheses): the reference corpus's "
                       f"{corpus_names}, nearer than any of the team's, and the team's "
                       f"{team_names}")
    return _transfer_answer(neighbours, source, *heads[0], explanation, query.batch_size,
                            splits)


def _other_splits(pairs: Sequence[tuple[Task, h.Budget]],
                  asked: tuple[int, h.Budget] | None) -> list[int] | None:
    """The training seeds of `pairs` (a transfer answer's team neighbours, nearest first) when
    every one is the asked task at the asked budget on another data split; else None."""
    if asked is None or not pairs:
        return None
    task_id, budget = asked
    if any(t.id != task_id or replace(b, training_seed=budget.training_seed) != budget
           for t, b in pairs):
        return None
    return [b.training_seed for _, b in pairs]


def corpus_answer(query: TaskProfile, metric: str | None,
                  corpus: reference.Corpus) -> dict[str, Any] | None:
    """What a new team would be told for this task from this corpus alone (the benchmark's
    leave-one-out uses it with a corpus less the task)."""
    return _transfer(query, metric, corpus)


def corpus_order(s: Session, task_id: int, epochs: int, batch_size: int) -> list[str]:
    """The families best first as the reference corpus's tasks nearest this task (at this
    epochs and batch size) rank them: what a new team is told of it. [] with no corpus or no
    near task. A job's defaults sweep goes on in this order past the families its team's
    history ranked (a task's own history may rank 2 of 14)."""
    corpus, task = reference.load(), s.get(Task, task_id)
    if corpus is None or task is None:
        return []
    b = h.Budget(epochs, batch_size)
    out = corpus_answer(replace(h.profile(task, b), task_id=_key(task.id, b)), task.metric,
                        corpus)
    return [r["optimizer"] for r in out["ranking"]] if out else []


def _transfer_answer(neighbours: list[tuple[dict[str, Any], dict[str, Any]]], source: str,
                     metric: str, direction: str, explanation: str,
                     batch_size: int, splits: list[int] | None = None) -> dict[str, Any]:
    ranked = transfer_ranking(neighbours, splits)
    return {"method": "transfer", "source": source, "metric": metric, "direction": direction,
            "similar_tasks": [n for n, _ in neighbours], "from_splits": splits, **ranked,
            "start_from": _start_from(ranked["ranking"], batch_size), "explanation": explanation}


def _start_from(ranking: list[dict[str, Any]], batch_size: int | None = None
                ) -> dict[str, Any] | None:
    """A configuration to start from: the top family's best configuration (for a transfer
    answer, from the most similar task where that family ran, its learning rate moved to this
    task's batch size)."""
    if not ranking:
        return None
    top = ranking[0]
    params, note = top["params"], None
    src = top.get("source_task") or {}
    from_batch = (src.get("budget") or {}).get("batch_size")
    if batch_size and from_batch:
        params, factor = scale_lr_for_batch(top["optimizer"], params, from_batch, batch_size)
        if factor != 1.0:
            note = (f"learning rate x {factor:.3g}: tuned at batch size {from_batch}, moved to "
                    f"{batch_size} ({'linear' if factor == batch_size / from_batch else 'square-root'}"
                    f" scaling)")
    return {"optimizer": top["optimizer"], "schedule": top["schedule"] or "constant",
            "params": params, "from": top.get("source_task"), "lr_scaling": note}


def warm_start_configs(rec: dict[str, Any], mode: str, families: Sequence[str],
                       limit: int = 5) -> list[TrialConfig]:
    """From the task's recommendation at the job's budget `rec` (`recommend(s, team_id,
    task_id=..., epochs=..., ...)`): the best known configuration of the top `limit` of
    `families` for the task (`task`), or for it or its nearest tasks, the reference corpus
    included (`similar`), to seed a study. At a budget the task never ran, `task` takes the
    transfer answer's configurations that come from this same task at its other budgets."""
    if rec["method"] == "prior":
        return []
    ranking = rec["ranking"]
    if mode == "task" and rec["method"] != "direct":
        own = {t["id"] for t in rec.get("tasks") or []}
        ranking = [r for r in ranking if (r.get("source_task") or {}).get("source") == SOURCE_TEAM
                   and r["source_task"].get("task_id") in own]
    # Configurations from other tasks or budgets get their learning rate moved to this batch
    # size.
    batch = (rec.get("budget") or {}).get("batch_size") if rec["method"] == "transfer" else None
    out = []
    for r in [r for r in ranking if r["optimizer"] in families][:limit]:
        start = _start_from([r], batch)
        assert start is not None
        out.append(TrialConfig(start["optimizer"], start["schedule"], dict(start["params"])))
    return out


def learning_rates(s: Session, team_id: int, task_id: int, *, epochs: int | None = None,
                   batch_size: int | None = None,
                   early_stopping_patience: int | None = None,
                   precision: str | None = None,
                   training_seed: int | None = None,
                   per_family: int = LR_POINTS_PER_FAMILY) -> dict[str, Any]:
    """The complete trials of the task at one budget (the recommendation's, by default) as
    [learning rate, value] per family: how the metric varies with the learning rate, i.e. each
    family's robustness made visible. Each family's `per_family` most recent trials (a task
    with a long history would otherwise answer megabytes and draw them all), with how many
    it has (`n_trials`). The untuned baseline's runs (`search.baseline`) are `baseline`, apart
    from adamw's points: drawn as adamw's, they read as tuned adamw doing worse at lr 1e-3."""
    from tuner.figures import lr_points

    tasks = h.find_tasks(s, team_id, task_id=task_id)
    if not tasks:
        raise TaskNotFound(task_id)
    budget = _budget(tasks, h.budgets(s, [task_id]), BudgetAsked(
        epochs, batch_size, early_stopping_patience, precision, training_seed))
    trials = h.history(s, [task_id], budget, top_per_family=None,
                       latest_per_family=per_family) if budget else []
    baseline = {id(t): is_baseline(t.optimizer, t.schedule, t.params) for t in trials}
    return {"task": task_id, "metric": tasks[0].metric, "direction": tasks[0].direction,
            "budget": budget.to_json() if budget else None,
            "families": lr_points((t.optimizer, t.lr(), t.value) for t in trials
                                  if not baseline[id(t)]),
            "baseline": [p for ps in lr_points((t.optimizer, t.lr(), t.value) for t in trials
                                               if baseline[id(t)]).values() for p in ps],
            "n_trials": h.complete_per_family(s, [task_id], budget) if budget else {},
            "per_family": per_family}
