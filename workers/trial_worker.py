"""A trial worker: a Ray task that runs one job's trials against the shared Optuna storage until
the job's budget is spent or the job is stopping."""

from __future__ import annotations

import gc
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from tuner import mlflow_log
from tuner.attrs import ATTR_RECORD, ATTR_WORKER
from tuner.config import PROGRESS_EVERY_S
from tuner.errors import DataError
from tuner.objective import Objective, Provenance
from tuner.results import failing_alike
from tuner.search import load_study
from tuner.spec import JobSpec
from tuner.store.auth import team_name
from tuner.store.db import dispose_engines, session_factory, transient, with_retries
from tuner.store.jobs import get_job, job_spec, take_ticket
from tuner.store.models import Job
from tuner.store.recorder import StaleTrialHandler, TrialRecorder, optuna_storage
from tuner.trial import DB_ERROR

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_ERRORS = 4
MAX_TRANSIENT_ERRORS = 12  # about a minute of database outage, backing off to 5 s


def _mark_db_error(trial: optuna.Trial, exc: BaseException) -> None:
    """Record that the trial failed because of the database (its record's stop reason), so it is
    run again and not counted against the job's failures. Best effort: the database may still be
    down, and then the trial is failed as lost by its stale heartbeat, which is retried too."""
    def mark() -> None:
        rec = dict(trial.user_attrs.get(ATTR_RECORD) or {})
        rec.update(stop_reason=DB_ERROR,
                   detail=f"database error: {type(exc).__name__}: {str(exc).splitlines()[0]}"
                   if str(exc) else f"database error: {type(exc).__name__}")
        trial.set_user_attr(ATTR_RECORD, rec)

    try:
        with_retries(mark, what="mark a trial failed by the database")
    except Exception:
        log.warning("could not mark trial %d as failed by the database", trial.number)


@dataclass(frozen=True)
class WorkerConfig:
    db_url: str
    job_id: str
    heartbeat_interval: int
    grace_period: int
    cpus: float
    gpus: float
    owner: str | None = None  # the dispatcher that started this worker (tickets only while it
    # holds the job)
    mlflow_uri: str | None = None  # log each trial to MLflow (tuner.mlflow_log)
    progress_every_s: float = PROGRESS_EVERY_S  # how often a trial's batch heartbeat is written


def provenance(job: Job) -> Provenance:
    """What the job's task was made from and the training code it runs, as its rows say."""
    return Provenance(job.task.data_digest, job.task.model_digest, job.task.code_digest,
                      job.training_format)


def assigned_device(gpu_ids: list[Any], preference: str = "auto") -> str:
    """cuda when Ray assigned this worker a GPU (CUDA_VISIBLE_DEVICES then holds it), else cpu;
    cpu whatever Ray assigned when the spec says `training.device: cpu`, so that the worker
    says the hardware its trials run on (the stall check judges a worker against the waits
    seen on its hardware; a GPU named for trials on the CPU was judged against other
    hardware's)."""
    return "cuda" if gpu_ids and preference != "cpu" else "cpu"


def run_worker(cfg: WorkerConfig, gpu_ids: list[Any], task_id: str | None = None
               ) -> dict[str, Any]:
    """Take a budget ticket, run one trial, repeat. Returns what this worker did. `task_id`:
    this Ray task's, recorded on each trial (`worker.task`), so that the dispatcher can stop
    the worker of a stalled trial."""
    import torch

    from tuner.training import hardware_name

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(max(1, int(cfg.cpus)))
    sessions = session_factory(cfg.db_url)
    def read() -> tuple[JobSpec, str, str, str, Provenance]:
        with sessions() as s:
            job = get_job(s, cfg.job_id)
            return (job_spec(job), job.study_name, team_name(s, job.team_id), job.task.metric,
                    provenance(job))

    spec, study_name, team, metric, made_from = with_retries(read, what="read the job")
    recorder = TrialRecorder(cfg.db_url, cfg.job_id, mlflow_log.hook(mlflow_log.target_for(
        cfg.mlflow_uri, cfg.job_id, study_name, metric, team)))
    # Both read the database (Optuna's schema version, the study's id): a blip is waited out.
    storage = with_retries(lambda: optuna_storage(
        cfg.db_url, heartbeat_interval=cfg.heartbeat_interval, grace_period=cfg.grace_period,
        stale_trial_callback=StaleTrialHandler(recorder)), what="open Optuna's storage")
    study = with_retries(lambda: load_study(spec, storage, study_name), what="load the study")
    device = torch.device(assigned_device(gpu_ids, spec.training.device))
    objective = Objective(spec, device=device, data_scope=team, made_from=made_from,
                          progress_every_s=cfg.progress_every_s)
    where = {"pid": os.getpid(), "host": socket.gethostname(), "device": str(device),
             "hardware": hardware_name(device), "task": task_id}

    unreadable: list[str] = []
    failed: list[bool] = []  # this worker's last trial failed by its own error

    def run(trial: optuna.Trial) -> float:
        with_retries(lambda: trial.set_user_attr(ATTR_WORKER, where), what="mark the trial")
        failed.clear()
        try:
            return objective(trial)
        except Exception as exc:
            if transient(exc):  # the database failed under the trial, not its configuration
                _mark_db_error(trial, exc)
            elif isinstance(exc, DataError):  # every trial reads the same files
                unreadable.append(str(exc))
            elif not isinstance(exc, optuna.TrialPruned):  # pruned and diverged trials did not
                failed.append(True)  # fail: no read of the study after each of them
            raise

    def ticket() -> bool:
        if unreadable:  # the job is over (its dispatcher stops it): take no other trial
            return False
        # Trials that failed alike (tuner.trial.same_failure) stop the job at the dispatcher's
        # next tick; trials that fail in a second would otherwise run several more until then.
        if failed and with_retries(lambda: failing_alike(study.get_trials(deepcopy=False)),
                                   what="read the job's failures") is not None:
            return False
        with sessions() as s:
            return take_ticket(s, cfg.job_id, cfg.owner)

    try:
        return _trials(cfg, study, run, ticket, recorder, where,
                       after_trial=release_memory if device.type == "cuda" else None)
    finally:
        storage.engine.dispose()  # Ray reuses this process: leave no pool behind
        dispose_engines()


def release_memory() -> None:
    """After a trial on a GPU: free what the trial left (its model, optimizer state, and an
    error's frames) and give the allocator's cache back to the device, so that the trials
    packed beside this worker (fractional gpus_per_trial) can use it; Ray keeps this process
    for the next trial, and PyTorch would otherwise keep the memory reserved in it."""
    import torch

    gc.collect()
    torch.cuda.empty_cache()


def _trials(cfg: WorkerConfig, study: optuna.Study, run: Any, ticket: Any,
            recorder: TrialRecorder, where: dict[str, Any],
            after_trial: Callable[[], None] | None = None) -> dict[str, Any]:
    done, errors = 0, 0
    while with_retries(ticket, what="take a trial ticket"):
        try:
            study.optimize(run, n_trials=1, callbacks=[recorder],
                           catch=(Exception,), gc_after_trial=False)
            if after_trial is not None:
                after_trial()
        except Exception as exc:
            # Outside a trial (Optuna's storage: a dropped connection, a locked SQLite file).
            # The dispatcher reconciles the budget, so the ticket is not lost; back off and go
            # on. A database blip is waited out longer than any other error.
            errors += 1
            limit = MAX_TRANSIENT_ERRORS if transient(exc) else MAX_CONSECUTIVE_ERRORS
            log.warning("worker %s: %s: %s (%d in a row)", where["pid"], type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "", errors)
            if errors >= limit:
                raise
            time.sleep(min(0.5 * 2**errors, 5.0))
            continue
        errors = 0
        done += 1
    return {**where, "trials": done}


def remote_worker() -> Any:
    """The Ray remote function (imported lazily so `workers` imports without starting Ray)."""
    import ray

    @ray.remote(max_retries=3, retry_exceptions=False)
    def trial_worker(cfg: WorkerConfig) -> dict[str, Any]:
        logging.basicConfig(level=logging.WARNING)
        return run_worker(cfg, list(ray.get_gpu_ids()), ray.get_runtime_context().get_task_id())

    return trial_worker
