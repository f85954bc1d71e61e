"""What `GET /v1/jobs/{id}/figures` (the job page's charts, `tuner plot`) costs for a job of
thousands of trials: as served now (a summary of each trial's epochs in SQL, the steps of only
the 500 trials drawn, each family's best and the latest, and of those that moved the best so far;
the best so far where it changed) against as served before (every field of every step read;
every trial's curve; the best so far after every epoch), in the same process on the same
database. Interleaved repeats; medians; ratios against before.

    .venv/bin/python -m benchmarks.job_figures            # 5,000 trials x 100 epochs, SQLite
    .venv/bin/python -m benchmarks.job_figures --smoke

Timed: the store's read, the figures and their JSON encoding; the browser's drawing is not (it
draws every curve it is sent: 5,000 line series before, 500 now).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._common import bench_job, save, timed_answers

OUT = Path(__file__).parent / "results" / "job_figures.json"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    if a.smoke:
        a.trials, a.epochs, a.repeats = 600, 5, 2
    from sqlalchemy import insert, select

    from tuner.figures import figures_of, job_figures
    from tuner.store.db import dispose_engines, session_factory
    from tuner.store.migrate import upgrade
    from tuner.store.models import TrialRow, TrialStep
    from tuner.store.trials import step_summary, steps_of, trial_page

    url = f"sqlite:///{tempfile.mkdtemp(prefix='figures-bench-')}/t.db"
    upgrade(url)
    families = ("adam", "sgd", "rmsprop")
    with session_factory(url)() as s:
        job = bench_job(s)
        s.execute(insert(TrialRow), [
            {"job_id": job.id, "number": n, "state": "complete", "optimizer": families[n % 3],
             "params": {}, "value": 0.5 + (n % 97) / 200} for n in range(a.trials)])
        ids = list(s.scalars(select(TrialRow.id).where(TrialRow.job_id == job.id)))
        for start in range(0, len(ids), 500):
            s.execute(insert(TrialStep), [
                {"trial_id": i, "step": e, "value": 0.3 + 0.2 * e / a.epochs + (i % 97) / 400,
                 "best_value": 0.9, "train_loss": 1.0, "val_loss": 1.0, "lr": 1e-3,
                 "elapsed_s": float(e)}
                for i in ids[start:start + 500] for e in range(1, a.epochs + 1)])
        s.commit()

        def before() -> dict[str, Any]:
            rows = trial_page(s, job.id, offset=0, limit=1_000_000, with_steps=True)
            fig = job_figures(rows, "val_accuracy", "maximize", curves_limit=10**9)
            # the best so far after every epoch, as it was sent
            fig["best_so_far"] = [[k, fig["best_so_far"][-1][1]]
                                  for k in range(1, fig["epochs_consumed"] + 1)]
            return fig

        def now() -> dict[str, Any]:  # what the route does
            rows = trial_page(s, job.id, offset=0, limit=1_000_000, with_steps=False)
            return figures_of(rows, step_summary(s, job.id),
                              lambda numbers: steps_of(s, job.id, numbers),
                              "val_accuracy", "maximize")

        cases = timed_answers({"before": before, "now": now}, a.repeats, "before", "figures")
    dispose_engines()
    print(f"a job of {a.trials} trials x {a.epochs} epochs, SQLite, {a.repeats} repeats (medians)")
    results: dict[str, Any] = {"trials": a.trials, "epochs": a.epochs, "repeats": a.repeats,
                               "cases": cases}
    save(a.out, results)
    print(f"wrote {a.out}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
