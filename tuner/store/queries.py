"""Read side for the API: job lists, a team's tasks, and recommendations from its history."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tuner.errors import SpecError
from tuner.recommend import (
    HistoryTrial,
    TaskProfile,
    prior_ranking,
    rank_families,
    similar_tasks,
    transfer_ranking,
)
from tuner.results import config_key
from tuner.space import TrialConfig
from tuner.store.jobs import aware
from tuner.store.models import Job, RecommendationCache, Task, TrialRow

log = logging.getLogger(__name__)


def list_jobs(s: Session, team_id: int, *, status: str | None = None, task_id: int | None = None,
              model: str | None = None, dataset: str | None = None, offset: int = 0,
              limit: int = 50) -> tuple[list[Job], int]:
    """A page of the team's jobs, newest first, and the total matching count."""
    q: Select[Any] = select(Job).join(Task, Job.task_id == Task.id).where(Job.team_id == team_id)
    if status:
        q = q.where(Job.status == status)
    if task_id is not None:
        q = q.where(Job.task_id == task_id)
    if model:
        q = q.where(Task.model_name == model)
    if dataset:
        q = q.where(Task.dataset_name == dataset)
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    page = s.scalars(q.order_by(Job.created_at.desc(), Job.id).offset(offset).limit(limit))
    return list(page.unique()), int(total)


def job_status_counts(s: Session) -> dict[str, int]:
    """Jobs per status, all teams (for /metrics)."""
    return {status: n for status, n in
            s.execute(select(Job.status, func.count()).group_by(Job.status)).all()}


def count_trials(s: Session, job_id: str) -> int:
    return int(s.scalar(select(func.count()).where(TrialRow.job_id == job_id)) or 0)


def team_tasks(s: Session, team_id: int) -> list[dict[str, Any]]:
    """The team's tasks with their job and trial counts."""
    jobs = (select(Job.task_id, func.count(Job.id).label("n_jobs"),
                   func.max(Job.created_at).label("latest"))
            .where(Job.team_id == team_id).group_by(Job.task_id).subquery())
    trials = (select(Job.task_id, func.count(TrialRow.id).label("n_trials"))
              .join(TrialRow, TrialRow.job_id == Job.id).where(Job.team_id == team_id)
              .group_by(Job.task_id).subquery())
    q = (select(Task, jobs.c.n_jobs, jobs.c.latest, trials.c.n_trials)
         .outerjoin(jobs, jobs.c.task_id == Task.id).outerjoin(trials, trials.c.task_id == Task.id)
         .where(Task.team_id == team_id).order_by(Task.id))
    return [task_json(t, n_jobs or 0, n_trials or 0, aware(latest))
            for t, n_jobs, latest, n_trials in s.execute(q).all()]


def task_json(t: Task, n_jobs: int = 0, n_trials: int = 0, latest: Any = None) -> dict[str, Any]:
    return {
        "id": t.id, "fingerprint": t.fingerprint,
        "model": {"name": t.model_name, "params": t.model_params},
        "dataset": {"name": t.dataset_name, "params": t.dataset_params},
        "metric": t.metric, "direction": t.direction,
        "features": {"kind": t.kind, "n_params": t.n_params, "depth": t.depth,
                     "input_shape": t.input_shape, "n_train": t.n_train,
                     "n_classes": t.n_classes, "batch_size": t.batch_size, "epochs": t.epochs},
        "n_jobs": n_jobs, "n_trials": n_trials, "latest_job_at": latest,
    }


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


# The ranking only looks at each family's best trials (best configuration, the interval from the
# top three, robustness within 2% of the best) and at configurations run with several seeds.
TOP_PER_FAMILY = 20


def history(s: Session, task_ids: Sequence[int], exclude_job: str | None = None,
            top_per_family: int | None = TOP_PER_FAMILY) -> list[HistoryTrial]:
    """Complete trials of these tasks: each family's best `top_per_family` (all when None),
    plus every run of a configuration that was confirmed with other seeds."""
    if not task_ids:
        return []
    cols = (TrialRow.id, TrialRow.job_id, TrialRow.number, TrialRow.optimizer, TrialRow.schedule,
            TrialRow.params, TrialRow.value, TrialRow.config_key, TrialRow.confirm_of,
            TrialRow.seed, TrialRow.created_at, TrialRow.state_bytes_per_param,
            TrialRow.seconds_per_epoch)
    where = [Job.task_id.in_(task_ids), TrialRow.state == "complete",
             TrialRow.value.is_not(None), TrialRow.optimizer.is_not(None)]
    if exclude_job:
        where.append(TrialRow.job_id != exclude_job)
    if top_per_family is None:
        q: Select[Any] = select(*cols).join(Job, TrialRow.job_id == Job.id).where(*where)
    else:
        direction = s.scalar(select(Task.direction).where(Task.id == task_ids[0]))
        order = TrialRow.value.desc() if direction == "maximize" else TrialRow.value.asc()
        ranked = (select(*cols, func.row_number().over(partition_by=TrialRow.optimizer,
                                                       order_by=order).label("rn"))
                  .join(Job, TrialRow.job_id == Job.id).where(*where).subquery())
        confirmed = (select(TrialRow.config_key).join(Job, TrialRow.job_id == Job.id)
                     .where(Job.task_id.in_(task_ids), TrialRow.confirm_of.is_not(None)))
        q = select(*[ranked.c[c.key] for c in cols]).where(
            (ranked.c.rn <= top_per_family) | ranked.c.config_key.in_(confirmed))
    out = []
    # Plain rows, not ORM objects: a recommendation reads hundreds of them per request.
    for (tid, job_id, number, opt, sched, params, value, key, confirm_of, seed, created,
         state_bytes, spe) in s.execute(q).all():
        out.append(HistoryTrial(
            job_id=job_id, number=number, optimizer=str(opt), schedule=sched, params=params,
            value=float(value), config_key=key or config_key(opt, sched, params) or str(tid),
            confirmation=confirm_of is not None, seed=seed, created_at=aware(created),
            state_bytes_per_param=state_bytes, seconds_per_epoch=spe))
    return out


def evidence(s: Session, task_ids: Sequence[int],
             exclude_job: str | None = None) -> dict[str, dict[str, Any]]:
    """Per family, over all its complete trials: trials, confirmation runs, jobs, latest."""
    q = (select(TrialRow.optimizer, func.count(), func.count(TrialRow.confirm_of),
                func.count(func.distinct(TrialRow.job_id)), func.max(TrialRow.created_at))
         .join(Job, TrialRow.job_id == Job.id)
         .where(Job.task_id.in_(task_ids), TrialRow.state == "complete",
                TrialRow.value.is_not(None), TrialRow.optimizer.is_not(None))
         .group_by(TrialRow.optimizer))
    if exclude_job:
        q = q.where(TrialRow.job_id != exclude_job)
    return {str(opt): {"n_trials": n, "n_confirmation_runs": nc, "n_jobs": nj,
                       "latest": aware(latest)}
            for opt, n, nc, nj, latest in s.execute(q).all()}


def profile(t: Task) -> TaskProfile:
    return TaskProfile(task_id=t.id, model=t.model_name, kind=t.kind, n_params=t.n_params,
                       depth=t.depth, input_shape=tuple(t.input_shape), n_train=t.n_train,
                       n_classes=t.n_classes, batch_size=t.batch_size, epochs=t.epochs)


def _query_profile(model: str, dataset: str, metric: str | None) -> TaskProfile:
    """Features of a task nobody ran yet: build the model on the data once (default params)."""
    from tuner.spec import JobSpec
    from tuner.tasks import inspect_task

    spec = JobSpec.model_validate({"task": {"model": {"name": model},
                                            "dataset": {"name": dataset}, "metric": metric}})
    f = inspect_task(spec)
    return TaskProfile(task_id=None, model=model, kind=f.kind, n_params=f.n_params,
                       depth=f.depth, input_shape=tuple(f.input_shape), n_train=f.n_train,
                       n_classes=f.n_classes, batch_size=f.batch_size, epochs=f.epochs)


def recommend(s: Session, team_id: int, *, task_id: int | None = None, model: str | None = None,
              dataset: str | None = None, metric: str | None = None,
              exclude_job: str | None = None, cache: bool = True) -> dict[str, Any]:
    """Optimizer families ranked for a task from the team's history only: `direct` (this task's
    trials), else `transfer` (the nearest tasks of the team), else `prior` (defaults). The
    answer is JSON-ready (timestamps as ISO strings).

    Answers are cached in `tuner_recommendation_cache` under a version of the history they were
    computed from: the matched tasks' `history_version` (bumped by every recorded trial), and for
    transfer and prior answers the team's task count and version sum. A read whose version still
    matches costs three indexed lookups instead of ranking the history again; any recorded trial
    or new task changes the version, so a cached answer is never stale."""
    tasks = find_tasks(s, team_id, task_id=task_id, model=model, dataset=dataset, metric=metric)
    if task_id is not None and not tasks:
        raise SpecError("task", f"no task {task_id} in your team")
    if len({t.direction for t in tasks}) > 1:  # e.g. val_loss and val_accuracy: caller must pick
        metrics = sorted({t.metric for t in tasks})
        raise SpecError("metric", "the matching tasks use different metrics; valid choices: "
                                  + ", ".join(metrics))
    if exclude_job is not None or not cache:
        return _json_ready(_recommend(s, team_id, tasks, task_id, model, dataset, metric,
                                      exclude_job))
    key = json.dumps([team_id, task_id, model, dataset, metric])
    direct_version = ",".join(f"{t.id}:{t.history_version}" for t in tasks)
    row = s.get(RecommendationCache, key)
    if row is not None and row.method == "direct" and row.version == direct_version:
        return dict(row.body)
    team_version = _team_version(s, team_id)  # read before computing: never newer than the answer
    if row is not None and row.version == f"{direct_version}|{team_version}":
        return dict(row.body)
    answer = _json_ready(_recommend(s, team_id, tasks, task_id, model, dataset, metric, None))
    version = (direct_version if answer["method"] == "direct"
               else f"{direct_version}|{team_version}")
    _store_answer(s, key, team_id, version, answer)
    return answer


def _team_version(s: Session, team_id: int) -> str:
    n, total = s.execute(select(func.count(), func.coalesce(func.sum(Task.history_version), 0))
                         .where(Task.team_id == team_id)).one()
    return f"{n}:{total}"


def _json_ready(answer: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(
        answer, default=lambda o: o.isoformat() if isinstance(o, datetime) else str(o)))
    return out


def _store_answer(s: Session, key: str, team_id: int, version: str,
                  answer: dict[str, Any]) -> None:
    """Upsert the cached answer; a failure to cache never fails the read."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    values = {"key": key, "team_id": team_id, "version": version, "method": answer["method"],
              "body": answer, "computed_at": datetime.now(UTC)}
    stmt = insert(RecommendationCache).values(**values)
    stmt = stmt.on_conflict_do_update(index_elements=["key"],
                                      set_={k: stmt.excluded[k] for k in values if k != "key"})
    try:
        s.execute(stmt)
        s.commit()
    except (DBAPIError, ValueError) as e:  # e.g. a read-only replica, or NaN in the answer
        s.rollback()
        log.warning("recommendation not cached: %s", e)


def _recommend(s: Session, team_id: int, tasks: list[Task], task_id: int | None,
               model: str | None, dataset: str | None, metric: str | None,
               exclude_job: str | None) -> dict[str, Any]:
    directions = {t.direction for t in tasks}
    ids = [t.id for t in tasks]
    trials = history(s, ids, exclude_job)
    base: dict[str, Any] = {"tasks": [task_json(t) for t in tasks]}
    if trials:
        direction = directions.pop()
        counts = evidence(s, ids, exclude_job)
        ranked = rank_families(trials, direction, counts)
        n = sum(c["n_trials"] for c in counts.values())
        jobs = s.scalar(select(func.count(func.distinct(TrialRow.job_id)))
                        .join(Job, TrialRow.job_id == Job.id)
                        .where(Job.task_id.in_(ids), TrialRow.state == "complete"))
        return {**base, "method": "direct", "metric": tasks[0].metric, "direction": direction,
                **ranked, "explanation": f"from {n} complete trials in {jobs} job(s) of this "
                                         f"task"}
    query = profile(tasks[0]) if tasks else (
        _query_profile(model, dataset, metric) if model and dataset else None)
    if query is not None:
        out = _transfer(s, team_id, query, metric or (tasks[0].metric if tasks else None))
        if out is not None:
            return {**base, **out}
    return {**base, "method": "prior", "metric": metric, **prior_ranking()}


def _transfer(s: Session, team_id: int, query: TaskProfile,
              metric: str | None) -> dict[str, Any] | None:
    with_history = select(Job.task_id).join(TrialRow, TrialRow.job_id == Job.id).where(
        Job.team_id == team_id, TrialRow.state == "complete").distinct()
    q = select(Task).where(Task.team_id == team_id, Task.kind == query.kind,
                           Task.id.in_(with_history))
    if metric:
        q = q.where(Task.metric == metric)
    candidates = {t.id: t for t in s.scalars(q)}
    near = similar_tasks(query, [profile(t) for t in candidates.values()])
    if not near:
        return None
    neighbours = []
    for n in near:
        t = candidates[n["task_id"]]
        n.update(model=t.model_name, dataset=t.dataset_name, metric=t.metric)
        neighbours.append((n, rank_families(history(s, [t.id]), t.direction,
                                            evidence(s, [t.id]))))
    names = ", ".join(f"{n['model']}/{n['dataset']} ({n['similarity']:.2f})" for n in near)
    return {"method": "transfer", "metric": candidates[near[0]["task_id"]].metric,
            "direction": candidates[near[0]["task_id"]].direction, "similar_tasks": near,
            **transfer_ranking(neighbours),
            "explanation": f"no history for this task; ranked from the team's most similar "
                           f"tasks by features (similarity in parentheses): {names}"}


def warm_start_configs(s: Session, team_id: int, task_id: int, mode: str,
                       families: Sequence[str], limit: int = 5) -> list[TrialConfig]:
    """The best known configuration of the top `limit` of `families` for a task (`task`), or
    for it or its nearest tasks (`similar`), to seed a new study."""
    rec = recommend(s, team_id, task_id=task_id)
    if rec["method"] == "prior" or (mode == "task" and rec["method"] != "direct"):
        return []
    wanted = [r for r in rec["ranking"] if r["optimizer"] in families]
    return [TrialConfig(r["optimizer"], r["schedule"] or "constant", dict(r["params"]))
            for r in wanted[:limit]]
