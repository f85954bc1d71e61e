"""Optional MLflow logging (`pip install 'optimizer-tuner[mlflow]'`, then
`TUNER_MLFLOW_TRACKING_URI`): one MLflow run per recorded trial, its parameters under their
public names, every epoch's metric (and train loss, validation loss, learning rate) as metric
history, its state as the run's status. The experiment is the job's study name less the job
(`<team>/<model>/<dataset>`), so a task's jobs share one experiment; each run is tagged with its
job, trial number, family, schedule and state (and why it stopped: `tuner.detail`; a failed
trial's traceback is the run's description). Logging never fails a trial: an error is logged
as a warning and the trial stays recorded in the service."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tuner.trial import TrialRecord

log = logging.getLogger(__name__)
STATUS = {"complete": "FINISHED", "pruned": "KILLED", "diverged": "FAILED", "failed": "FAILED"}
STEP_METRICS = ("train_loss", "val_loss", "lr")
# A tag's value is kept to this many characters: MLflow 3 takes 8000 (MAX_TAG_VAL_LENGTH),
# older tracking servers 5000; within both.
TAG_CHARS = 5000


@dataclass(frozen=True)
class MlflowTarget:
    tracking_uri: str
    experiment: str
    metric: str
    tags: dict[str, str]


def target_for(tracking_uri: str | None, job_id: str, study_name: str, metric: str,
               team: str) -> MlflowTarget | None:
    """Where a job's trials go, or None when MLflow logging is off."""
    if not tracking_uri:
        return None
    experiment = study_name.rsplit("/job-", 1)[0] if "/job-" in study_name else study_name
    return MlflowTarget(tracking_uri, experiment, metric,
                        {"tuner.job_id": job_id, "tuner.team": team, "tuner.study": study_name})


def log_trial(target: MlflowTarget, rec: TrialRecord) -> str:
    """One run for the trial; returns its run id."""
    from mlflow.entities import Metric, Param

    client, exp_id = _experiment(target)
    tags = {**target.tags, "tuner.trial": str(rec.number), "tuner.state": rec.state,
            "tuner.optimizer": rec.optimizer or "", "tuner.schedule": rec.schedule or "",
            "tuner.stop_reason": rec.stop_reason or ""}
    if rec.detail:  # why it stopped, diverged or failed
        tags["tuner.detail"] = rec.detail[:TAG_CHARS]
    if rec.traceback:  # a failed trial's traceback as the run's description (MLflow's note)
        tags["mlflow.note.content"] = f"```\n{rec.traceback[-(TAG_CHARS - 8):]}\n```"
    job = target.tags["tuner.job_id"][:8]
    run = client.create_run(exp_id, run_name=f"job-{job}-trial-{rec.number}", tags=tags)
    now = int(time.time() * 1000)
    metrics = []
    for s in rec.steps:
        values: dict[str, Any] = {target.metric: s.value, **{k: getattr(s, k) for k in STEP_METRICS}}
        metrics += [Metric(k, float(v), now, s.step) for k, v in values.items() if v is not None]
    params = {"optimizer": rec.optimizer, "schedule": rec.schedule, **rec.params}
    client.log_batch(run.info.run_id, metrics=metrics,
                     params=[Param(k, str(v)) for k, v in params.items() if v is not None])
    client.set_terminated(run.info.run_id, status=STATUS.get(rec.state, "FAILED"))
    return str(run.info.run_id)


def _experiment(target: MlflowTarget, attempts: int = 4) -> tuple[Any, str]:
    """The client and the experiment's id, creating it if needed. Retried: trial workers that
    start at once race to create the experiment, and with a fresh SQLite tracking store to create
    MLflow's own tables (`duplicate column name`); nothing is logged before this succeeds."""
    import mlflow

    for attempt in range(attempts):
        try:
            client = mlflow.MlflowClient(tracking_uri=target.tracking_uri)
            exp = client.get_experiment_by_name(target.experiment)
            exp_id = exp.experiment_id if exp is not None else \
                client.create_experiment(target.experiment)
            return client, str(exp_id)
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def prepare(target: MlflowTarget | None) -> None:
    """Create the tracking store's tables and the experiment once, from the dispatcher, before
    any trial worker logs: workers that did it at once could race on a fresh store."""
    if target is None:
        return
    try:
        _experiment(target)
    except Exception as exc:
        log.warning("MLflow: experiment %r not ready: %s: %s", target.experiment,
                    type(exc).__name__, exc)


def hook(target: MlflowTarget | None) -> Callable[[TrialRecord], None] | None:
    """The recorder's hook for a newly recorded trial (None when logging is off)."""
    if target is None:
        return None

    def on_recorded(rec: TrialRecord) -> None:
        try:
            log_trial(target, rec)
        except Exception as exc:
            log.warning("MLflow: trial %d of job %s not logged: %s: %s", rec.number,
                        target.tags["tuner.job_id"], type(exc).__name__, exc)

    return on_recorded
