"""Read side for the API: job lists and a team's tasks (recommendation reads are in
`tuner.store.history`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from tuner.store.jobs import aware
from tuner.store.models import Job, Task, TrialRow

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


def job_and_trial_counts(s: Session) -> tuple[dict[str, int], dict[str, int]]:
    """For /metrics, all teams, in one query over the jobs (not the trials): jobs per status,
    and trials by state from the jobs' counters (`running`: trials of running jobs only)."""
    rows = s.execute(select(Job.status, func.count(), func.sum(Job.n_complete),
                            func.sum(Job.n_pruned), func.sum(Job.n_diverged),
                            func.sum(Job.n_failed), func.sum(Job.n_running))
                     .group_by(Job.status)).all()
    jobs = {status: int(n) for status, n, *_ in rows}
    states = dict.fromkeys(("complete", "pruned", "diverged", "failed", "running"), 0)
    for status, _, *sums in rows:
        for state, v in zip(("complete", "pruned", "diverged", "failed"), sums, strict=False):
            states[state] += int(v or 0)
        if status == "running":
            states["running"] += int(sums[4] or 0)
    return jobs, states


def count_trials(s: Session, job_id: str, state: str | None = None) -> int:
    """The job's trials (those in `state`, or all)."""
    return int(s.scalar(select(func.count()).where(
        TrialRow.job_id == job_id, *([TrialRow.state == state] if state else []))) or 0)


def team_tasks(s: Session, team_id: int, task_ids: Sequence[int] | None = None, *,
               offset: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
    """The team's tasks (or these of them), the latest job's first, with their job and trial
    counts: the trials from the jobs' counters (`refresh_counters` keeps them equal to the
    trial rows), so a page costs a read of the team's jobs, not of every trial."""
    jobs = (select(Job.task_id, func.count(Job.id).label("n_jobs"),
                   func.max(Job.created_at).label("latest"),
                   func.sum(Job.n_done + Job.n_failed).label("n_trials"))
            .where(Job.team_id == team_id).group_by(Job.task_id).subquery())
    q = (select(Task, jobs.c.n_jobs, jobs.c.latest, jobs.c.n_trials)
         .outerjoin(jobs, jobs.c.task_id == Task.id).where(Task.team_id == team_id)
         .order_by(jobs.c.latest.desc().nulls_last(), Task.id.desc()).offset(offset).limit(limit))
    if task_ids is not None:
        q = q.where(Task.id.in_(task_ids))
    return [task_json(t, n_jobs or 0, int(n_trials or 0), aware(latest))
            for t, n_jobs, latest, n_trials in s.execute(q).all()]


def count_tasks(s: Session, team_id: int) -> int:
    return int(s.scalar(select(func.count(Task.id)).where(Task.team_id == team_id)) or 0)


def task_json(t: Task, n_jobs: int = 0, n_trials: int = 0, latest: Any = None) -> dict[str, Any]:
    return {
        "id": t.id, "fingerprint": t.fingerprint,
        "model": {"name": t.model_name, "params": t.model_params},
        "dataset": {"name": t.dataset_name, "params": t.dataset_params},
        "data_digest": t.data_digest, "model_digest": t.model_digest,
        "code_digest": t.code_digest,
        "metric": t.metric, "direction": t.direction,
        "features": {"kind": t.kind, "n_params": t.n_params, "depth": t.depth,
                     "input_shape": t.input_shape, "n_train": t.n_train,
                     "n_classes": t.n_classes, "batch_size": t.batch_size, "epochs": t.epochs},
        "n_jobs": n_jobs, "n_trials": n_trials, "latest_job_at": latest,
    }
