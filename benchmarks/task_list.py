"""What `GET /v1/tasks` costs for a team with a long history: a page of the team's tasks (the
100 with the latest jobs) with trial counts read from the jobs' counters (what the API answers),
against every task with its trials counted row by row (what it answered before), and every task
from the counters (to tell the two changes apart), in the same process on the same database.
Interleaved repeats; medians; ratios against the old answer.

    .venv/bin/python -m benchmarks.task_list            # 200 tasks x 5 jobs x 1000 trials, SQLite
    .venv/bin/python -m benchmarks.task_list --url postgresql://postgres@127.0.0.1/tasks_bench
    .venv/bin/python -m benchmarks.task_list --smoke

Timed: the store's reads and the answer's JSON encoding, as the API serves it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import save, timed_answers

OUT = Path(__file__).parent / "results" / "task_list.json"
PAGE = 100  # the API's default page, what /ui/tasks asks for


def every_task_counting_trials(s: Any, team_id: int) -> list[dict[str, Any]]:
    """The answer before: every task of the team, its trials counted in the trials table."""
    from sqlalchemy import func, select

    from tuner.store.jobs import aware
    from tuner.store.models import Job, Task, TrialRow
    from tuner.store.queries import task_json

    jobs = (select(Job.task_id, func.count(Job.id).label("n_jobs"),
                   func.max(Job.created_at).label("latest"))
            .where(Job.team_id == team_id).group_by(Job.task_id).subquery())
    trials = (select(Job.task_id, func.count(TrialRow.id).label("n_trials"))
              .join(TrialRow, TrialRow.job_id == Job.id).where(Job.team_id == team_id)
              .group_by(Job.task_id).subquery())
    q = (select(Task, jobs.c.n_jobs, jobs.c.latest, trials.c.n_trials)
         .outerjoin(jobs, jobs.c.task_id == Task.id).outerjoin(trials, trials.c.task_id == Task.id)
         .where(Task.team_id == team_id).order_by(Task.id))
    return [task_json(t, n_jobs or 0, n_trials or 0, aware(latest))
            for t, n_jobs, latest, n_trials in s.execute(q).all()]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=5, help="jobs per task")
    ap.add_argument("--trials", type=int, default=1000, help="trials per job")
    ap.add_argument("--url", default=None, help="an empty database (default: a new SQLite file)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    if a.smoke:
        a.tasks, a.jobs, a.trials, a.repeats = 120, 2, 20, 2
    from sqlalchemy import insert

    from tuner.spec import JobSpec
    from tuner.store.auth import get_or_create_team
    from tuner.store.db import dispose_engines, session_factory
    from tuner.store.jobs import create_job
    from tuner.store.migrate import upgrade
    from tuner.store.models import TrialRow
    from tuner.store.queries import count_tasks, team_tasks
    from tuner.tasks import inspect_task

    url = a.url or f"sqlite:///{tempfile.mkdtemp(prefix='tasks-bench-')}/t.db"
    upgrade(url)
    t0 = time.perf_counter()
    with session_factory(url)() as s:
        team_id = get_or_create_team(s, "bench").id
        for k in range(a.tasks):  # a task per width of the hidden layer
            spec = JobSpec.model_validate({
                "task": {"model": {"name": "mlp", "params": {"hidden": [k + 1]}},
                         "dataset": {"name": "iris"}},
                "training": {"epochs": 3}, "budget": {"n_trials": 4}})
            features = inspect_task(spec)
            for _ in range(a.jobs):
                job = create_job(s, team_id, spec, features)[0]
                job.n_done = a.trials
                s.execute(insert(TrialRow), [
                    {"job_id": job.id, "number": n, "state": "complete", "optimizer": "adam",
                     "params": {"adam.lr": 1e-3}, "value": 0.5 + (n % 89) / 200}
                    for n in range(a.trials)])
            s.commit()
        print(f"filled in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

        def before() -> Any:
            data = every_task_counting_trials(s, team_id)
            return {"data": data, "count": len(data)}

        cases = timed_answers({
            "every task, trials counted": before,
            "every task, job counters": lambda: {
                "data": team_tasks(s, team_id), "count": count_tasks(s, team_id)},
            f"a page of {PAGE}, job counters": lambda: {
                "data": team_tasks(s, team_id, limit=PAGE), "count": count_tasks(s, team_id)},
        }, a.repeats, "every task, trials counted", "answer")
        same = {t["id"]: t["n_trials"] for t in before()["data"]} == {
            t["id"]: t["n_trials"] for t in team_tasks(s, team_id)}
    dispose_engines()
    database = url.split(":")[0]
    print(f"{a.tasks} tasks x {a.jobs} jobs x {a.trials} trials, {database}, {a.repeats} repeats "
          f"(medians); the counters' trial counts equal the rows': {same}")
    results: dict[str, Any] = {
        "database": database, "tasks": a.tasks, "jobs_per_task": a.jobs,
        "trials_per_job": a.trials, "page": PAGE, "repeats": a.repeats, "same_counts": same,
        "cases": cases}
    save(a.out, results)
    print(f"wrote {a.out}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
