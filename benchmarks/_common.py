"""What every benchmark script shares."""

from __future__ import annotations

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
