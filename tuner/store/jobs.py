"""Tasks and jobs: create, claim, lease, tickets, cancel, finish, and the job views. Teams and keys
are in `auth`, trial records in `trials`, recommendation reads in `history`.

Commit policy (see `tuner.store.db`): functions that change a job are whole units of work and
commit; `upsert_task` only flushes, inside `create_job`'s unit."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuner.confirm import job_confirm_reserve
from tuner.errors import JobIdAmbiguous, JobNotFound
from tuner.spec import TRAINING_FORMAT, JobSpec
from tuner.store.auth import team_name
from tuner.store.dispatchers import job_waiting
from tuner.store.models import (
    FINAL_STATUSES,
    Job,
    Task,
    utcnow,
)
from tuner.store.trials import counted_failures, job_trials, refresh_counters, trial_json

if TYPE_CHECKING:
    from tuner.tasks import TaskFeatures  # torch: only the job's creator needs it


def aware(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every datetime we store is UTC."""
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def study_name_for(job_id: str, team: str = "", model: str = "", dataset: str = "") -> str:
    """One study per job, unique by its job id; readable in tools that list studies
    (optuna-dashboard): `<team>/<model>/<dataset>/job-<id>`."""
    head = "/".join(p for p in (team, model, dataset) if p)[:400]
    return f"{head}/job-{job_id}" if head else f"job-{job_id}"


# tasks and jobs ------------------------------------------------------------------------------

def upsert_task(s: Session, team_id: int, spec: JobSpec, f: TaskFeatures) -> Task:
    """The team's task with these features' fingerprint, made if it is not there. A task stored
    before params equal to their defaults were left out of the fingerprint (2026-12-06) is found
    by its params as written and moved to the new fingerprint, so that its history goes on and
    the same model with its defaults left out finds it too."""
    task = s.scalar(select(Task).where(Task.team_id == team_id,
                                       Task.fingerprint == f.fingerprint))
    if task is None and f.written_fingerprint not in (None, f.fingerprint):
        task = s.scalar(select(Task).where(Task.team_id == team_id,
                                           Task.fingerprint == f.written_fingerprint))
        if task is not None:
            task.fingerprint = f.fingerprint
    if task is None:
        model, dataset = spec.task.names(f.dataset)
        task = Task(team_id=team_id, fingerprint=f.fingerprint,
                    model_name=model.name, model_params=model.params,
                    dataset_name=dataset.name, dataset_params=dataset.params,
                    metric=f.metric, direction=f.direction, kind=f.kind, n_params=f.n_params,
                    depth=f.depth, input_shape=f.input_shape, n_train=f.n_train,
                    n_classes=f.n_classes, batch_size=f.batch_size, epochs=f.epochs,
                    data_digest=f.data_digest, model_digest=f.model_digest,
                    code_digest=f.code_digest)
        s.add(task)
        s.flush()
    elif (task.batch_size, task.epochs) != (f.batch_size, f.epochs):
        # Training settings of the latest job describe the task best. Answers that show or
        # compare task features (recommendations, cached by history_version) change with them.
        task.batch_size, task.epochs = f.batch_size, f.epochs
        task.history_version += 1
    return task


def job_for_key(s: Session, team_id: int, idempotency_key: str) -> Job | None:
    """The team's job submitted with this idempotency key, if any."""
    return s.scalar(select(Job).where(Job.team_id == team_id,
                                      Job.idempotency_key == idempotency_key))


def create_job(s: Session, team_id: int, spec: JobSpec, features: TaskFeatures,
               idempotency_key: str | None = None) -> tuple[Job, bool]:
    """Queue a job (committed). With an idempotency key already used by this team, return that
    job instead: `(job, created)`. Two first submissions of a new task at once (two API
    processes) both find no task and both insert it: the second's insert fails on the unique
    fingerprint, and it is made again once, finding the task the first made (it was a 500)."""
    for attempt in (1, 2):
        if idempotency_key:
            existing = job_for_key(s, team_id, idempotency_key)
            if existing is not None:
                return existing, False
        try:
            return _create_job(s, team_id, spec, features, idempotency_key), True
        except IntegrityError:
            s.rollback()  # a concurrent submit made the task, or used the same key, first
            if attempt == 2:
                raise
    raise AssertionError("not reached")


def _create_job(s: Session, team_id: int, spec: JobSpec, features: TaskFeatures,
                idempotency_key: str | None) -> Job:
    from tuner.search import sweep_plan

    task = upsert_task(s, team_id, spec, features)
    job_id = uuid.uuid4().hex
    reserve = job_confirm_reserve(spec)
    job = Job(id=job_id, team_id=team_id, task=task, spec=spec.model_dump(mode="json"),
              status="queued", idempotency_key=idempotency_key,
              study_name=study_name_for(job_id, team_name(s, team_id), task.model_name,
                                        task.dataset_name), n_trials=spec.budget.n_trials - reserve,
              confirm_budget=reserve, epochs=spec.training.epochs,
              batch_size=spec.training.batch_size,
              early_stopping_patience=spec.training.early_stopping_patience,
              precision=spec.training.precision, training_seed=spec.training.seed,
              training_format=TRAINING_FORMAT, no_skill=features.no_skill,
              # The dispatcher orders the sweep again when the job starts (the notes say so).
              notes=sweep_plan(spec, provisional=True).notes())
    s.add(job)
    s.commit()
    return job


# A team's job named by the start of its id (as the web UI shows it: 8 characters), at least
# this many hex digits.
JOB_ID_PREFIX_MIN = 6
JOB_ID_PREFIX = re.compile(rf"[0-9a-f]{{{JOB_ID_PREFIX_MIN},31}}")  # no LIKE wildcard in it


def get_job(s: Session, job_id: str, team_id: int | None = None) -> Job:
    """The job; JobNotFound also when it belongs to another team. With a team, the start of
    a job's id names it too (`398d6a93`, as the web UI lists jobs) when it is the start of
    exactly one of the team's jobs' ids; JobIdAmbiguous when it starts several."""
    job = s.get(Job, job_id)
    if job is not None and (team_id is None or job.team_id == team_id):
        return job
    if team_id is None or not JOB_ID_PREFIX.fullmatch(job_id):
        short = team_id is not None and re.fullmatch(r"[0-9a-f]{1,5}", job_id) is not None
        raise JobNotFound(job_id, f" (name a job by its id, or by its first "
                                  f"{JOB_ID_PREFIX_MIN} characters or more)" if short else "")
    jobs = list(s.scalars(select(Job).where(Job.team_id == team_id,
                                            Job.id.startswith(job_id)).order_by(Job.id).limit(4)))
    if len(jobs) > 1:
        raise JobIdAmbiguous(job_id, [j.id for j in jobs])
    if not jobs:
        raise JobNotFound(job_id)
    return jobs[0]


def job_spec(job: Job) -> JobSpec:
    return JobSpec.model_validate(job.spec)


def _claimable(now: datetime, owner: str) -> Any:
    return or_(Job.status == "queued",
               and_(Job.status == "running", or_(Job.lease_until.is_(None),
                                                 Job.lease_until < now,
                                                 Job.claimed_by == owner)))


def claim_job(s: Session, owner: str, lease_s: float, *,
              now: datetime | None = None) -> Job | None:
    """Take the oldest queued job, or a running one whose dispatcher's lease ran out (`now`:
    the dispatcher's clock), or one leased to `owner` itself: a dispatcher claims only while it
    watches no job, so such a job is one whose claim committed while the reply was lost (a
    dropped connection; `with_retries` claims again), which would otherwise sit leased to a
    dispatcher that never watched it until the lease ran out. PostgreSQL: FOR UPDATE SKIP
    LOCKED, so dispatchers never wait on or take the same job; SQLite: the conditional UPDATE
    decides (one writer at a time)."""
    now = now or utcnow()
    q = select(Job.id).where(_claimable(now, owner)).order_by(Job.created_at).limit(1)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    job_id = s.scalar(q)
    if job_id is None:
        s.rollback()
        return None
    res = s.execute(update(Job).where(Job.id == job_id, _claimable(now, owner)).values(
        status="running", claimed_by=owner, lease_until=now + timedelta(seconds=lease_s),
        started_at=func.coalesce(Job.started_at, now), updated_at=now))
    if res.rowcount != 1:  # type: ignore[attr-defined]
        s.rollback()
        return None
    s.commit()
    job = s.get(Job, job_id)
    if job is not None:
        s.refresh(job)
    return job


def renew_lease(s: Session, job_id: str, owner: str, lease_s: float, *,
                now: datetime | None = None) -> bool:
    """Extend our lease; False when another dispatcher has taken the job over."""
    now = now or utcnow()
    res = s.execute(update(Job).where(Job.id == job_id, Job.claimed_by == owner,
                                      Job.status == "running")
                    .values(lease_until=now + timedelta(seconds=lease_s), updated_at=now))
    s.commit()
    return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def release_leases(s: Session, owner: str, job_id: str | None = None) -> int:
    """A dispatcher shutting down (or whose loop crashed on a job) hands its running jobs (or
    that one) back at once: another dispatcher, or a restart, resumes them without waiting for
    the lease to run out. Its workers take no new ticket from then on (`take_ticket`)."""
    q = update(Job).where(Job.claimed_by == owner, Job.status == "running")
    if job_id is not None:
        q = q.where(Job.id == job_id)
    res = s.execute(q.values(lease_until=utcnow(), claimed_by=None))
    s.commit()
    return int(res.rowcount)  # type: ignore[attr-defined]


def take_ticket(s: Session, job_id: str, owner: str | None = None) -> bool:
    """Reserve one trial of the budget (atomic); False when the budget is spent, the job is
    stopping, or (with `owner`) the worker's dispatcher no longer holds the job: a dispatcher
    that hands a job back, or loses it, stops its workers' new trials at once."""
    q = update(Job).where(
        Job.id == job_id, Job.status == "running", Job.cancel_requested.is_(False),
        Job.trials_claimed < Job.n_trials + Job.n_confirm)
    if owner is not None:
        q = q.where(Job.claimed_by == owner)
    res = s.execute(q.values(trials_claimed=Job.trials_claimed + 1))
    s.commit()
    return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def reconcile_tickets(s: Session, job_id: str) -> None:
    """Set the budget's tickets from the records, when no worker holds one (nothing running):
    every finished trial holds one, a failed one only beyond the n_trials retried failures.
    A ticket lost by a worker that died outside a trial is thus never lost for good."""
    job = get_job(s, job_id)
    refresh_counters(s, job_id)
    budget = job.n_trials + job.n_confirm
    job.trials_claimed = min(budget, job.n_done + max(0, counted_failures(s, job_id)
                                                      - job.n_trials))
    s.commit()


def request_stop(s: Session, job_id: str) -> None:
    """Workers take no new trials (timeout, or cancel)."""
    s.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
    s.commit()


def request_cancel(s: Session, job_id: str, team_id: int | None = None) -> Job:
    """Cancel: a queued job ends at once; a running one is stopped by its dispatcher."""
    job = get_job(s, job_id, team_id)
    if job.status == "queued":
        finish_job(s, job.id, "cancelled", "cancelled before it started")
    elif job.status == "running":
        job.cancel_requested = True
        job.error = "cancel requested"
        s.commit()
    s.refresh(job)
    return job


def finish_job(s: Session, job_id: str, status: str, error: str | None = None) -> None:
    """Move a job to a final state (once)."""
    assert status in FINAL_STATUSES, status
    now = utcnow()
    s.execute(update(Job).where(Job.id == job_id, Job.status.not_in(FINAL_STATUSES)).values(
        status=status, error=error, finished_at=now, updated_at=now, claimed_by=None,
        lease_until=None, n_running=0))
    s.commit()


def job_total(job: Job) -> int:
    """The job's trials in all: its search trials plus the confirmation runs, counted as the
    whole reserve until the race has ended (then as the runs it used). A job cancelled or
    failed before its race ended keeps the whole reserve: its plan, of which it ran `done`
    (`tuner jobs` showed a job of 30 trials cancelled before it started as `0/23`)."""
    race_over = job.confirm_note is not None or job.status == "completed"
    return job.n_trials + (job.n_confirm if race_over else max(job.confirm_budget, job.n_confirm))


def set_training_format(s: Session, job_id: str, training_format: int) -> None:
    """The training code a job will run (a queued job is run by whichever release claims it)."""
    s.execute(update(Job).where(Job.id == job_id).values(training_format=training_format))
    s.commit()


def set_notes(s: Session, job_id: str, notes: list[str]) -> None:
    s.execute(update(Job).where(Job.id == job_id).values(notes=notes))
    s.commit()


def add_notes(s: Session, job_id: str, notes: list[str]) -> None:
    """The job's notes and these after them, each once (a dispatcher that concludes a job again
    after a restart adds nothing twice)."""
    job = get_job(s, job_id)
    have = list(job.notes or [])
    set_notes(s, job_id, have + [n for n in notes if n not in have])


def job_brief(job: Job) -> dict[str, Any]:
    """Status and progress from the job row alone (lists, progress events)."""
    return {
        "id": job.id, "status": job.status, "error": job.error,
        "task": {"id": job.task_id, "fingerprint": job.task.fingerprint,
                 "model": job.task.model_name, "dataset": job.task.dataset_name,
                 # what tells two tasks of the same names apart (a team's CSVs are all `file`)
                 "model_params": job.task.model_params or {},
                 "dataset_params": job.task.dataset_params or {},
                 "data_digest": job.task.data_digest, "model_digest": job.task.model_digest,
                 "code_digest": job.task.code_digest,
                 "metric": job.task.metric, "direction": job.task.direction},
        "progress": {"n_trials": job_total(job), "n_confirm": job.n_confirm,
                     "done": job.n_done, "running": job.n_running,
                     "complete": job.n_complete, "pruned": job.n_pruned,
                     "diverged": job.n_diverged, "failed": job.n_failed,
                     "best_value": job.best_value},
        "confirmation": {"reserved": job.confirm_budget, "runs": job.n_confirm,
                         "share_of_budget": round(job.n_confirm / max(
                             job.n_trials + job.confirm_budget, 1), 4),
                         "note": job.confirm_note},
        "budget": {"epochs": job.epochs, "batch_size": job.batch_size,
                   "early_stopping_patience": job.early_stopping_patience,
                   "precision": job.precision, "training_seed": job.training_seed,
                   "training_format": job.training_format},
        "notes": list(job.notes or []),
        "created_at": aware(job.created_at), "started_at": aware(job.started_at),
        "finished_at": aware(job.finished_at),
    }


def job_summary(s: Session, job: Job) -> dict[str, Any]:
    """Status, progress, best trial, best per optimizer family, and the failed trials by
    their stop reason."""
    from tuner.results import best_per_family

    # Every trial row is counted in n_done or n_failed: a job without any skips the query.
    rows = job_trials(s, job.id, with_steps=False) if job.n_done or job.n_failed else []
    best_row = next((t for t in rows if t.number == job.best_trial_number), None)
    reasons = Counter(t.stop_reason or "failed" for t in rows if t.state == "failed")
    return {
        **job_brief(job), "study_name": job.study_name,
        "best": trial_json(best_row, with_steps=False) if best_row else None,
        "by_optimizer": best_per_family(rows, job.task.direction), "spec": job.spec,
        "failed_reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "waiting": job_waiting(s, job),
    }


def jobs_without_no_skill(s: Session) -> list[Job]:
    """Jobs that keep no `no_skill` (what a model that ignores its inputs scores on their
    validation set), oldest first: those recorded before revision 0015, and those whose task's
    data has none (a team's own loop, a metric it has no meaning for)."""
    return list(s.scalars(select(Job).where(Job.no_skill.is_(None))
                          .order_by(Job.created_at, Job.id)).all())


def fill_no_skill(s: Session, job_ids: list[str], value: float) -> None:
    """Record `value` as these jobs' `no_skill` (`tuner db backfill`) and move their tasks'
    history versions on, so that cached answers about them are computed again with it."""
    s.execute(update(Job).where(Job.id.in_(job_ids)).values(no_skill=value))
    tasks = select(Job.task_id).where(Job.id.in_(job_ids)).distinct()
    s.execute(update(Task).where(Task.id.in_(tasks))
              .values(history_version=Task.history_version + 1))
    s.commit()
