"""The optional MLflow hook: a job run through the service logs one MLflow run per trial, with
its steps as metric history and its parameters under their public names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_api import FAST, Service, service  # noqa: F401  # the real API + dispatcher + Ray
from tuner.client import Client
from tuner.config import get_settings

pytestmark = pytest.mark.usefixtures("ray_session")
mlflow = pytest.importorskip("mlflow", reason="the `mlflow` extra (make test installs it)")


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("TUNER_MLFLOW_TRACKING_URI", uri)
    get_settings.cache_clear()  # the service's dispatcher reads it when it starts
    yield uri
    get_settings.cache_clear()


def test_each_trial_is_an_mlflow_run(mlflow_uri: str, service: Service) -> None:  # noqa: F811
    client = Client(service.url, service.key_a)
    job = client.submit({**FAST, "budget": {"n_trials": 6, "parallelism": 2}})
    final = client.wait(job["id"])
    assert final["status"] == "completed"
    trials = {t["number"]: t for t in client.trials(job["id"])["data"]}

    ml = mlflow.MlflowClient(tracking_uri=mlflow_uri)
    exp = ml.get_experiment_by_name("team-a/mlp/iris")  # the study name less the job
    assert exp is not None
    runs = ml.search_runs([exp.experiment_id], max_results=100)
    by_trial = {int(r.data.tags["tuner.trial"]): r for r in runs}
    assert sorted(by_trial) == sorted(trials)
    status = {"complete": "FINISHED", "pruned": "KILLED", "diverged": "FAILED", "failed": "FAILED"}
    for number, t in trials.items():
        run = by_trial[number]
        assert run.data.tags["tuner.job_id"] == job["id"]
        assert run.data.tags["tuner.state"] == t["state"] and run.info.status == status[t["state"]]
        history = ml.get_metric_history(run.info.run_id, final["task"]["metric"])
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
            (s["step"], s["value"]) for s in t["steps"] if s["value"] is not None]
        assert run.data.params["optimizer"] == t["optimizer"]
        assert {k for k in run.data.params if k not in ("optimizer", "schedule")} == set(t["params"])
        assert not any("one_minus" in k for k in run.data.params)


def test_a_failed_trials_run_says_why_with_its_traceback(mlflow_uri: str) -> None:
    """A failed trial's run carries its error (`tuner.detail`) and its traceback as the run's
    description (MLflow's note), in a real MLflow tracking store."""
    from tuner.mlflow_log import log_trial, target_for
    from tuner.trial import TrialRecord

    tb = "Traceback (most recent call last):\n  File \"team/loop.py\", line 3\nValueError: x\n"
    target = target_for(mlflow_uri, "j" * 32, "team-a/mlp/iris/job-" + "j" * 32,
                        "val_accuracy", "team-a")
    assert target is not None
    run_id = log_trial(target, TrialRecord(number=4, state="failed", stop_reason="failed",
                                           optimizer="adam", detail="ValueError: x",
                                           traceback=tb))
    run = mlflow.MlflowClient(tracking_uri=mlflow_uri).get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags["tuner.detail"] == "ValueError: x"
    assert run.data.tags["mlflow.note.content"] == f"```\n{tb}\n```"
