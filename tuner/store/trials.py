"""Trial records: write a finished trial with its steps (the pruning history) and the job's
counters in one transaction, and read them back as pages. `record_trial` commits; the readers
do not write."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from sqlalchemy import and_, func, not_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased, lazyload

from tuner.spec import epoch_pace
from tuner.store.models import Job, Task, TrialRow, TrialStep, utcnow
from tuner.trial import (
    INFRA_FAILURES,
    OUT_OF_MEMORY,
    STEP_FIELDS,
    TRACEBACK_CHARS,
    TRIAL_FIELDS,
    TrialRecord,
)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) else None


def record_trial(s: Session, job_id: str, rec: TrialRecord) -> bool:
    """Write a finished trial with its steps and refresh the job's counters, in one transaction.
    Idempotent: a trial already written is left alone (returns False). A failed trial returns
    its budget ticket so it is retried, up to n_trials failures."""
    if s.scalar(select(TrialRow.id).where(TrialRow.job_id == job_id,
                                          TrialRow.number == rec.number)) is not None:
        s.rollback()
        return False
    fields = {f: getattr(rec, f) for f in TRIAL_FIELDS}
    fields["detail"] = rec.detail[:4000]
    fields["traceback"] = rec.traceback[:TRACEBACK_CHARS] if rec.traceback else None
    row = TrialRow(job_id=job_id, config_key=rec.config_key(), **fields, steps=[
        TrialStep(**{f: _num(getattr(st, f)) for f in STEP_FIELDS if f != "step"},
                  step=st.step) for st in rec.steps])
    s.add(row)
    try:
        s.flush()
    except IntegrityError:
        s.rollback()  # written concurrently (worker callback and dispatcher sync)
        return False
    if rec.state == "failed":
        # An infrastructure failure (worker lost, database blip) always gives its ticket back;
        # the others up to the job's allowance of n_trials failures.
        failed = counted_failures(s, job_id)
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


def _out_of_memory_before(job_id: Any, key: Any, number: Any, row: Any = TrialRow) -> Any:
    """SQL: `row` is a trial of the job, with configuration `key`, numbered before `number`,
    that ran out of memory."""
    return and_(row.job_id == job_id, row.stop_reason == OUT_OF_MEMORY,
                row.config_key.is_not_distinct_from(key), row.number < number)


def out_of_memory_before(s: Session, job_id: str, key: str | None, number: int) -> int | None:
    """The first trial of this job whose configuration (`key`) ran out of memory before trial
    `number`: a configuration's first run out of memory is the infrastructure's (packed trials
    share a device), a later one is the configuration's."""
    return s.scalar(select(func.min(TrialRow.number))
                    .where(_out_of_memory_before(job_id, key, number)))


def counted_failures(s: Session, job_id: str) -> int:
    """Failed trials that count against the job's allowance: not those the infrastructure
    failed (`INFRA_FAILURES`, and a configuration's first run out of memory in the job: they
    are run again)."""
    reason = func.coalesce(TrialRow.stop_reason, "failed")
    earlier = aliased(TrialRow)
    first_out_of_memory = and_(reason == OUT_OF_MEMORY, not_(
        select(earlier.id).where(_out_of_memory_before(
            TrialRow.job_id, TrialRow.config_key, TrialRow.number, row=earlier)).exists()))
    return s.scalar(select(func.count()).where(
        TrialRow.job_id == job_id, TrialRow.state == "failed",
        not_(or_(reason.in_(INFRA_FAILURES), first_out_of_memory)))) or 0


def first_failure(s: Session, job_id: str, state: str = "failed",
                  reason: str | None = None) -> str | None:
    """The detail of the job's first failed (or `state`) trial, or the first with stop reason
    `reason`: why a job whose trials all failed (or diverged) has no result."""
    q = select(TrialRow.detail).where(TrialRow.job_id == job_id, TrialRow.state == state)
    if reason is not None:
        q = q.where(TrialRow.stop_reason == reason)
    return s.scalar(q.order_by(TrialRow.number).limit(1))


# How many of a task's most recent jobs are looked at for the pace of its epochs.
PACE_JOBS = 50


def longest_epoch_wait(s: Session, job: Job) -> dict[str, tuple[float, int]]:
    """By hardware (the GPU's model, or cpu; "" for a trial that did not say), the longest
    wait for progress (seconds; a trial's first epoch counted from its start, set-up included)
    recorded by trials of this job's task that ran at this job's pace (the same
    `tuner.spec.PACE_FIELDS`): this job's own recorded trials (a dispatcher that takes the job
    over starts with them) and its task's earlier jobs' (among the `PACE_JOBS` most recent),
    with how many jobs that is. A task is one team's, so is this."""
    pace = epoch_pace(job.spec)
    ids = [jid for jid, spec in s.execute(
        select(Job.id, Job.spec).where(Job.task_id == job.task_id)
        .order_by(Job.created_at.desc()).limit(PACE_JOBS)) if epoch_pace(spec) == pace]
    if job.id not in ids:
        ids.append(job.id)
    hardware = func.coalesce(TrialRow.hardware, "")
    rows = s.execute(select(hardware, func.max(TrialRow.longest_wait_s),
                            func.count(func.distinct(TrialRow.job_id)))
                     .where(TrialRow.job_id.in_(ids), TrialRow.longest_wait_s.is_not(None))
                     .group_by(hardware)).all()
    return {str(h): (float(w or 0.0), int(n)) for h, w, n in rows}


def recorded_numbers(s: Session, job_id: str) -> set[int]:
    return set(s.scalars(select(TrialRow.number).where(TrialRow.job_id == job_id)))


def recorded_as(s: Session, job_id: str, number: int) -> tuple[str, str | None] | None:
    """How trial `number` of the job was recorded (its state and stop reason); None if not."""
    row = s.execute(select(TrialRow.state, TrialRow.stop_reason).where(
        TrialRow.job_id == job_id, TrialRow.number == number)).first()
    return (row[0], row[1]) if row is not None else None


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


def step_summary(s: Session, job_id: str) -> dict[int, tuple[int, float | None, float | None]]:
    """Per trial number: how many of its epochs reported a finite value, and the largest and
    the smallest of them (tuner.figures.figures_of: the best so far from every trial without
    reading every step). NaN and infinities are left out, as the figures leave them out
    (PostgreSQL orders NaN above every number, infinity included; SQLite stores it as NULL)."""
    finite = and_(TrialStep.value.is_not(None), TrialStep.value < math.inf,
                  TrialStep.value > -math.inf)
    rows = s.execute(select(TrialRow.number, func.count(TrialStep.id), func.max(TrialStep.value),
                            func.min(TrialStep.value))
                     .join(TrialStep, TrialStep.trial_id == TrialRow.id)
                     .where(TrialRow.job_id == job_id, finite).group_by(TrialRow.number)).all()
    return {int(n): (int(c), hi, lo) for n, c, hi, lo in rows}


def steps_of(s: Session, job_id: str, numbers: Collection[int]) -> dict[int, list[dict[str, Any]]]:
    """The steps (`step`, `value`) of these trials of the job, in step order."""
    out: dict[int, list[dict[str, Any]]] = {int(n): [] for n in numbers}
    wanted = list(out)
    for start in range(0, len(wanted), 500):  # bounded IN lists
        for n, step, value in s.execute(
                select(TrialRow.number, TrialStep.step, TrialStep.value)
                .join(TrialStep, TrialStep.trial_id == TrialRow.id)
                .where(TrialRow.job_id == job_id,
                       TrialRow.number.in_(wanted[start:start + 500]))
                .order_by(TrialRow.number, TrialStep.step)):
            out[int(n)].append({"step": step, "value": value})
    return out


def trial_json(t: TrialRow, with_steps: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {f: getattr(t, f) for f in TRIAL_FIELDS}
    if with_steps:
        d["steps"] = [{f: getattr(st, f) for f in STEP_FIELDS} for st in t.steps]
    return d


def trial_page(s: Session, job_id: str, *, offset: int = 0, limit: int = 100,
               with_steps: bool = True, state: str | None = None,
               number: int | None = None) -> list[dict[str, Any]]:
    """A page of the job's trials (those in `state`, or trial `number`, or all) as trial_json
    dicts, read as plain rows (two queries; the ORM path costs several times more per page)."""
    rows = s.execute(select(TrialRow.id, *(getattr(TrialRow, f) for f in TRIAL_FIELDS))
                     .where(TrialRow.job_id == job_id,
                            *([TrialRow.state == state] if state else []),
                            *([TrialRow.number == number] if number is not None else []))
                     .order_by(TrialRow.number)
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
