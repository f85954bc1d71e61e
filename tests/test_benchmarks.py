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


def test_search_efficiency_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import search_efficiency

    res = search_efficiency.main(["--smoke", "--out", str(tmp_path / "se.json")])
    (task,) = res["tasks"].values()
    assert set(task["methods"]) == {"random", "tpe", "ray_asha", "service"}
    for m in task["methods"].values():
        assert m["median"] >= 1 and 0 <= m["reached"] <= 1 and len(m["curves"]) == 1
    assert task["methods"]["random"]["ratio_vs_random"] in (1.0, None)


def test_overhead_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import overhead

    res = overhead.main(["--smoke", "--out", str(tmp_path / "oh.json")])
    for k in ("a_inprocess", "b_optuna_pg", "c_service"):
        assert res[k]["n"] == 4 and res[k]["wall_s"] > 0
    assert res["ratios"]["c_over_b"] > 0


def test_packing_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import packing

    res = packing.main(["--smoke", "--out", str(tmp_path / "p.json")])
    assert [r["k"] for r in res["rows"]] == [1, 2] and res["unit"] in ("GPU", "core")
    assert all(r["trials"] == 2 and r["trials_per_hour"] > 0 for r in res["rows"])
