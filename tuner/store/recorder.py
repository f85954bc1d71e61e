"""Bridge from Optuna to the service tables: record each finished trial (worker callback), and
reconcile a study with its records (dispatcher), so both always hold the same trials."""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from tuner.attrs import ATTR_BEATS, ATTR_ENDED_BY, ATTR_RECORD, ATTR_WORKER
from tuner.results import trial_record
from tuner.store.db import (
    in_transaction,
    is_sqlite,
    normalize_url,
    session_factory,
    transient,
    with_retries,
)
from tuner.store.trials import out_of_memory_before, record_trial, recorded_as, recorded_numbers
from tuner.trial import DATA_ERROR, DB_ERROR, OUT_OF_MEMORY, WORKER_LOST, TrialRecord

with warnings.catch_warnings():  # "experimental since 2.8": every dispatcher's start said so
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    _RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
OUT_OF_MEMORY_AGAIN = ("out of memory again (trial {first} of this job, the same configuration, "
                       "ran out of memory before): this configuration needs more memory than "
                       "the device leaves it (lower training.batch_size, or give each trial "
                       "more of a GPU: resources.gpus_per_trial)")

# What a run of a trial wrote about itself: its record (steps, stop reason, detail), its worker,
# its batch heartbeats. A retry runs the same configuration again and keeps what was asked of it
# (configuration, seed, why it was enqueued), never these: Optuna's retry copies every user
# attribute, and a retry that started with its predecessor's was recorded as that run when
# killed before writing its own, was never an orphan to the dispatcher, and made no progress to
# the stall check until it had beaten as often.
RUN_ATTRS = (ATTR_RECORD, ATTR_WORKER, ATTR_BEATS)


def run_again(study: optuna.Study, t: FrozenTrial) -> None:
    """Enqueue failed trial `t` once more (Optuna's retry: at most `max_retry` times, and the
    retry says which trial it repeats), without what its run wrote about itself. Once: a call
    retried after its enqueue landed with the reply lost (`with_retries`) finds the retry in
    the study and enqueues nothing more (it enqueued a second run of the configuration)."""
    if any(o.number != t.number and (o.system_attrs.get("retry_history") or [None])[-1]
           == t.number for o in study.get_trials(deepcopy=False)):
        return
    fresh = copy.copy(t)
    fresh.user_attrs = {k: v for k, v in t.user_attrs.items() if k not in RUN_ATTRS}
    # Optuna's callback appends to the failed trial's own `retry_history` list: on a trial read
    # from the cached storage that grew the cache's copy, each call a step nearer `max_retry`.
    fresh.system_attrs = copy.deepcopy(t.system_attrs)
    _RETRY(study, fresh)


# What a failed trial's detail says when the dispatcher ended it and its worker left no word.
REASONS = {WORKER_LOST: "worker lost: its heartbeat stopped (the process died, or could not reach "
                        "the database for the grace period)",
           "cancelled": "cancelled: its worker was stopped"}
# ... when nobody said why: the trial failed with no record from its worker and no word from
# the dispatcher. Every way to that is the infrastructure's (Optuna's heartbeat check failed it
# and its handler then met a database outage; the worker's last write and its retries met one;
# the worker was killed before its objective wrote anything), so such a trial is lost: run
# again, not counted against the job.
NO_RECORD = ("worker lost: the trial ended with no record from its worker (the process was "
             "killed or lost, or the database failed under its last write)")
# How a trial's own run records that it failed (tuner.objective): kept when the dispatcher
# cancels the trial after that record was written.
OWN_FAILURES = ("failed", DATA_ERROR, OUT_OF_MEMORY)
# A trial stopped (or never started) because another trial of its job could not read the
# task's data: recorded `cancelled` with this detail.
STOPPED_FOR_DATA = ("cancelled: another trial of this job could not read the task's data, which "
                    "every trial reads")
# ... because trials of its job failed the same way and none got further (the job's error says
# how: tuner.trial.same_failure).
STOPPED_FOR_SAME_FAILURE = ("cancelled: other trials of this job failed the same way and none got "
                            "further (the job's error says how), so the job stopped")

log = logging.getLogger(__name__)

HEARTBEAT_DEFAULT_S = 5
GRACE_DEFAULT_S = 20


class _Storage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose trial heartbeat outlives a database blip. Optuna's heartbeat
    thread writes in a bare loop: one write that met a dropped connection ended the thread, and
    a trial whose worker was still training went stale a grace period later, was failed as
    lost and run again from scratch. Here a beat that meets a transient error is skipped (the
    next, one interval later, tries again)."""

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:
            if not transient(exc):
                raise
            log.warning("trial heartbeat not written (the next one tries again): %s",
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def optuna_storage(url: str, *, heartbeat_interval: int = HEARTBEAT_DEFAULT_S,
                   grace_period: int = GRACE_DEFAULT_S,
                   stale_trial_callback: Any = None) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage on the service database, with heartbeats so a trial whose worker
    died is detected (after `grace_period`) and failed."""
    url = normalize_url(url)
    kwargs: dict[str, Any] = ({"connect_args": {"timeout": 30}} if is_sqlite(url)
                              else {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 4})
    return _Storage(
        url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_interval,
        grace_period=grace_period, heartbeat_stale_trial_callback=stale_trial_callback,
        skip_table_creation=True)  # created once by `tuner db upgrade`


def with_heartbeat(storage: optuna.storages.RDBStorage, trial_ids: list[int]) -> set[int]:
    """Which of these trials ever recorded an Optuna heartbeat (read-only look at Optuna's
    `trial_heartbeats` table; Optuna has no API for it)."""
    if not trial_ids:
        return set()
    with storage.engine.connect() as conn:
        q = text("SELECT trial_id FROM trial_heartbeats WHERE trial_id IN :ids").bindparams(
            bindparam("ids", expanding=True))
        return {int(r[0]) for r in conn.execute(q, {"ids": trial_ids})}


class TrialRecorder:
    """Writes finished trials of one job to the service tables, retrying through brief database
    outages; every write is idempotent (keyed by job and trial number)."""

    def __init__(self, url: str, job_id: str,
                 on_recorded: Callable[[TrialRecord], None] | None = None) -> None:
        self.url = url
        self.job_id = job_id
        self.sessions = session_factory(url)
        self.on_recorded = on_recorded  # e.g. tuner.mlflow_log.hook: after a trial's first record

    def write(self, t: FrozenTrial, *, reason: str | None = None, detail: str | None = None,
              study: optuna.Study | None = None) -> bool:
        """Record `t` (once). With `study`: a trial lost (`worker_lost`), that the database
        failed (`db_error`), or that ran out of memory (`out_of_memory`) on its configuration's
        first run out of memory in the job, is enqueued again with the same configuration when
        it is first recorded, so it runs exactly once more whoever records it (the heartbeat
        check's handler, the worker's callback or the dispatcher's sync). A configuration out
        of memory before in this job (whatever retried it: a lost worker's retry is not that
        run) is not run again, and counts against the job's failures (`counted_failures`): it
        needs more than the device has. Without `reason`, a failed trial says why it ended if
        the dispatcher marked it (`ATTR_ENDED_BY`), else with no record it was lost
        (`NO_RECORD`)."""
        if reason is None and t.state == TrialState.FAIL:
            if marked := t.system_attrs.get(ATTR_ENDED_BY):
                reason, detail = marked.get("reason"), detail or marked.get("detail")
            elif ATTR_RECORD not in t.user_attrs and not t.system_attrs.get("fail_reason"):
                reason, detail = WORKER_LOST, detail or NO_RECORD
        rec = trial_record(t)
        # A trial that failed on its own before its worker was stopped (its record written,
        # Optuna not yet told) keeps its reason: a trial that found the data unreadable is why
        # the job stopped, and one that failed before the dispatcher cancelled it (its job's
        # trials failing the same way, say) is one of them: it was recorded `cancelled` with
        # its own error as the detail. (A lost worker's trial is retried as lost.)
        own = (t.user_attrs.get(ATTR_RECORD) or {}).get("stop_reason")
        if reason and rec.state == "failed" and rec.stop_reason != DATA_ERROR and not (
                reason == "cancelled" and own in OWN_FAILURES):
            rec.stop_reason = reason
            if not (t.user_attrs.get(ATTR_RECORD) or {}).get("detail"):  # no word from the worker
                rec.detail = detail or REASONS.get(reason, reason)
        again = rec.stop_reason in (DB_ERROR, WORKER_LOST)
        if rec.stop_reason == OUT_OF_MEMORY:
            first = in_transaction(self.sessions, lambda s: out_of_memory_before(
                s, self.job_id, rec.config_key(), rec.number),
                what=f"read the runs out of memory of job {self.job_id}")
            again = first is None
            if first is not None:
                rec.detail = f"{rec.detail}; {OUT_OF_MEMORY_AGAIN.format(first=first)}"
        attempts: list[None] = []

        def record(s: Session) -> bool:
            attempts.append(None)
            return record_trial(s, self.job_id, rec)

        new = in_transaction(self.sessions, record,
                             what=f"record trial {t.number} of job {self.job_id}")
        if not new and len(attempts) > 1:
            # An attempt met the database and the next found the row written: most likely our
            # own commit, its reply lost (the row says what we wrote), and then the retry and
            # the hook are ours to do (they were never done: the trial was not run again).
            # Another recorder's row written at that very moment is done by it as well: the
            # retry's enqueue looks for one already there (the hook may then run twice).
            new = in_transaction(self.sessions, lambda s: recorded_as(
                s, self.job_id, rec.number), what="read a trial's record") == (
                    rec.state, rec.stop_reason)
        if new and study is not None and again:
            with_retries(lambda: run_again(study, t), what=f"enqueue trial {t.number} again")
        if new and self.on_recorded is not None:
            self.on_recorded(rec)
        return new

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna callback: runs in the worker after each of its trials."""
        self.write(trial, study=study)

    def sync(self, study: optuna.Study, trials: Sequence[FrozenTrial] | None = None, *,
             settle_s: float = 0.0) -> int:
        """Record every finished trial of the study (or of `trials`, already read from it) that
        is not recorded yet; returns how many. `settle_s`: a trial failed less than this long
        ago with no record from its worker is left for a later call. Another process's
        heartbeat check may have failed it and be about to record why (Optuna sets the state
        first, then calls `StaleTrialHandler`), in its words. A trial nobody recorded (the
        handler met a database outage: the check is not run again for a trial it failed) is
        recorded lost here, and run again (`write`)."""
        have = in_transaction(self.sessions, lambda s: recorded_numbers(s, self.job_id),
                              what="read recorded trials")
        now = datetime.now()  # Optuna's times are the failing process's local clock
        n = 0
        if trials is None:
            trials = with_retries(lambda: study.get_trials(deepcopy=False),
                                  what="read the study")
        for t in trials:
            if t.state.is_finished() and t.number not in have \
                    and not (settle_s and _settling(t, now, settle_s)):
                n += self.write(t, study=study)
        return n


def _settling(t: FrozenTrial, now: datetime, settle_s: float) -> bool:
    """Failed within `settle_s`, and neither its worker nor the dispatcher said why. (A time
    further ahead than that is another host's clock, not a recent failure: not waited for.)"""
    done = t.datetime_complete
    return t.state == TrialState.FAIL and ATTR_RECORD not in t.user_attrs \
        and ATTR_ENDED_BY not in t.system_attrs and done is not None \
        and abs((now - done).total_seconds()) < settle_s


class StaleTrialHandler:
    """Storage callback for a trial whose worker died (heartbeat went stale): record it as failed
    (`worker_lost`), which enqueues it again (Optuna's RetryHeartbeatStaleTrialCallback, at most
    three times) unless the dispatcher's sync recorded it first (it did the same)."""

    def __init__(self, recorder: TrialRecorder) -> None:
        self.recorder = recorder

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        failed = study._storage.get_trial(trial._trial_id)
        if failed.state == TrialState.FAIL:
            self.recorder.write(failed, reason=WORKER_LOST, study=study)
