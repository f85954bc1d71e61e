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
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._common import bench_job, save, timed_answers

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
    from tuner.store.db import dispose_engines, session_factory
    from tuner.store.migrate import upgrade
    from tuner.store.models import TrialRow

    url = a.url or f"sqlite:///{tempfile.mkdtemp(prefix='lr-bench-')}/t.db"
    upgrade(url)
    with session_factory(url)() as s:
        job = bench_job(s)
        s.execute(insert(TrialRow), [
            {"job_id": job.id, "number": n, "state": "complete", "optimizer": opt,
             "params": {f"{opt}.lr": 1e-4 * (1 + n % 997)}, "value": 0.5 + (n % 89) / 200}
            for n, opt in ((n, "adam" if n % 2 else "sgd") for n in range(a.trials))])
        s.commit()
        team_id, task_id = job.team_id, job.task_id
        cases = timed_answers({
            "every trial": lambda: learning_rates(s, team_id, task_id, per_family=10**9),
            "latest per family": lambda: learning_rates(s, team_id, task_id,
                                                        per_family=LR_POINTS_PER_FAMILY)},
            a.repeats, "every trial", "answer")
    dispose_engines()
    database = url.split(":")[0]
    print(f"{a.trials} complete trials, 2 families, {database}, {a.repeats} repeats (medians)")
    results: dict[str, Any] = {
        "database": database, "trials": a.trials, "families": 2,
        "per_family": LR_POINTS_PER_FAMILY, "repeats": a.repeats,
        "cases": cases}
    save(a.out, results)
    print(f"wrote {a.out}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
