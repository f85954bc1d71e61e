"""Trials per hour per GPU (or per CPU core here) with 1, 2, 4 and 8 small trials packed on one
device, through the service's own path: dispatcher -> Ray workers with fractional
`gpus_per_trial` (1/k) on a GPU, or fractional `cpus_per_trial` on a CPU-only machine.

    .venv/bin/python -m benchmarks.packing            # k = 1, 2, 4, 8; 16 trials each
    .venv/bin/python -m benchmarks.packing --smoke

Records which device ran. Throughput counts completed trials between the first trial's start and
the last trial's end (Ray and study start-up excluded).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import optuna

from benchmarks._common import save

OUT = Path(__file__).parent / "results" / "packing.json"


def run(k: int, trials: int, epochs: int, gpu: bool, cores: int) -> dict[str, Any]:
    from tuner.spec import JobSpec
    from tuner.store.auth import get_or_create_team
    from tuner.store.db import dispose_engines, session_factory
    from tuner.store.jobs import create_job, get_job
    from tuner.store.migrate import upgrade
    from tuner.tasks import inspect_task
    from workers.dispatcher import Dispatcher, DispatcherConfig

    url = f"sqlite:///{tempfile.mkdtemp(prefix='pack-')}/t.db"
    upgrade(url)
    resources = ({"gpus_per_trial": 1 / k, "cpus_per_trial": max(cores / k, 0.01)} if gpu
                 else {"cpus_per_trial": cores / k})
    spec = JobSpec.model_validate({
        "task": {"model": {"name": "mlp", "params": {"hidden": [128, 128]}},
                 "dataset": {"name": "digits"}},
        "training": {"epochs": epochs, "batch_size": 32, "device": "cuda" if gpu else "cpu"},
        "budget": {"n_trials": trials, "parallelism": k},
        "search": {"pruner": "none", "defaults_sweep": False, "confirm_top_k": 0},
        "resources": resources})
    with session_factory(url)() as s:
        job_id = create_job(s, get_or_create_team(s, "b").id, spec, inspect_task(spec))[0].id
    Dispatcher(DispatcherConfig.from_settings(url, poll_s=0.2)).run(once=True)
    with session_factory(url)() as s:
        job = get_job(s, job_id)
        assert job.status == "completed", job.error
        study_name = job.study_name
    study = optuna.load_study(study_name=study_name, storage=url)
    done = [t for t in study.trials if t.datetime_complete and t.datetime_start]
    span = (max(t.datetime_complete for t in done)  # type: ignore[type-var]
            - min(t.datetime_start for t in done)).total_seconds()  # type: ignore[type-var]
    devices = {t.user_attrs.get("worker", {}).get("device") for t in done}
    dispose_engines()
    per_hour = len(done) / span * 3600
    return {"k": k, "trials": len(done), "span_s": span, "trials_per_hour": per_hour,
            "per_unit": per_hour / (1 if gpu else cores), "devices": sorted(map(str, devices))}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packs", default="1,2,4,8")
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    if a.smoke:
        a.packs, a.trials, a.epochs = "1,2", 2, 1
    import ray
    import torch

    gpu = torch.cuda.is_available()
    cores = os.cpu_count() or 1
    if not ray.is_initialized():
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    unit = "GPU" if gpu else "core"
    device = torch.cuda.get_device_name(0) if gpu else f"CPU ({cores} cores)"
    rows = [run(int(k), max(a.trials, int(k)), a.epochs, gpu, cores)
            for k in a.packs.split(",")]
    base = rows[0]["per_unit"]
    for r in rows:
        r["speedup_vs_1"] = r["per_unit"] / base
    print(f"device: {device}")
    print(f"{'packed':>6} {'trials':>6} {'span s':>7} {'trials/h/' + unit:>14} {'vs 1':>6}")
    for r in rows:
        print(f"{r['k']:>6} {r['trials']:>6} {r['span_s']:>7.1f} {r['per_unit']:>14.0f} "
              f"{r['speedup_vs_1']:>6.2f}")
    res = {"device": device, "gpu": gpu, "unit": unit, "rows": rows, "epochs": a.epochs}
    save(a.out, res)
    print(f"wrote {a.out}", file=sys.stderr)
    return res


if __name__ == "__main__":
    main()
