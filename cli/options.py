"""The job spec options that `run` and `submit` share, defined once, and the spec they make.

Commands take them as `model: opt.Model = None`; a spec file's values are below them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import csv_list, load_spec_file
from tuner.spec import METRICS, PRUNERS, SAMPLERS

Model = Annotated[str | None, typer.Option(help="Model name (see `tuner models`).")]
Dataset = Annotated[str | None, typer.Option(help="Dataset (see `tuner datasets`).")]
Trials = Annotated[int | None, typer.Option(help="Number of trials (the last quarter "
                                                    "confirms the leaders).")]
Epochs = Annotated[int | None, typer.Option(help="Epochs per trial.")]
Optimizers = Annotated[str | None, typer.Option(help="Comma-separated families.")]
Schedules = Annotated[str | None, typer.Option(help="Comma-separated schedules.")]
Sampler = Annotated[str | None, typer.Option(help="|".join(SAMPLERS))]
Pruner = Annotated[str | None, typer.Option(help="|".join(PRUNERS))]
Seed = Annotated[int | None, typer.Option(help="Seed (sampler, init, split).")]
Metric = Annotated[str | None, typer.Option(help="|".join(METRICS))]
Batch = Annotated[int | None, typer.Option(help="Mini-batch size.")]
Parallel = Annotated[int | None, typer.Option(help="Concurrent trials.")]
Baseline = Annotated[bool, typer.Option(
    "--baseline", help="Run AdamW at lr 1e-3 with cosine first, to the end, and say whether the "
                       "answer beats it (search.baseline).")]
BaselineRuns = Annotated[int | None, typer.Option(
    "--baseline-runs", help="Runs of the baseline, each its own seed (search.baseline_runs; "
                            "implies --baseline).")]
Timeout = Annotated[float | None, typer.Option(help="Stop after this many seconds.")]
RunSplits = Annotated[int, typer.Option(
    "--splits", min=1, max=20, help="Run the search on this many data splits (training.seed, "
                                    "+1, +2, ...), one after another: the answer reads the "
                                    "first with the others.")]
Splits = Annotated[int, typer.Option(
    "--splits", min=1, max=20, help="Submit the job on this many data splits (training.seed, "
                                    "+1, +2, ...): the answer then says where each family "
                                    "stands on each.")]


def spec_dict(spec: Path | None, *, model: str | None, dataset: str | None,
               metric: str | None, optimizers: str | None, schedules: str | None,
               epochs: int | None, seed: int | None, batch_size: int | None, trials: int | None,
               parallelism: int | None, timeout: float | None, sampler: str | None,
               pruner: str | None, baseline: bool = False,
               baseline_runs: int | None = None) -> dict[str, Any]:
    """A spec from a file (optional) with command-line options on top; mlp on digits when
    neither names a task."""
    base = load_spec_file(spec) if spec else {}
    base.setdefault("task", {})
    own = "trainable" in base["task"]  # a trainable brings its own model and data
    if "model" not in base["task"] and model is None and not own:
        model = "mlp"
    if "dataset" not in base["task"] and dataset is None and not own:
        dataset = "digits"
    updates = {
        "task": {"model": {"name": model} if model else None,
                 "dataset": {"name": dataset} if dataset else None, "metric": metric},
        "space": {"optimizers": csv_list(optimizers), "schedules": csv_list(schedules)},
        "training": {"epochs": epochs, "seed": seed, "batch_size": batch_size},
        "budget": {"n_trials": trials, "parallelism": parallelism, "timeout_s": timeout},
        "search": {"sampler": sampler, "pruner": pruner,
                   "baseline": True if baseline or baseline_runs else None,
                   "baseline_runs": baseline_runs},
    }
    return _merge(base, updates)


def _merge(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    for key, value in updates.items():
        if isinstance(value, dict):
            merged = _merge(base.get(key) or {}, value)
            if merged:
                base[key] = merged
        elif value is not None:
            base[key] = value
    return base
