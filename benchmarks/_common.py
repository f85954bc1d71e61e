"""What every benchmark script shares."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def save(out: Path, results: dict[str, Any]) -> None:
    """Write a script's JSON result (the file docs/benchmarks.md quotes)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))


def interleaved(paths: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Each path's measurement `repeats` times, one round of every path per repeat, so that
    drifts of a shared machine hit every path alike."""
    runs: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(repeats):
        for name, measure in paths.items():
            runs[name].append(measure())
    return runs


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
