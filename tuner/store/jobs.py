"""Teams, keys, tasks, jobs and trial records: every read and write the service makes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload

from tuner.confirm import job_confirm_reserve
from tuner.errors import JobNotFound, TeamNotFound, TunerError
from tuner.results import TrialRecord
from tuner.spec import JobSpec
from tuner.store.models import (
    FINAL_STATUSES,
    ApiKey,
    Job,
    Task,
    Team,
    TrialRow,
    TrialStep,
    utcnow,
)
from tuner.tasks import TaskFeatures

KEY_PREFIX = "tk_"


def aware(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every datetime we store is UTC."""
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def study_name_for(job_id: str) -> str:
    """One study per job, named from the job id only (never a user-chosen name)."""
    return f"job-{job_id}"


# teams and keys ------------------------------------------------------------------------------

def get_team(s: Session, name: str) -> Team:
    team = s.scalar(select(Team).where(Team.name == name))
    if team is None:
        raise TeamNotFound(name)
    return team


def get_or_create_team(s: Session, name: str) -> Team:
    team = s.scalar(select(Team).where(Team.name == name))
    if team is None:
        team = Team(name=name)
        s.add(team)
        s.flush()
    return team


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(s: Session, team: Team, name: str = "") -> str:
    """A new key for `team`; the clear key is returned once and only its hash is stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    s.add(ApiKey(team_id=team.id, prefix=key[:10], key_hash=hash_key(key), name=name))
    s.flush()
    return key


def team_for_key(s: Session, key: str) -> Team | None:
    return s.scalar(select(Team).join(ApiKey, ApiKey.team_id == Team.id)
                    .where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)))


def revoke_key(s: Session, prefix: str) -> int:
    """Revoke the keys starting with `prefix` (at least 6 characters); returns how many."""
    if len(prefix) < 6:
        raise TunerError("key prefix: give at least 6 characters of the key")
    res = s.execute(update(ApiKey).where(ApiKey.prefix.startswith(prefix[:10]),
                                         ApiKey.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))
    return int(res.rowcount)  # type: ignore[attr-defined]


# tasks and jobs ------------------------------------------------------------------------------

def upsert_task(s: Session, team_id: int, spec: JobSpec, f: TaskFeatures) -> Task:
    task = s.scalar(select(Task).where(Task.team_id == team_id,
                                       Task.fingerprint == f.fingerprint))
    if task is None:
        task = Task(team_id=team_id, fingerprint=f.fingerprint,
                    model_name=spec.task.model.name, model_params=spec.task.model.params,
                    dataset_name=spec.task.dataset.name, dataset_params=spec.task.dataset.params,
                    metric=f.metric, direction=f.direction, kind=f.kind, n_params=f.n_params,
                    depth=f.depth, input_shape=f.input_shape, n_train=f.n_train,
                    n_classes=f.n_classes, batch_size=f.batch_size, epochs=f.epochs)
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
    job instead: `(job, created)`."""
    if idempotency_key:
        existing = job_for_key(s, team_id, idempotency_key)
        if existing is not None:
            return existing, False
    task = upsert_task(s, team_id, spec, features)
    job_id = uuid.uuid4().hex
    reserve = job_confirm_reserve(spec)
    job = Job(id=job_id, team_id=team_id, task=task, spec=spec.model_dump(mode="json"),
              status="queued", idempotency_key=idempotency_key,
              study_name=study_name_for(job_id), n_trials=spec.budget.n_trials - reserve,
              confirm_budget=reserve, epochs=spec.training.epochs,
              batch_size=spec.training.batch_size)
    s.add(job)
    try:
        s.commit()
    except IntegrityError:
        s.rollback()  # a concurrent submit with the same key won
        if idempotency_key:
            existing = job_for_key(s, team_id, idempotency_key)
            if existing is not None:
                return existing, False
        raise
    return job, True


def get_job(s: Session, job_id: str, team_id: int | None = None) -> Job:
    """The job; JobNotFound also when it belongs to another team."""
    job = s.get(Job, job_id)
    if job is None or (team_id is not None and job.team_id != team_id):
        raise JobNotFound(job_id)
    return job


def job_spec(job: Job) -> JobSpec:
    return JobSpec.model_validate(job.spec)


def _claimable(now: datetime) -> Any:
    return or_(Job.status == "queued",
               and_(Job.status == "running", or_(Job.lease_until.is_(None),
                                                 Job.lease_until < now)))


def claim_job(s: Session, owner: str, lease_s: float) -> Job | None:
    """Take the oldest queued job, or a running one whose dispatcher's lease ran out.
    PostgreSQL: FOR UPDATE SKIP LOCKED, so dispatchers never wait on or take the same job;
    SQLite: the conditional UPDATE decides (one writer at a time)."""
    now = utcnow()
    q = select(Job.id).where(_claimable(now)).order_by(Job.created_at).limit(1)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    job_id = s.scalar(q)
    if job_id is None:
        s.rollback()
        return None
    res = s.execute(update(Job).where(Job.id == job_id, _claimable(now)).values(
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


def renew_lease(s: Session, job_id: str, owner: str, lease_s: float) -> bool:
    """Extend our lease; False when another dispatcher has taken the job over."""
    now = utcnow()
    res = s.execute(update(Job).where(Job.id == job_id, Job.claimed_by == owner,
                                      Job.status == "running")
                    .values(lease_until=now + timedelta(seconds=lease_s), updated_at=now))
    s.commit()
    return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def release_leases(s: Session, owner: str) -> int:
    """A dispatcher shutting down cleanly hands its running jobs back at once (a restart resumes
    them without waiting for the lease to run out)."""
    res = s.execute(update(Job).where(Job.claimed_by == owner, Job.status == "running")
                    .values(lease_until=utcnow(), claimed_by=None))
    s.commit()
    return int(res.rowcount)  # type: ignore[attr-defined]


def take_ticket(s: Session, job_id: str) -> bool:
    """Reserve one trial of the budget (atomic); False when the budget is spent or the job is
    stopping."""
    res = s.execute(update(Job).where(
        Job.id == job_id, Job.status == "running", Job.cancel_requested.is_(False),
        Job.trials_claimed < Job.n_trials + Job.n_confirm,
    ).values(trials_claimed=Job.trials_claimed + 1))
    s.commit()
    return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def reconcile_tickets(s: Session, job_id: str) -> None:
    """Set the budget's tickets from the records, when no worker holds one (nothing running):
    every finished trial holds one, a failed one only beyond the n_trials retried failures.
    A ticket lost by a worker that died outside a trial is thus never lost for good."""
    job = get_job(s, job_id)
    refresh_counters(s, job_id)
    budget = job.n_trials + job.n_confirm
    job.trials_claimed = min(budget, job.n_done + max(0, job.n_failed - job.n_trials))
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


# trials --------------------------------------------------------------------------------------

def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) else None


def record_trial(s: Session, job_id: str, rec: TrialRecord, *, defaults_sweep: bool = False,
                 warm_start: bool = False, retry_of: int | None = None) -> bool:
    """Write a finished trial with its steps and refresh the job's counters, in one transaction.
    Idempotent: a trial already written is left alone (returns False). A failed trial returns
    its budget ticket so it is retried, up to n_trials failures."""
    if s.scalar(select(TrialRow.id).where(TrialRow.job_id == job_id,
                                          TrialRow.number == rec.number)) is not None:
        s.rollback()
        return False
    row = TrialRow(
        job_id=job_id, number=rec.number, optimizer=rec.optimizer, schedule=rec.schedule,
        params=rec.params, state=rec.state, value=rec.value, stop_step=rec.stop_step,
        stop_reason=rec.stop_reason, epochs_run=rec.epochs_run,
        seconds_per_epoch=rec.seconds_per_epoch, state_bytes_per_param=rec.state_bytes_per_param,
        device=rec.device, detail=rec.detail[:4000], defaults_sweep=defaults_sweep,
        warm_start=warm_start, retry_of=retry_of, seed=rec.seed, confirm_of=rec.confirm_of,
        config_key=rec.config_key(),
        steps=[TrialStep(step=int(st["step"]), value=_num(st.get("value")),
                         best_value=_num(st.get("best_value")),
                         train_loss=_num(st.get("train_loss")),
                         val_loss=_num(st.get("val_loss")), lr=_num(st.get("lr")),
                         elapsed_s=_num(st.get("elapsed_s"))) for st in rec.steps],
    )
    s.add(row)
    try:
        s.flush()
    except IntegrityError:
        s.rollback()  # written concurrently (worker callback and dispatcher sync)
        return False
    if rec.state == "failed":
        failed = s.scalar(select(func.count()).where(TrialRow.job_id == job_id,
                                                     TrialRow.state == "failed")) or 0
        s.execute(update(Job).where(Job.id == job_id, Job.trials_claimed > 0,
                                    Job.n_trials >= failed)
                  .values(trials_claimed=Job.trials_claimed - 1))
    refresh_counters(s, job_id)
    # Cached recommendations of this task are now out of date (see RecommendationCache).
    s.execute(update(Task).where(Task.id == select(Job.task_id).where(Job.id == job_id)
                                 .scalar_subquery())
              .values(history_version=Task.history_version + 1))
    s.commit()
    return True


def first_failure(s: Session, job_id: str) -> str | None:
    """The detail of the job's first failed trial (why a job whose trials all failed failed)."""
    return s.scalar(select(TrialRow.detail).where(TrialRow.job_id == job_id,
                                                  TrialRow.state == "failed")
                    .order_by(TrialRow.number).limit(1))


def recorded_numbers(s: Session, job_id: str) -> set[int]:
    return set(s.scalars(select(TrialRow.number).where(TrialRow.job_id == job_id)))


def refresh_counters(s: Session, job_id: str, n_running: int | None = None) -> None:
    """Recompute the job's progress from its trial rows (never incremented blindly, so a retried
    write cannot count twice). Does not commit."""
    job = s.get(Job, job_id)
    if job is None:
        return
    counts: dict[str, int] = {state: n for state, n in s.execute(
        select(TrialRow.state, func.count()).where(TrialRow.job_id == job_id)
        .group_by(TrialRow.state)).all()}
    order = TrialRow.value.desc() if job.task.direction == "maximize" else TrialRow.value.asc()
    best = s.execute(select(TrialRow.number, TrialRow.value).where(
        TrialRow.job_id == job_id, TrialRow.state == "complete", TrialRow.value.is_not(None))
        .order_by(order, TrialRow.number).limit(1)).first()
    job.n_complete = counts.get("complete", 0)
    job.n_pruned = counts.get("pruned", 0)
    job.n_diverged = counts.get("diverged", 0)
    job.n_failed = counts.get("failed", 0)
    job.n_done = job.n_complete + job.n_pruned + job.n_diverged
    job.best_trial_number, job.best_value = (best[0], best[1]) if best else (None, None)
    if n_running is not None:
        job.n_running = n_running
    job.updated_at = utcnow()


def job_trials(s: Session, job_id: str, *, offset: int = 0, limit: int | None = None,
               with_steps: bool = True) -> list[TrialRow]:
    q = select(TrialRow).where(TrialRow.job_id == job_id).order_by(TrialRow.number).offset(offset)
    if not with_steps:  # steps load in one extra query per page only when asked for
        q = q.options(lazyload(TrialRow.steps))
    if limit is not None:
        q = q.limit(limit)
    return list(s.scalars(q))


TRIAL_FIELDS = ("number", "state", "stop_reason", "stop_step", "optimizer", "schedule",
                "params", "value", "epochs_run", "seconds_per_epoch", "state_bytes_per_param",
                "device", "detail", "defaults_sweep", "warm_start", "retry_of", "seed",
                "confirm_of")
STEP_FIELDS = ("step", "value", "best_value", "train_loss", "val_loss", "lr", "elapsed_s")


def trial_json(t: TrialRow, with_steps: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {f: getattr(t, f) for f in TRIAL_FIELDS}
    if with_steps:
        d["steps"] = [{f: getattr(st, f) for f in STEP_FIELDS} for st in t.steps]
    return d


def trial_page(s: Session, job_id: str, *, offset: int = 0, limit: int = 100,
               with_steps: bool = True) -> list[dict[str, Any]]:
    """A page of the job's trials as trial_json dicts, read as plain rows (two queries; the
    ORM path costs several times more per page)."""
    rows = s.execute(select(TrialRow.id, *(getattr(TrialRow, f) for f in TRIAL_FIELDS))
                     .where(TrialRow.job_id == job_id).order_by(TrialRow.number)
                     .offset(offset).limit(limit)).all()
    page = {r[0]: dict(zip(TRIAL_FIELDS, r[1:], strict=True)) for r in rows}
    if with_steps and page:
        for d in page.values():
            d["steps"] = []
        for r in s.execute(select(TrialStep.trial_id, *(getattr(TrialStep, f) for f in STEP_FIELDS))
                           .where(TrialStep.trial_id.in_(list(page)))
                           .order_by(TrialStep.trial_id, TrialStep.step)):
            page[r[0]]["steps"].append(dict(zip(STEP_FIELDS, r[1:], strict=True)))
    return list(page.values())


def job_total(job: Job) -> int:
    """The job's trials in all: its search trials plus the confirmation runs, counted as the
    whole reserve until the race has ended (then as the runs it used)."""
    race_over = job.confirm_note is not None or job.status in FINAL_STATUSES
    return job.n_trials + (job.n_confirm if race_over else max(job.confirm_budget, job.n_confirm))


def job_brief(job: Job) -> dict[str, Any]:
    """Status and progress from the job row alone (lists, progress events)."""
    return {
        "id": job.id, "status": job.status, "error": job.error,
        "task": {"id": job.task_id, "fingerprint": job.task.fingerprint,
                 "model": job.task.model_name, "dataset": job.task.dataset_name,
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
        "budget": {"epochs": job.epochs, "batch_size": job.batch_size},
        "created_at": aware(job.created_at), "started_at": aware(job.started_at),
        "finished_at": aware(job.finished_at),
    }


def job_summary(s: Session, job: Job) -> dict[str, Any]:
    """Status, progress, best trial and best per optimizer family."""
    from tuner.results import best_per_family

    # Every trial row is counted in n_done or n_failed: a job without any skips the query.
    rows = job_trials(s, job.id, with_steps=False) if job.n_done or job.n_failed else []
    best_row = next((t for t in rows if t.number == job.best_trial_number), None)
    return {
        **job_brief(job), "study_name": job.study_name,
        "best": trial_json(best_row, with_steps=False) if best_row else None,
        "by_optimizer": best_per_family(rows, job.task.direction), "spec": job.spec,
    }
