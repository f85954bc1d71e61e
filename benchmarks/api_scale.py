"""API and store at scale: PostgreSQL seeded with 1,000,000 trial rows (3 steps each) across
500 tasks of two teams; the API (`tuner api`, one process) under concurrent load from this
process on loopback, bounded in count and time. p50/p95/p99 per endpoint, submit throughput,
and the plan of the recommendation's history query.

    .venv/bin/python -m benchmarks.api_scale              # 1M trials (~3 min to seed)
    .venv/bin/python -m benchmarks.api_scale --smoke      # 20k trials

Needs PostgreSQL at TUNER_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from benchmarks._common import save
from benchmarks.overhead import _free_port, drop_db, new_db
from tuner.space import FAMILIES, SCHEDULES

OUT = Path(__file__).parent / "results" / "api_scale.json"
SUBMIT = {"task": {"model": {"name": "mlp"}, "dataset": {"name": "digits"}},
          "training": {"epochs": 5}, "budget": {"n_trials": 10}}


def seed(url: str, tasks_per_team: int, jobs_per_task: int, trials_per_job: int) -> dict[str, Any]:
    """Teams a and b, their tasks, jobs, trials and steps, written with COPY."""
    import psycopg

    from tuner.store.auth import create_api_key, get_or_create_team
    from tuner.store.db import session_factory

    with session_factory(url)() as s:
        keys = {n: create_api_key(s, get_or_create_team(s, n)) for n in ("a", "b")}
        s.commit()
        team_ids = {n: get_or_create_team(s, n).id for n in ("a", "b")}
    rng = random.Random(0)
    families, schedules = list(FAMILIES), list(SCHEDULES)
    spec = json.dumps(SUBMIT)
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    jobs_by_team: dict[str, list[str]] = {"a": [], "b": []}
    tasks_by_team: dict[str, list[int]] = {"a": [], "b": []}
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        task_id = trial_id = 0
        with cur.copy("COPY tuner_tasks (id, team_id, fingerprint, model_name, model_params, "
                      "dataset_name, dataset_params, metric, direction, kind, n_params, depth, "
                      "input_shape, n_train, n_classes, batch_size, epochs, created_at) "
                      "FROM STDIN") as cp:
            for team in ("a", "b"):
                for i in range(tasks_per_team):
                    task_id += 1
                    tasks_by_team[team].append(task_id)
                    cp.write_row((task_id, team_ids[team], uuid.uuid4().hex[:16],
                                  rng.choice(["mlp", "cnn", "linear", "transformer"]), "{}",
                                  "classification", json.dumps({"variant": i}), "val_accuracy",
                                  "maximize", "classification", rng.randint(1_000, 10**7),
                                  rng.randint(1, 12), "[64]", rng.randint(100, 10**6),
                                  rng.randint(2, 100), 64, 10, now))
        job_rows, trial_rows, step_rows = [], [], []
        for team in ("a", "b"):
            for tid in tasks_by_team[team]:
                effect = {f: rng.gauss(0, 0.03) for f in families}
                for _ in range(jobs_per_task):
                    jid = uuid.uuid4().hex
                    jobs_by_team[team].append(jid)
                    job_rows.append((jid, team_ids[team], tid, spec, "completed",
                                     f"job-{jid}", now, now, now, now, trials_per_job,
                                     trials_per_job, trials_per_job, False, trials_per_job,
                                     0, 0, 0, 0, 0, 10, 64))
                    for n in range(trials_per_job):
                        trial_id += 1
                        fam = rng.choice(families)
                        lr = 10 ** rng.uniform(-5, 0)
                        r = rng.random()
                        state = "complete" if r < 0.7 else "pruned" if r < 0.95 else "diverged"
                        value = None if state == "diverged" else min(
                            1.0, max(0.0, 0.85 + effect[fam] - 0.05 * abs(math.log10(lr) + 2.5)
                                     + rng.gauss(0, 0.01)))
                        trial_rows.append((
                            trial_id, jid, n, fam, rng.choice(schedules),
                            json.dumps({f"{fam}.lr": lr}), state, value, 3, state, 3, 0.05,
                            8.0, "cpu", "", False, False, 0, uuid.uuid4().hex[:16],
                            now - timedelta(seconds=n)))
                        step_rows += [(trial_id, k, value, value, 0.5, 0.4, lr, 0.1 * k)
                                      for k in (1, 2, 3)]
        for copy, rows in (
                ("COPY tuner_jobs (id, team_id, task_id, spec, status, study_name, created_at, "
                 "started_at, finished_at, updated_at, n_trials, n_done, n_complete, "
                 "cancel_requested, trials_claimed, n_running, n_pruned, n_diverged, n_failed, "
                 "n_confirm, epochs, batch_size) FROM STDIN", job_rows),
                ("COPY tuner_trials (id, job_id, number, optimizer, schedule, params, state, "
                 "value, stop_step, stop_reason, epochs_run, seconds_per_epoch, "
                 "state_bytes_per_param, device, detail, defaults_sweep, warm_start, seed, "
                 "config_key, created_at) FROM STDIN", trial_rows),
                ("COPY tuner_trial_steps (trial_id, step, value, best_value, train_loss, "
                 "val_loss, lr, elapsed_s) FROM STDIN", step_rows)):
            with cur.copy(copy) as cp:
                for row in rows:
                    cp.write_row(row)
        for table in ("tuner_tasks", "tuner_trials", "tuner_trial_steps"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))")
        conn.commit()
        cur.execute("ANALYZE")
    return {"keys": keys, "jobs": jobs_by_team, "tasks": tasks_by_team,
            "n_trials": trial_id, "n_steps": len(step_rows), "seed_s": time.perf_counter() - t0}


async def load(base: str, key: str, make: Any, n: int, concurrency: int,
               max_s: float, warmup: int = 20) -> dict[str, Any]:
    """`n` requests (at most `max_s` seconds), `concurrency` at a time; latencies in ms."""
    lat: list[float] = []
    errors = 0
    deadline = math.inf
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"},
                                 timeout=30, limits=httpx.Limits(max_connections=concurrency)) as c:
        async def one() -> None:
            nonlocal errors
            async with sem:
                if time.perf_counter() > deadline:
                    return
                method, path, body = make()
                t = time.perf_counter()
                try:
                    r = await c.request(method, path, json=body)
                except httpx.TransportError:  # e.g. a connection the server closed
                    errors += 1
                    return
                lat.append((time.perf_counter() - t) * 1000)
                errors += r.status_code >= 400

        # Not counted; concurrent, so that every API process gets connections and warms up.
        await asyncio.gather(*(one() for _ in range(warmup)))
        lat.clear()
        errors = 0
        t0 = time.perf_counter()
        deadline = t0 + max_s
        await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - t0
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [lat[0]] * 99
    return {"n": len(lat), "errors": errors, "rps": len(lat) / wall, "p50_ms": q[49],
            "p95_ms": q[94], "p99_ms": q[98], "concurrency": concurrency}


COLD, CACHED = "GET /v1/recommendations (cold)", "GET /v1/recommendations (cached)"
TRIALS, SUBMITS = "GET /v1/jobs/{id}/trials", "POST /v1/jobs"
ENDPOINTS = (COLD, CACHED, TRIALS, SUBMITS)


def requests_of(name: str, tasks: list[int], jobs: list[str], trials_per_job: int,
                seed: int) -> Any:
    """The request maker of one endpoint: () -> (method, path, body)."""
    rng = random.Random(seed)
    if name == COLD:  # each request a task not asked about since its last trial: computed
        cold = iter(rng.sample(tasks, len(tasks)))
        return lambda: ("GET", f"/v1/recommendations?task={next(cold)}", None)
    if name == CACHED:  # the same tasks again, history unchanged: answered from the cache
        return lambda: ("GET", f"/v1/recommendations?task={rng.choice(tasks)}", None)
    if name == TRIALS:
        return lambda: ("GET", f"/v1/jobs/{rng.choice(jobs)}/trials?limit=50&offset="
                               f"{rng.randrange(0, max(1, trials_per_job - 50))}", None)
    return lambda: ("POST", "/v1/jobs", SUBMIT)


def _load_process(conn: Any, core: int | None, base: str, key: str, name: str,
                  tasks: list[int], jobs: list[str], trials_per_job: int, seed: int, n: int,
                  concurrency: int, max_s: float, warmup: int) -> None:
    """The load generator, in its own process pinned to `core` (what `taskset -c` does)."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    make = requests_of(name, tasks, jobs, trials_per_job, seed)
    t = time.process_time()
    r = asyncio.run(load(base, key, make, n, concurrency, max_s, warmup))
    r["loadgen_cpu_s"] = time.process_time() - t
    conn.send(r)


def _cpu(procs: list[Any]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except Exception:  # gone (a PostgreSQL backend that closed)
            pass
    return total


def measure(proc: _Api, key: str, name: str, tasks: list[int], jobs: list[str],
            trials_per_job: int, seed: int, n: int, concurrency: int, max_s: float,
            warmup: int, core: int | None) -> dict[str, Any]:
    """One endpoint's load from a pinned child process, with the CPU seconds of the API's
    processes, PostgreSQL's and the load generator's over the run (psutil)."""
    import multiprocessing as mp

    import psutil

    def groups() -> tuple[list[Any], list[Any]]:
        api = psutil.Process(proc.pid)
        pg = [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "")
              .startswith("postgres")]
        return [api, *api.children(recursive=True)], pg

    api_procs, pg_procs = groups()
    api0, pg0 = _cpu(api_procs), {p.pid: _cpu([p]) for p in pg_procs}
    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_load_process, args=(
        send, core, proc.base, key, name, tasks, jobs, trials_per_job, seed, n, concurrency,
        max_s, warmup))
    child.start()
    r: dict[str, Any] = recv.recv()
    child.join()
    api_after, pg_after = groups()
    r["api_cpu_s"] = _cpu(api_after) - api0
    # Backends opened during the run count from zero; those that closed are lost (few).
    r["db_cpu_s"] = sum(_cpu([p]) - pg0.get(p.pid, 0.0) for p in pg_after)
    served = max(r["n"], 1)
    r["cpu_ms_per_request"] = {g: r[f"{g}_cpu_s"] / served * 1000
                               for g in ("api", "db", "loadgen")}
    r["db_share_of_server_cpu"] = r["db_cpu_s"] / max(r["db_cpu_s"] + r["api_cpu_s"], 1e-9)
    return r


class _Api(subprocess.Popen[bytes]):
    base: str


def start_api(url: str, workers: int, cores: set[int] | None = None) -> _Api:
    """`tuner api --workers N` on a free port (on `cores`, when given), once it answers."""
    port = _free_port()
    env = {**os.environ, "TUNER_DATABASE_URL": url, "TUNER_DB_POOL_SIZE": "10"}
    proc = _Api([sys.executable, "-m", "cli", "api", "--port", str(port), "--workers",
                 str(workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None)
    proc.base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(proc.base + "/healthz").status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the API did not start")


def plans(url: str, task_id: int) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the history query, and in-process timing of the recommendation with
    the window query (each family's best) against reading every trial of the task."""
    from tuner.recommendations import recommend
    from tuner.store.db import session_factory
    from tuner.store.history import TOP_PER_FAMILY, history

    out: dict[str, Any] = {}
    with session_factory(url)() as s:
        for label, top in (("all_trials", None), ("top_per_family", TOP_PER_FAMILY)):
            t = time.perf_counter()
            for _ in range(5):
                rows = history(s, [task_id], top_per_family=top)
            out[f"history_{label}_ms"] = (time.perf_counter() - t) / 5 * 1000
            out[f"history_{label}_rows"] = len(rows)
        team = s.scalar(text("select team_id from tuner_tasks where id = :t"), {"t": task_id})
        t = time.perf_counter()
        for _ in range(5):
            recommend(s, team, task_id=task_id, cache=False)
        out["recommend_ms"] = (time.perf_counter() - t) / 5 * 1000
        recommend(s, team, task_id=task_id)
        t = time.perf_counter()
        for _ in range(20):
            recommend(s, team, task_id=task_id)
        out["recommend_cached_ms"] = (time.perf_counter() - t) / 20 * 1000
    eng = create_engine(url)
    with eng.connect() as c:
        q = ("EXPLAIN ANALYZE SELECT id FROM (SELECT t.id, t.config_key, row_number() OVER "
             "(PARTITION BY t.optimizer ORDER BY t.value DESC) rn FROM tuner_trials t JOIN "
             "tuner_jobs j ON t.job_id = j.id WHERE j.task_id = :t AND t.state = 'complete' "
             "AND t.value IS NOT NULL AND t.optimizer IS NOT NULL) s WHERE rn <= 100")
        out["plan"] = [r[0] for r in c.execute(text(q), {"t": task_id})]
    eng.dispose()
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks-per-team", type=int, default=250)
    ap.add_argument("--jobs-per-task", type=int, default=4)
    ap.add_argument("--trials-per-job", type=int, default=500)
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-seconds", type=float, default=60)
    ap.add_argument("--workers", type=lambda v: [int(x) for x in v.split(",")],
                    default=[1, 2], help="API process counts to measure, e.g. 1,2")
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="leave the load generator and the API unpinned")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the database")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    if a.smoke:
        a.tasks_per_team, a.jobs_per_task, a.trials_per_job, a.requests = 10, 2, 100, 40
    from tuner.store.migrate import upgrade

    url = new_db()
    try:
        upgrade(url)
        info = seed(url, a.tasks_per_team, a.jobs_per_task, a.trials_per_job)
        print(f"seeded {info['n_trials']} trials, {info['n_steps']} steps in "
              f"{info['seed_s']:.0f} s", file=sys.stderr)
        rng = random.Random(1)  # each endpoint's requests: a seed drawn from it
        key = info["keys"]["a"]
        tasks, jobs = info["tasks"]["a"], info["jobs"]["a"]
        res: dict[str, Any] = {"n_trials": info["n_trials"], "n_steps": info["n_steps"],
                               "seed_s": info["seed_s"], "by_workers": {}}
        cores = sorted(os.sched_getaffinity(0))
        # The load generator on the last core, the API on the others (PostgreSQL, a system
        # service, is not pinned); one core: nothing pinned.
        core = cores[-1] if a.pin and len(cores) > 1 else None
        api_cores = set(cores[:-1]) if core is not None else None
        res["pinning"] = {"loadgen_core": core, "api_cores": sorted(api_cores or cores),
                          "machine_cores": len(cores)}
        for workers in a.workers:
            with create_engine(url).begin() as c:  # every configuration starts cold
                c.execute(text("DELETE FROM tuner_recommendation_cache"))
            proc = start_api(url, workers, api_cores)
            try:
                out = res["by_workers"][str(workers)] = {}
                for name in ENDPOINTS:
                    # cold: each task once (warm-up included), so every answer is computed
                    warmup = min(20, len(tasks) // 4) if name == COLD else 20
                    n = min(a.requests, len(tasks) - warmup) if name == COLD else a.requests
                    out[name] = measure(proc, key, name, tasks, jobs, a.trials_per_job,
                                        rng.randrange(2**31), n, a.concurrency, a.max_seconds,
                                        warmup, core)
            finally:
                proc.terminate()
                proc.wait(10)
        res["queries"] = plans(url, tasks[0])
    finally:
        if not a.keep:
            drop_db(url)
    print(f"load generator on core {res['pinning']['loadgen_core']}, API on cores "
          f"{res['pinning']['api_cores']}")
    print(f"{'API processes':<14} {'endpoint':<34} {'n':>5} {'req/s':>7} {'p50 ms':>7} "
          f"{'p95 ms':>7} {'p99 ms':>7} {'errors':>6}  CPU ms/request: {'API':>5} {'DB':>5} "
          f"{'load':>5}  DB share")
    for workers, eps in res["by_workers"].items():
        for name, r in eps.items():
            c = r["cpu_ms_per_request"]
            print(f"{workers:<14} {name:<34} {r['n']:>5} {r['rps']:>7.0f} {r['p50_ms']:>7.1f} "
                  f"{r['p95_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['errors']:>6}  "
                  f"{'':>15} {c['api']:>5.1f} {c['db']:>5.1f} {c['loadgen']:>5.1f}  "
                  f"{r['db_share_of_server_cpu']:>7.0%}")
    qd = res["queries"]
    print(f"history query, one task: all trials {qd['history_all_trials_ms']:.1f} ms "
          f"({qd['history_all_trials_rows']} rows) vs best per family "
          f"{qd['history_top_per_family_ms']:.1f} ms ({qd['history_top_per_family_rows']} rows); "
          f"recommend in-process {qd['recommend_ms']:.1f} ms, from the cache "
          f"{qd['recommend_cached_ms']:.1f} ms")
    save(a.out, res)
    return res


if __name__ == "__main__":
    main()
