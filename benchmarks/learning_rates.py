"""What `GET /v1/tasks/{id}/learning-rates` costs on a task with a long history: each family's
1000 most recent complete trials (`tuner.recommendations.LR_POINTS_PER_FAMILY`, what the API
answers) against every complete trial (what it answered before), in the same process on the
same database. Interleaved repeats; medians; ratios against every trial.

    .venv/bin/python -m benchmarks.learning_rates            # 40,000 trials, 2 families, SQLite
    .venv/bin/python -m benchmarks.learning_rates --url postgresql://postgres@127.0.0.1/lr_bench
    .venv/bin/python -m benchmarks.learning_rates --smoke

Timed: the store's read and the answer's assembly (`tuner.recommendations.learning_rates`) and
its JSON encoding, as the API serves it; the browser's drawing of the points is not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import interleaved, save

OUT = Path(__file__).parent / "results" / "learning_rates.json"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40_000, help="complete trials on the task")
    ap.add_argument("--url", default=None, help="an empty database (default: a new SQLite file)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    if a.smoke:
        a.trials, a.repeats = 3000, 2
    from sqlalchemy import insert

    from tuner.recommendations import LR_POINTS_PER_FAMILY, learning_rates
    from tuner.spec import JobSpec
    from tuner.store.auth import get_or_create_team
    from tuner.store.db import dispose_engines, session_factory
    from tuner.store.jobs import create_job
    from tuner.store.migrate import upgrade
    from tuner.store.models import TrialRow
    from tuner.tasks import inspect_task

    url = a.url or f"sqlite:///{tempfile.mkdtemp(prefix='lr-bench-')}/t.db"
    upgrade(url)
    spec = JobSpec.model_validate({"task": {"model": {"name": "mlp"},
                                            "dataset": {"name": "iris"}},
                                   "training": {"epochs": 3}, "budget": {"n_trials": 4}})
    with session_factory(url)() as s:
        team = get_or_create_team(s, "bench")
        job = create_job(s, team.id, spec, inspect_task(spec))[0]
        s.commit()
        s.execute(insert(TrialRow), [
            {"job_id": job.id, "number": n, "state": "complete", "optimizer": opt,
             "params": {f"{opt}.lr": 1e-4 * (1 + n % 997)}, "value": 0.5 + (n % 89) / 200}
            for n, opt in ((n, "adam" if n % 2 else "sgd") for n in range(a.trials))])
        s.commit()
        team_id, task_id = team.id, job.task_id
        sizes: dict[str, int] = {}

        def answer(per_family: int, name: str) -> float:
            t0 = time.perf_counter()
            body = json.dumps(learning_rates(s, team_id, task_id, per_family=per_family))
            sizes[name] = len(body)
            return time.perf_counter() - t0

        runs = interleaved({"every trial": lambda: answer(10**9, "every trial"),
                            "latest per family": lambda: answer(LR_POINTS_PER_FAMILY,
                                                                "latest per family")},
                           a.repeats)
    dispose_engines()
    base = statistics.median(runs["every trial"])
    base_size = sizes["every trial"]
    results: dict[str, Any] = {
        "database": url.split(":")[0], "trials": a.trials, "families": 2,
        "per_family": LR_POINTS_PER_FAMILY, "repeats": a.repeats,
        "cases": {k: {"median_s": statistics.median(v), "runs_s": v, "bytes": sizes[k],
                      "ratio_time": statistics.median(v) / base, "ratio_bytes": sizes[k] / base_size}
                  for k, v in runs.items()}}
    print(f"{a.trials} complete trials, 2 families, {results['database']}, {a.repeats} repeats "
          f"(medians)")
    print(f"{'answer':<18} {'seconds':>8} {'kB':>7} {'time vs every':>14} {'size vs every':>14}")
    for k, c in results["cases"].items():
        print(f"{k:<18} {c['median_s']:>8.3f} {c['bytes'] / 1e3:>7.0f} {c['ratio_time']:>14.3f} "
              f"{c['ratio_bytes']:>14.3f}")
    save(a.out, results)
    print(f"wrote {a.out}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
