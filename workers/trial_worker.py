"""A trial worker: a Ray task that runs one job's trials against the shared Optuna storage until
the job's budget is spent or the job is stopping."""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import optuna

from tuner.attrs import ATTR_WORKER
from tuner.objective import Objective
from tuner.search import load_study
from tuner.store.db import dispose_engines, session_factory, with_retries
from tuner.store.jobs import get_job, job_spec, take_ticket
from tuner.store.recorder import StaleTrialHandler, TrialRecorder, optuna_storage

log = logging.getLogger(__name__)
MAX_CONSECUTIVE_ERRORS = 4


@dataclass(frozen=True)
class WorkerConfig:
    db_url: str
    job_id: str
    heartbeat_interval: int
    grace_period: int
    cpus: float
    gpus: float


def assigned_device(gpu_ids: list[Any]) -> str:
    """cuda when Ray assigned this worker a GPU (CUDA_VISIBLE_DEVICES then holds it), else cpu."""
    return "cuda" if gpu_ids else "cpu"


def run_worker(cfg: WorkerConfig, gpu_ids: list[Any]) -> dict[str, Any]:
    """Take a budget ticket, run one trial, repeat. Returns what this worker did."""
    import torch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(max(1, int(cfg.cpus)))
    sessions = session_factory(cfg.db_url)
    with sessions() as s:
        job = get_job(s, cfg.job_id)
        spec, study_name = job_spec(job), job.study_name
    recorder = TrialRecorder(cfg.db_url, cfg.job_id)
    storage = optuna_storage(cfg.db_url, heartbeat_interval=cfg.heartbeat_interval,
                             grace_period=cfg.grace_period,
                             stale_trial_callback=StaleTrialHandler(recorder))
    study = load_study(spec, storage, study_name)
    device = torch.device(assigned_device(gpu_ids))
    objective = Objective(spec, device=device)
    where = {"pid": os.getpid(), "host": socket.gethostname(), "device": str(device)}

    def run(trial: optuna.Trial) -> float:
        trial.set_user_attr(ATTR_WORKER, where)
        return objective(trial)

    def ticket() -> bool:
        with sessions() as s:
            return take_ticket(s, cfg.job_id)

    try:
        return _trials(cfg, study, run, ticket, recorder, where)
    finally:
        storage.engine.dispose()  # Ray reuses this process: leave no pool behind
        dispose_engines()


def _trials(cfg: WorkerConfig, study: optuna.Study, run: Any, ticket: Any,
            recorder: TrialRecorder, where: dict[str, Any]) -> dict[str, Any]:
    done, errors = 0, 0
    while with_retries(ticket, what="take a trial ticket"):
        try:
            study.optimize(run, n_trials=1, callbacks=[recorder], catch=(Exception,),
                           gc_after_trial=False)
        except Exception as exc:
            # Outside a trial (Optuna's storage, e.g. a locked SQLite file). The dispatcher
            # reconciles the budget, so the ticket is not lost; back off and go on.
            errors += 1
            log.warning("worker %s: %s: %s (%d in a row)", where["pid"], type(exc).__name__,
                        exc, errors)
            if errors >= MAX_CONSECUTIVE_ERRORS:
                raise
            time.sleep(0.5 * 2**errors)
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
        return run_worker(cfg, list(ray.get_gpu_ids()))

    return trial_worker
