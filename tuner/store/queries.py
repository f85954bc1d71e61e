"""Read side for the API: job lists, a team's tasks, and recommendations from its history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from tuner.space import FAMILIES
from tuner.store.jobs import aware
from tuner.store.models import Job, Task, TrialRow


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


def recommend(s: Session, team_id: int, *, task_id: int | None = None, model: str | None = None,
              dataset: str | None = None, metric: str | None = None) -> dict[str, Any]:
    """Optimizer families ranked by their best complete trial in the team's history for this
    task (`method: direct`), or literature defaults when there is none (`method: prior`)."""
    tasks = find_tasks(s, team_id, task_id=task_id, model=model, dataset=dataset, metric=metric)
    directions = {t.direction for t in tasks}
    if len(directions) > 1:  # e.g. val_loss and val_accuracy tasks: the caller must pick
        metrics = sorted({t.metric for t in tasks})
        from tuner.errors import SpecError

        raise SpecError("metric", f"the matching tasks use different metrics; valid choices: "
                                  f"{', '.join(metrics)}")
    rows = _history(s, [t.id for t in tasks]) if tasks else []
    if not rows:
        return {"method": "prior", "tasks": [task_json(t) for t in tasks],
                "note": "no finished trials for this task in your team's history: literature "
                        "defaults of each family, not measured",
                "ranking": [{"optimizer": name, "schedule": "constant",
                             "params": {f"{name}.{p.name}": p.default for p in f.params
                                        if not p.requires},
                             "value": None, "n_trials": 0, "n_jobs": 0}
                            for name, f in FAMILIES.items()]}
    direction = directions.pop()
    best: dict[str, dict[str, Any]] = {}
    for row, job_id, created in rows:
        e = best.setdefault(row.optimizer, {"optimizer": row.optimizer, "n_trials": 0,
                                            "jobs": set(), "latest": None, "best": None})
        e["n_trials"] += 1
        e["jobs"].add(job_id)
        e["latest"] = max(filter(None, (e["latest"], aware(created))), default=None)
        cur = e["best"]
        if cur is None or (row.value > cur.value if direction == "maximize"
                           else row.value < cur.value):
            e["best"] = row
    sign = -1.0 if direction == "maximize" else 1.0
    ranking = []
    for e in sorted(best.values(), key=lambda e: sign * e["best"].value):
        b: TrialRow = e["best"]
        ranking.append({"optimizer": e["optimizer"], "schedule": b.schedule, "params": b.params,
                        "value": b.value, "job_id": b.job_id, "trial_number": b.number,
                        "n_trials": e["n_trials"], "n_jobs": len(e["jobs"]),
                        "latest_trial_at": e["latest"],
                        "state_bytes_per_param": b.state_bytes_per_param,
                        "seconds_per_epoch": b.seconds_per_epoch})
    return {"method": "direct", "direction": direction, "metric": tasks[0].metric,
            "tasks": [task_json(t) for t in tasks], "ranking": ranking}


def _history(s: Session, task_ids: Sequence[int]) -> list[Any]:
    q = (select(TrialRow, Job.id, TrialRow.created_at).join(Job, TrialRow.job_id == Job.id)
         .where(Job.task_id.in_(task_ids), TrialRow.state == "complete",
                TrialRow.value.is_not(None), TrialRow.optimizer.is_not(None)))
    return list(s.execute(q).all())
