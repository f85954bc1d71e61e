"""What every benchmark script shares."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any


def save(out: Path, results: dict[str, Any]) -> None:
    """Write a script's JSON result (the file docs/benchmarks.md quotes)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))


@contextmanager
def corpus_held_out() -> Iterator[Callable[..., None]]:
    """Inside, `hold_out(dataset)` points the service (`TUNER_REFERENCE_CORPUS`) at the reference
    corpus it would load, less every task on `dataset`: nothing the service learns from the
    corpus was then measured on that dataset; `hold_out(task=id)` leaves out that one corpus
    task (leave-one-task-out). Afterwards the variable is as it was and the files are gone (a
    corpus turned off with `none` stays off)."""
    from tuner import corpus

    before = os.environ.get("TUNER_REFERENCE_CORPUS")
    source = corpus.PATH if before is None else None if before.lower() == "none" else Path(before)
    with tempfile.TemporaryDirectory(prefix="corpus-") as tmp:
        def hold_out(dataset: str | None = None, *, task: str | None = None) -> None:
            if source is None:
                return
            raw = json.loads(source.read_text())
            raw["tasks"] = [t for t in raw["tasks"] if t["id"] != task
                            and t["spec"]["task"]["dataset"]["name"] != dataset]
            path = Path(tmp) / f"corpus-without-{dataset or task}.json"
            path.write_text(json.dumps(raw))
            os.environ["TUNER_REFERENCE_CORPUS"] = str(path)

        try:
            yield hold_out
        finally:
            if before is None:
                os.environ.pop("TUNER_REFERENCE_CORPUS", None)
            else:
                os.environ["TUNER_REFERENCE_CORPUS"] = before


def interleaved(paths: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Each path's measurement `repeats` times, one round of every path per repeat, so that
    drifts of a shared machine hit every path alike."""
    runs: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(repeats):
        for name, measure in paths.items():
            runs[name].append(measure())
    return runs


def timed_answers(reads: dict[str, Callable[[], Any]], repeats: int, baseline: str,
                  label: str) -> dict[str, dict[str, Any]]:
    """Each way of making an answer (`reads`: name -> a call returning it), timed with its JSON
    encoding as the API sends it, `repeats` times interleaved, against `baseline`: median, runs,
    bytes and the ratios of time and size; printed as a table (`label`: the cases' column)."""
    import statistics
    import time

    sizes: dict[str, int] = {}

    def timed(name: str, read: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        sizes[name] = len(json.dumps(read(), default=str))
        return time.perf_counter() - t0

    runs = interleaved({name: partial(timed, name, read) for name, read in reads.items()}, repeats)
    base, base_size = statistics.median(runs[baseline]), sizes[baseline]
    cases = {k: {"median_s": statistics.median(v), "runs_s": v, "bytes": sizes[k],
                 "ratio_time": statistics.median(v) / base, "ratio_bytes": sizes[k] / base_size}
             for k, v in runs.items()}
    width = max(len(label), *map(len, cases))
    print(f"{label:<{width}} {'seconds':>8} {'kB':>8} {f'time vs {baseline}':>22} "
          f"{f'size vs {baseline}':>22}")
    for k, c in cases.items():
        print(f"{k:<{width}} {c['median_s']:>8.3f} {c['bytes'] / 1e3:>8.0f} "
              f"{c['ratio_time']:>22.3f} {c['ratio_bytes']:>22.3f}")
    return cases


def bench_job(s: Any) -> Any:
    """A queued job (mlp on iris, team `bench`) for a store benchmark to fill with rows."""
    from tuner.spec import JobSpec
    from tuner.store.auth import get_or_create_team
    from tuner.store.jobs import create_job
    from tuner.tasks import inspect_task

    spec = JobSpec.model_validate({"task": {"model": {"name": "mlp"},
                                            "dataset": {"name": "iris"}},
                                   "training": {"epochs": 3}, "budget": {"n_trials": 4}})
    job = create_job(s, get_or_create_team(s, "bench").id, spec, inspect_task(spec))[0]
    s.commit()
    return job


def synthetic_run(description: str, out: Path, argv: list[str] | None, *, samples: int,
                  epochs: int, repeats: int, smoke: tuple[int, int, int]) -> tuple[Any, Any]:
    """The options of a benchmark on synthetic classification data (`--smoke`: `smoke` is
    samples, epochs, repeats), and that data (one CPU thread): (args, data)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--samples", type=int, default=samples)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=out)
    a = ap.parse_args(argv)
    if a.smoke:
        a.samples, a.epochs, a.repeats = smoke
    import torch

    from tuner.datasets import load_dataset

    torch.set_num_threads(1)
    data = load_dataset("classification", {"n_samples": a.samples, "n_features": a.features,
                                           "n_informative": 16}, seed=0)
    return a, data


def job_grid_parser(doc: str, out: Path, splits: int = 4) -> argparse.ArgumentParser:
    """The arguments of a benchmark that runs default jobs over tasks x data splits: --splits,
    --trials, --epochs, --workers, --smoke and --out."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--splits", type=int, default=splits)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=out)
    return ap


def run_jobs(fn: Callable[..., Any], jobs: list[tuple[Any, ...]], workers: int) -> list[Any]:
    """`fn(*job)` for each job, in `workers` processes when there are several of both (each
    job a search of its own: two at once use the two cores), in order."""
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            return list(pool.map(fn, *zip(*jobs, strict=True)))
    return [fn(*j) for j in jobs]
