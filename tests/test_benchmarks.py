"""Each benchmark script runs at a tiny size (the real runs are not tests)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import warm_start


def test_warm_start_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "warm.json"
    result = warm_start.main(["--smoke", "--out", str(out)])
    saved = json.loads(out.read_text())
    (task,) = saved["tasks"].values()
    assert set(task["ratio_warm_over_cold"]) == {"trials", "epochs"}
    assert task["per_seed"][0]["warm"]["trials"] >= 1
    assert result["tolerance"] == 0.005
