"""Reads behind recommendations: a team's tasks, the trials of a task at one training budget,
the evidence per family, families that never completed a trial, and the answer cache. SQL only;
what to answer is decided in `tuner.recommendations`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, String, Text, and_, case, cast, delete, func, not_, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased

from tuner.recommend import HistoryTrial, TaskProfile
from tuner.space import baseline_keys
from tuner.spec import TRAINING_FORMAT
from tuner.store.jobs import aware
from tuner.store.models import Job, RecommendationCache, Task, TrialRow, TrialStep
from tuner.trial import DB_ERROR, OUT_OF_MEMORY, WORKER_LOST, config_key, is_loop_note

log = logging.getLogger(__name__)
DbSession = Session  # the session type, for the layers above the store (which import no SQL)

# The ranking only looks at each family's best trials (best configuration, the interval from the
# top three, robustness within 2% of the best) and at configurations run with several seeds.
TOP_PER_FAMILY = 20
PRECISION_DEFAULT = "fp32"  # a job's training.precision unless it asks for bf16


@dataclass(frozen=True)
class Budget:
    """A training budget: trials are only compared (and repeats only pooled) within one. Early
    stopping is part of it: a run stopped after `early_stopping_patience` epochs without
    improvement is cut short of one trained for all its epochs (its value is never better for
    the same seed), so the two are neither repeats nor comparable. So is the precision asked
    for: a run under bf16 autocast rounds every matmul to 8 bits of mantissa, another run than
    one in fp32 (a job's `training.precision`; bf16 applies on a GPU, so a bf16 job's trials on
    a CPU ran fp32 and are kept apart anyway, never pooled with a run they might not be). So is
    the job's `training.seed`: it draws the train/validation split (and a synthetic dataset
    itself), so runs under two seeds are measured on two validation sets, and a family run only
    under one could look better for its split alone. (The seed a trial trains with, moved for
    repeats, changes initialisation and order, never the split.) So is the service's training
    code (`tuner.spec.TRAINING_FORMAT`): runs of an earlier release's loop are other runs."""

    epochs: int
    batch_size: int
    early_stopping_patience: int | None = None
    precision: str = PRECISION_DEFAULT
    training_seed: int = 0
    training_format: int = TRAINING_FORMAT

    def to_json(self) -> dict[str, int | str | None]:
        return {"epochs": self.epochs, "batch_size": self.batch_size,
                "early_stopping_patience": self.early_stopping_patience,
                "precision": self.precision, "training_seed": self.training_seed,
                "training_format": self.training_format}

    @classmethod
    def of(cls, epochs: Any, batch_size: Any, patience: Any,
           precision: Any = PRECISION_DEFAULT, training_seed: Any = 0,
           training_format: Any = TRAINING_FORMAT) -> Budget:
        """From a job's columns (or a row of them)."""
        return cls(int(epochs or 0), int(batch_size or 0),
                   None if patience is None else int(patience),
                   str(precision or PRECISION_DEFAULT), int(training_seed or 0),
                   TRAINING_FORMAT if training_format is None else int(training_format))

    def label(self, name_split: bool = False) -> str:
        """In words, as an answer's explanation says it; the data split when it is not the
        default one, or always with `name_split` (the task has others beside it)."""
        return (f"{self.epochs} epochs, batch size {self.batch_size}"
                + (f", early stopping after {self.early_stopping_patience} epochs without "
                   f"improvement" if self.early_stopping_patience is not None else "")
                + (f", {self.precision}" if self.precision != PRECISION_DEFAULT else "")
                + (f", training.seed {self.training_seed} (its own data split)"
                   if self.training_seed or name_split else "")
                + (f", trained by another release's training code (format "
                   f"{self.training_format}; this release's is {TRAINING_FORMAT})"
                   if self.training_format != TRAINING_FORMAT else ""))


def find_tasks(s: Session, team_id: int, *, task_id: int | None = None, model: str | None = None,
               dataset: str | None = None, metric: str | None = None) -> list[Task]:
    q = select(Task).where(Task.team_id == team_id)
    if task_id is not None:
        q = q.where(Task.id == task_id)
    if model:
        q = q.where(Task.model_name == model)
    if dataset:
        q = q.where(Task.dataset_name == dataset)
    if metric:
        q = q.where(Task.metric == metric)
    return list(s.scalars(q.order_by(Task.id)))


def budgets(s: Session, task_ids: Sequence[int]) -> list[tuple[Budget, int, datetime | None]]:
    """The training budgets these tasks' complete trials ran under: (budget, complete trials,
    latest), the most recent first."""
    if not task_ids:
        return []
    rows = s.execute(
        select(Job.epochs, Job.batch_size, Job.early_stopping_patience, Job.precision,
               Job.training_seed, Job.training_format, func.count(TrialRow.id),
               func.max(TrialRow.created_at))
        .join(TrialRow, TrialRow.job_id == Job.id)
        .where(Job.task_id.in_(task_ids), TrialRow.state == "complete",
               TrialRow.value.is_not(None), Job.epochs.is_not(None))
        .group_by(Job.epochs, Job.batch_size, Job.early_stopping_patience, Job.precision,
                  Job.training_seed, Job.training_format)).all()
    out = [(Budget.of(e, b, p, pr, sd, tf), int(n), aware(latest))
           for e, b, p, pr, sd, tf, n, latest in rows]
    out.sort(key=lambda r: r[2] or datetime.min.replace(tzinfo=UTC), reverse=True)
    return out


def _jobs_at(budget: Budget) -> Any:
    """The jobs run at this budget."""
    p = budget.early_stopping_patience
    return and_(Job.epochs == budget.epochs, Job.batch_size == budget.batch_size,
                Job.early_stopping_patience.is_(None) if p is None
                else Job.early_stopping_patience == p,
                Job.precision == budget.precision, Job.training_seed == budget.training_seed,
                Job.training_format == budget.training_format)


def _where(task_ids: Sequence[int], budget: Budget | None, exclude_job: str | None) -> list[Any]:
    where: list[Any] = [Job.task_id.in_(task_ids), TrialRow.optimizer.is_not(None)]
    if budget is not None:
        where.append(_jobs_at(budget))
    if exclude_job:
        where.append(TrialRow.job_id != exclude_job)
    return where


def history(s: Session, task_ids: Sequence[int], budget: Budget | None = None,
            exclude_job: str | None = None,
            top_per_family: int | None = TOP_PER_FAMILY,
            latest_per_family: int | None = None,
            config_keys: Sequence[str] | None = None) -> list[HistoryTrial]:
    """Complete trials of these tasks at one budget: each family's best `top_per_family` (all
    when None), every other run of a configuration among them, and every run of a
    configuration that was confirmed with other seeds. With `latest_per_family` instead (and
    `top_per_family` None): each family's most recent complete trials, that many, and nothing
    else (a picture of the family, never a ranking). `config_keys`: the trials of those
    configurations alone. Each trial's `setting` is its task and budget, so repeats are only
    pooled within one.

    A configuration is read with all its runs or not at all: cut by value, a configuration run
    again by a later job (a new seed for its sweep start, a warm start) would keep its lucky
    runs and lose its poor ones, an interval from its best seeds alone."""
    if not task_ids:
        return []
    cols = (TrialRow.id, TrialRow.job_id, TrialRow.number, TrialRow.optimizer, TrialRow.schedule,
            TrialRow.params, TrialRow.value, TrialRow.config_key, TrialRow.confirm_of,
            TrialRow.seed, TrialRow.created_at, TrialRow.state_bytes_per_param,
            TrialRow.seconds_per_epoch, Job.task_id, Job.epochs, Job.batch_size,
            Job.early_stopping_patience, Job.precision, Job.training_seed, Job.training_format)
    where = [*_where(task_ids, budget, exclude_job), TrialRow.state == "complete",
             TrialRow.value.is_not(None)]
    if config_keys is not None:
        where.append(TrialRow.config_key.in_(config_keys))
    if top_per_family is None and latest_per_family is None:
        q: Select[Any] = select(*cols).join(Job, TrialRow.job_id == Job.id).where(*where)
    elif top_per_family is None:
        latest = (select(*cols, func.row_number().over(partition_by=TrialRow.optimizer,
                                                       order_by=TrialRow.id.desc()).label("rn"))
                  .join(Job, TrialRow.job_id == Job.id).where(*where).subquery())
        q = select(*[latest.c[c.key] for c in cols]).where(latest.c.rn <= latest_per_family)
    else:
        direction = s.scalar(select(Task.direction).where(Task.id == task_ids[0]))
        order = TrialRow.value.desc() if direction == "maximize" else TrialRow.value.asc()
        ranked = (select(*cols, func.row_number().over(partition_by=TrialRow.optimizer,
                                                       order_by=order).label("rn"))
                  .join(Job, TrialRow.job_id == Job.id).where(*where).cte("ranked"))
        top = select(ranked.c.config_key).where(ranked.c.rn <= top_per_family)
        confirmed = (select(TrialRow.config_key).join(Job, TrialRow.job_id == Job.id)
                     .where(*_where(task_ids, budget, exclude_job),
                            TrialRow.confirm_of.is_not(None)))
        q = select(*[ranked.c[c.key] for c in cols]).where(
            (ranked.c.rn <= top_per_family) | ranked.c.config_key.in_(top)
            | ranked.c.config_key.in_(confirmed))
    out = []
    # Plain rows, not ORM objects: a recommendation reads hundreds of them per request.
    for (tid, job_id, number, opt, sched, params, value, key, confirm_of, seed, created,
         state_bytes, spe, task_id, epochs, batch_size, patience, precision,
         training_seed, training_format) in s.execute(q).all():
        out.append(HistoryTrial(
            job_id=job_id, number=number, optimizer=str(opt), schedule=sched, params=params,
            value=float(value), config_key=key or config_key(opt, sched, params) or str(tid),
            confirmation=confirm_of is not None, seed=seed, created_at=aware(created),
            state_bytes_per_param=state_bytes, seconds_per_epoch=spe,
            setting=(task_id, epochs, batch_size, patience, precision, training_seed,
                     training_format)))
    return out


def best_so_far(s: Session, trials: Sequence[HistoryTrial]
                ) -> dict[tuple[str, int], list[tuple[int, float]]]:
    """Each of these trials' best value so far at each of its epochs (the pruning history the
    recorder kept): (job id, trial number) -> [(epoch, best so far)], epochs in order. For the
    few runs of one configuration (`tuner.recommend.rank_families`' `curves`)."""
    if not trials:
        return {}
    which = or_(*(and_(TrialRow.job_id == t.job_id, TrialRow.number == t.number)
                  for t in trials))
    q = (select(TrialRow.job_id, TrialRow.number, TrialStep.step, TrialStep.best_value)
         .join(TrialStep, TrialStep.trial_id == TrialRow.id)
         .where(which, TrialStep.best_value.is_not(None)).order_by(TrialStep.step))
    out: dict[tuple[str, int], list[tuple[int, float]]] = {}
    for job_id, number, step, best in s.execute(q).all():
        if best is not None:
            out.setdefault((str(job_id), int(number)), []).append((int(step), float(best)))
    return out


def complete_per_family(s: Session, task_ids: Sequence[int],
                        budget: Budget | None = None) -> dict[str, int]:
    """How many complete trials each family has on these tasks at one budget."""
    rows = s.execute(select(TrialRow.optimizer, func.count()).join(Job, TrialRow.job_id == Job.id)
                     .where(*_where(task_ids, budget, None), TrialRow.state == "complete",
                            TrialRow.value.is_not(None))
                     .group_by(TrialRow.optimizer)).all()
    return {str(opt): int(n) for opt, n in rows}


SEEDS_USED_LIMIT = 5000  # (configuration, seed) pairs a new study carries


def seeds_used(s: Session, task_id: int, budget: Budget, exclude_job: str | None = None,
               limit: int = SEEDS_USED_LIMIT) -> dict[str, list[int]]:
    """Per configuration key, the training seeds its recorded trials on this task at this
    budget ran with (any state): what a new job must not run again, since the same
    configuration with the same seed repeats a run instead of measuring anything. The `limit`
    most recent (configuration, seed) pairs: a new study carries them, so a task with a long
    history does not hand every worker all of it (the repeats a new job would make are of the
    recent jobs' sweep starts, confirmations and first draws)."""
    rows = s.execute(select(TrialRow.config_key, TrialRow.seed)
                     .join(Job, TrialRow.job_id == Job.id)
                     .where(*_where([task_id], budget, exclude_job),
                            TrialRow.config_key.is_not(None), TrialRow.seed.is_not(None))
                     .group_by(TrialRow.config_key, TrialRow.seed)
                     .order_by(func.max(TrialRow.id).desc()).limit(limit))
    out: dict[str, list[int]] = {}
    for key, seed in rows.all():
        out.setdefault(str(key), []).append(int(seed or 0))
    return {k: sorted(v) for k, v in out.items()}


def evidence(s: Session, task_ids: Sequence[int], budget: Budget | None = None,
             exclude_job: str | None = None) -> dict[str, dict[str, Any]]:
    """Per family, over all its complete trials: trials, confirmation runs (and of them second
    looks: runs of a trial of the same job that never completed), configurations, jobs,
    latest, and runs of the untuned baseline (`search.baseline`)."""
    stopped = aliased(TrialRow)  # the trial a confirmation run repeats, where it did not complete
    q = (select(TrialRow.optimizer, func.count(), func.count(TrialRow.confirm_of),
                func.count(func.distinct(TrialRow.config_key)),
                func.count(func.distinct(TrialRow.job_id)), func.max(TrialRow.created_at),
                # the baseline's runs as the answer reads them (`baseline_keys`), not only
                # those its job enqueued as such
                func.sum(case((TrialRow.config_key.in_(baseline_keys()), 1), else_=0)),
                func.count(stopped.id))
         .join(Job, TrialRow.job_id == Job.id)
         .outerjoin(stopped, and_(stopped.job_id == TrialRow.job_id,
                                  stopped.number == TrialRow.confirm_of,
                                  stopped.state != "complete"))
         .where(*_where(task_ids, budget, exclude_job), TrialRow.state == "complete",
                TrialRow.value.is_not(None))
         .group_by(TrialRow.optimizer))
    return {str(opt): {"n_trials": n, "n_confirmation_runs": nc, "n_configurations": ncfg,
                       "n_jobs": nj, "latest": aware(latest), "n_baseline_runs": int(nb or 0),
                       "n_second_looks": int(looks or 0)}
            for opt, n, nc, ncfg, nj, latest, nb, looks in s.execute(q).all()}


# How a trial ended that another cause stopped (`unfinished_families`).
NOT_RUN = ("cancelled", WORKER_LOST, DB_ERROR)


def unfinished_families(s: Session, task_ids: Sequence[int], direction: str,
                        budget: Budget | None = None,
                        exclude_job: str | None = None) -> dict[str, dict[str, Any]]:
    """Per family, its trials that did not complete (pruned, diverged, failed): how many of
    each (and of the failed, how many ran out of memory on their device, and how many were
    interrupted after an epoch by no doing of their own: `n_interrupted`), the last epoch any
    reached, and the best intermediate value (a pruned trial's value is its best-so-far when it
    was stopped). The caller keeps the families with no complete trial. A trial stopped before
    its first epoch by no doing of its own (cancelled with its job, its worker lost, the
    database failing under it) never ran: its family was not tried (a cancelled job's
    defaults-sweep trials that never started made their families "tried, 1 failed")."""
    best = func.max(TrialRow.value) if direction == "maximize" else func.min(TrialRow.value)
    oom = func.sum(case((TrialRow.stop_reason == OUT_OF_MEMORY, 1), else_=0))
    cut = func.sum(case((TrialRow.stop_reason.in_(NOT_RUN), 1), else_=0))
    q = (select(TrialRow.optimizer, TrialRow.state, func.count(), func.max(TrialRow.stop_step),
                best, oom, cut)
         .join(Job, TrialRow.job_id == Job.id)
         .where(*_where(task_ids, budget, exclude_job), TrialRow.state != "complete",
                # (coalesce: a NULL stop reason made the whole test NULL, and left the row out)
                not_(and_(TrialRow.epochs_run == 0,
                          func.coalesce(TrialRow.stop_reason, "").in_(NOT_RUN))))
         .group_by(TrialRow.optimizer, TrialRow.state))
    out: dict[str, dict[str, Any]] = {}
    for opt, state, n, stop, value, n_oom, n_cut in s.execute(q).all():
        e = out.setdefault(str(opt), {"n_trials": 0, "n_pruned": 0, "n_diverged": 0,
                                      "n_failed": 0, "n_out_of_memory": 0, "n_interrupted": 0,
                                      "max_stop_epoch": 0, "best_intermediate_value": None})
        e["n_trials"] += n
        e["n_out_of_memory"] += int(n_oom or 0)
        e["n_interrupted"] += int(n_cut or 0)  # (of the failed) cancelled, lost, DB down
        e[f"n_{state}"] = e.get(f"n_{state}", 0) + n
        e["max_stop_epoch"] = max(e["max_stop_epoch"], int(stop or 0))
        cur = e["best_intermediate_value"]
        if value is not None and (cur is None or (value > cur if direction == "maximize"
                                                  else value < cur)):
            e["best_intermediate_value"] = float(value)
    return out


def loop_notes(s: Session, tasks: Sequence[Task], budget: Budget,
               exclude_job: str | None = None) -> list[str]:
    """What the jobs with complete trials at this budget noted of a team's own loop at their
    end (`tuner.trainable.trainable_notes`: a loop that never read the split seed or the batch
    size, or never applied bf16), each note once: their runs may not be what the budget says."""
    names = {t.model_name.removeprefix("trainable:") for t in tasks
             if t.model_name.startswith("trainable:")}
    if not names:
        return []
    jobs = (select(TrialRow.job_id).join(Job, TrialRow.job_id == Job.id)
            .where(*_where([t.id for t in tasks], budget, exclude_job),
                   TrialRow.state == "complete").distinct())
    rows = s.scalars(select(Job.notes).where(Job.id.in_(jobs))).all()
    return list(dict.fromkeys(n for notes in rows for n in notes or ()
                              if any(is_loop_note(n, name) for name in names)))


def no_skill(s: Session, task_ids: Sequence[int], budget: Budget) -> float | None:
    """What a model that ignores its inputs scores on the validation set of this budget's data
    split (`Job.no_skill`, the same for every job of the task on it), or None where no job at
    this budget knows it."""
    value = s.scalar(select(Job.no_skill).where(
        Job.task_id.in_(task_ids), Job.no_skill.is_not(None), _jobs_at(budget))
        .order_by(Job.created_at.desc()).limit(1))
    return None if value is None else float(value)


def n_jobs_with_complete(s: Session, task_ids: Sequence[int], budget: Budget | None) -> int:
    return int(s.scalar(select(func.count(func.distinct(TrialRow.job_id)))
                        .join(Job, TrialRow.job_id == Job.id)
                        .where(*_where(task_ids, budget, None), TrialRow.state == "complete"))
               or 0)


def profile(t: Task, budget: Budget | None = None) -> TaskProfile:
    b = budget or Budget(t.epochs, t.batch_size)
    return TaskProfile(task_id=t.id, model=t.model_name, kind=t.kind, n_params=t.n_params,
                       depth=t.depth, input_shape=tuple(t.input_shape), n_train=t.n_train,
                       n_classes=t.n_classes, batch_size=b.batch_size, epochs=b.epochs)


def transfer_candidates(s: Session, team_id: int, kind: str,
                        metric: str | None) -> list[tuple[Task, Budget]]:
    """The team's (task, budget) pairs with complete trials, of this kind (and metric)."""
    q = (select(Task.id, Job.epochs, Job.batch_size, Job.early_stopping_patience, Job.precision,
                Job.training_seed, Job.training_format)
         .join(Job, Job.task_id == Task.id)
         .join(TrialRow, TrialRow.job_id == Job.id)
         .where(Task.team_id == team_id, Task.kind == kind, TrialRow.state == "complete",
                Job.epochs.is_not(None)).distinct())
    if metric:
        q = q.where(Task.metric == metric)
    pairs = s.execute(q).all()
    tasks = {t.id: t for t in s.scalars(select(Task).where(Task.id.in_({p[0] for p in pairs})))}
    return [(tasks[tid], Budget.of(e, b, p, pr, sd, tf))
            for tid, e, b, p, pr, sd, tf in sorted(pairs, key=lambda r: (
                r[0], r[1], r[2], r[3] or 0, r[4] or "", r[5] or 0, r[6] or 0))]


def team_version(s: Session, team_id: int) -> str:
    n, total = s.execute(select(func.count(), func.coalesce(func.sum(Task.history_version), 0))
                         .where(Task.team_id == team_id)).one()
    return f"{n}:{total}"


def cached_direct_json(s: Session, key: str, team_id: int, task_id: int) -> str | None:
    """A cached direct answer for one task as its stored JSON text, in one query that also
    checks it is current (its version is the task's history version) and the team's; None
    otherwise. The caller serves the text as is."""
    version = cast(Task.id, String) + ":" + cast(Task.history_version, String)
    return s.scalar(
        select(cast(RecommendationCache.body, Text))
        .join(Task, and_(Task.id == task_id, Task.team_id == team_id))
        .where(RecommendationCache.key == key, RecommendationCache.team_id == team_id,
               RecommendationCache.method == "direct", RecommendationCache.version == version))


def cached_answer(s: Session, key: str) -> RecommendationCache | None:
    return s.get(RecommendationCache, key)


def store_answer(s: Session, key: str, team_id: int, version: str,
                 answer: dict[str, Any], keep_prefix: str | None = None) -> None:
    """Upsert a cached answer (commits); a failure to cache never fails the read. With
    `keep_prefix`, the team's cached answers whose keys do not start with it (an earlier answer
    format's) are deleted in the same transaction."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    values = {"key": key, "team_id": team_id, "version": version, "method": answer["method"],
              "body": answer, "computed_at": datetime.now(UTC)}
    stmt = insert(RecommendationCache).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=["key"],
                                      set_={k: stmt.excluded[k] for k in values if k != "key"})
    try:
        s.execute(stmt)
        if keep_prefix is not None:
            s.execute(delete(RecommendationCache).where(
                RecommendationCache.team_id == team_id,
                ~RecommendationCache.key.startswith(keep_prefix, autoescape=True)))
        s.commit()
    except (DBAPIError, ValueError) as e:  # e.g. a read-only replica, or NaN in the answer
        s.rollback()
        log.warning("recommendation not cached: %s", e)
