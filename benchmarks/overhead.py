"""Orchestration overhead: the same objective and trial count, run (a) by plain Optuna in one
process (in-memory storage, n_jobs threads), (b) by plain Optuna worker processes on the same
PostgreSQL, (c) by the service end to end (HTTP submit -> dispatcher -> Ray workers ->
completed, PostgreSQL). Same run, same machine; ratios are what to read.

    .venv/bin/python -m benchmarks.overhead                  # 200 trials of ~1 s, parallelism 2
    .venv/bin/python -m benchmarks.overhead --smoke          # seconds

Needs PostgreSQL at TUNER_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/postgres);
each run creates and drops its own databases.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import socket
import statistics
import sys
import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy import create_engine, text

from benchmarks._common import save
from tuner.spec import JobSpec

PG = os.environ.get("TUNER_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
OUT = Path(__file__).parent / "results" / "overhead.json"


def spec_dict(trials: int, parallelism: int, epochs: int) -> dict[str, Any]:
    return {"task": {"model": {"name": "mlp", "params": {"hidden": [256, 256]}},
                     "dataset": {"name": "digits"}},
            "training": {"epochs": epochs, "batch_size": 16},
            "budget": {"n_trials": trials, "parallelism": parallelism},
            "search": {"sampler": "tpe", "pruner": "none", "defaults_sweep": False,
                       "confirm_top_k": 0},
            "resources": {"cpus_per_trial": 1}}


def new_db() -> str:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    eng = create_engine(PG, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return PG.rsplit("/", 1)[0] + "/" + name


def drop_db(url: str) -> None:
    eng = create_engine(PG, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    eng.dispose()


class CpuMeter:
    """CPU seconds per group of processes on the machine while a method runs (psutil, sampled
    every 0.5 s; a process is counted from the first sample that sees it): where the cores went.
    """

    GROUPS = ("trials", "this process", "ray daemons", "postgres", "other")

    def __init__(self) -> None:
        self.first: dict[int, tuple[str, float]] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _group(p: Any, me: int) -> str:
        name, cmd = p.info["name"] or "", " ".join(p.info["cmdline"] or [])
        if p.pid == me:
            return "this process"
        if "ray::trial_worker" in cmd or "ray::IDLE" in cmd or (
                "multiprocessing" in cmd and p.info["ppid"] == me):
            return "trials"  # Ray's worker processes; (b)'s spawned workers
        if name.startswith(("raylet", "gcs_server")) or "ray/" in cmd or "ray::" in cmd:
            return "ray daemons"
        if name.startswith("postgres"):
            return "postgres"
        return "other"

    def _sample(self) -> None:
        import psutil

        me = os.getpid()
        for p in psutil.process_iter(["name", "cmdline", "ppid", "cpu_times"]):
            t = p.info["cpu_times"]
            if t is None:
                continue
            cpu = t.user + t.system
            if p.pid not in self.first:
                self.first[p.pid] = (self._group(p, me), cpu)
            self.last[p.pid] = cpu

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()

    def __enter__(self) -> CpuMeter:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def by_group(self) -> dict[str, float]:
        out = dict.fromkeys(self.GROUPS, 0.0)
        for pid, (group, start) in self.first.items():
            out[group] += max(0.0, self.last.get(pid, start) - start)
        return out


def trial_stats(trials: list[optuna.trial.FrozenTrial]) -> dict[str, float]:
    """Mean trial duration, and the mean gap between one trial's end and the next trial's start
    on the same worker (what orchestration costs per trial)."""
    done = [t for t in trials if t.datetime_start and t.datetime_complete]
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in done]
    by_worker: dict[Any, list[tuple[datetime, datetime]]] = defaultdict(list)
    for t in done:
        by_worker[t.user_attrs.get("worker", {}).get("pid", "proc")].append(
            (t.datetime_start, t.datetime_complete))  # type: ignore[arg-type]
    gaps = []
    for spans in by_worker.values():
        spans.sort()
        gaps += [(b[0] - a[1]).total_seconds() for a, b in itertools.pairwise(spans)]
    first = min(t.datetime_start for t in done)  # type: ignore[type-var]
    last = max(t.datetime_complete for t in done)  # type: ignore[type-var]
    # Epochs trained per trial (reports), and trials stopped early: the methods must do the
    # same work for their times to be compared.
    epochs = [len(t.intermediate_values) for t in done]
    return {"trial_s": statistics.fmean(durations), "gap_s": statistics.fmean(gaps) if gaps
            else 0.0, "steady_s": (last - first).total_seconds(), "n": len(done),
            "first_start": first.timestamp(), "epochs_per_trial": statistics.fmean(epochs),
            "n_pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in done)}


# (a) ------------------------------------------------------------------------------------------

def tagged(obj: Any) -> Any:
    """The objective, tagging each trial with its worker (process and thread) like the
    service's workers do, so per-worker gaps can be measured for every method."""
    def run(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", {"pid": f"{os.getpid()}-{threading.get_ident()}"})
        value: float = obj(trial)
        return value

    return run


def run_inprocess(spec: JobSpec) -> dict[str, Any]:
    import torch

    from tuner.objective import Objective
    from tuner.search import make_pruner, make_sampler

    torch.set_num_threads(1)
    obj = Objective(spec)
    obj.data  # noqa: B018 - load once, outside the timing, as the other methods do
    # The spec's pruner (none) given explicitly: without it Optuna uses its MedianPruner, which
    # stopped ~3 in 4 of these trials after one epoch and made the baselines look 1.5x cheaper.
    study = optuna.create_study(direction="maximize",
                                sampler=make_sampler(spec.search.sampler, 0, True),
                                pruner=make_pruner(spec.search.pruner, spec.training.epochs,
                                                 spec.search.sweep_pruning))
    t0 = time.perf_counter()
    study.optimize(tagged(obj), n_trials=spec.budget.n_trials, n_jobs=spec.budget.parallelism)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, **trial_stats(study.trials)}


# (b) ------------------------------------------------------------------------------------------

def _pg_worker(url: str, name: str, spec_json: str, n: int, ready: Any) -> None:
    import torch

    from tuner.objective import Objective
    from tuner.search import make_pruner, make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    spec = JobSpec.model_validate_json(spec_json)
    obj = Objective(spec)
    obj.data  # noqa: B018
    storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
    study = optuna.load_study(study_name=name, storage=storage,
                              sampler=make_sampler(spec.search.sampler, None, True),
                              pruner=make_pruner(spec.search.pruner, spec.training.epochs,
                                                 spec.search.sweep_pruning))
    ready.wait()
    study.optimize(tagged(obj), n_trials=n)


def run_optuna_pg(spec: JobSpec) -> dict[str, Any]:
    url = new_db()
    try:
        storage = optuna.storages.RDBStorage(url)
        optuna.create_study(storage=storage, study_name="bench", direction="maximize")
        p = spec.budget.parallelism
        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        n = spec.budget.n_trials
        procs = [ctx.Process(target=_pg_worker, args=(url, "bench", spec.model_dump_json(),
                                                      n // p + (i < n % p), ready))
                 for i in range(p)]
        t_spawn = time.perf_counter()
        for pr in procs:
            pr.start()
        time.sleep(0.1)
        ready.set()
        for pr in procs:
            pr.join()
        wall = time.perf_counter() - t_spawn
        stats = trial_stats(optuna.load_study(study_name="bench", storage=storage).trials)
        storage.engine.dispose()
        return {"wall_s": wall, **stats}
    finally:
        drop_db(url)


# (c) ------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_service(spec: JobSpec) -> dict[str, Any]:
    import uvicorn

    from api.app import create_app
    from tuner.client import Client
    from tuner.config import Settings
    from tuner.store.auth import create_api_key, get_or_create_team
    from tuner.store.db import dispose_engines, session_factory
    from tuner.store.migrate import upgrade
    from workers.dispatcher import Dispatcher, DispatcherConfig, ensure_ray

    url = new_db()
    try:
        upgrade(url)
        with session_factory(url)() as s:
            key = create_api_key(s, get_or_create_team(s, "bench"))
            s.commit()
        t_ray = time.perf_counter()
        ensure_ray(None, spec.budget.parallelism)
        ray_start = time.perf_counter() - t_ray
        port = _free_port()
        # The shipped defaults (TUNER_POLL_S = 1 s for the dispatcher and the event stream).
        server = uvicorn.Server(uvicorn.Config(create_app(url, Settings(database_url=url)),
                                               host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        d = Dispatcher(DispatcherConfig.from_settings(url))
        threading.Thread(target=d.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        c = Client(f"http://127.0.0.1:{port}", key)
        t0 = time.perf_counter()
        t0_wall = time.time()
        job = c.submit(spec.model_dump(mode="json"))
        final = c.wait(job["id"])
        wall = time.perf_counter() - t0
        assert final["status"] == "completed", final
        storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
        stats = trial_stats(optuna.load_study(study_name=final["study_name"],
                                              storage=storage).trials)
        storage.engine.dispose()
        d.stop_event.set()
        server.should_exit = True
        time.sleep(1)
        dispose_engines()
        return {"wall_s": wall, "ray_start_s": ray_start,
                "submit_to_first_trial_s": stats["first_start"] - t0_wall, **stats}
    finally:
        drop_db(url)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4, help="4 epochs: trials of about 1 s")
    ap.add_argument("--repeats", type=int, default=1,
                    help="run (a), (b), (c) in turn this many times; medians are reported")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    if a.smoke:
        a.trials, a.epochs = 4, 1
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = JobSpec.model_validate(spec_dict(a.trials, a.parallelism, a.epochs))
    res: dict[str, Any] = {"trials": a.trials, "parallelism": a.parallelism, "epochs": a.epochs,
                           "repeats": a.repeats}
    runs: dict[str, list[dict[str, Any]]] = {"a_inprocess": [], "b_optuna_pg": [],
                                             "c_service": []}
    for _ in range(a.repeats):  # interleaved, so that drift in the machine's load hits all three
        for name, fn in (("a_inprocess", run_inprocess), ("b_optuna_pg", run_optuna_pg),
                         ("c_service", run_service)):
            with CpuMeter() as meter:
                runs[name].append(fn(spec))
            runs[name][-1]["cpu_s"] = meter.by_group()
            print(f"{name}: {runs[name][-1]['wall_s']:.1f} s", file=sys.stderr)
    for name, rs in runs.items():  # the run with the median steady-state time per method
        res[name] = sorted(rs, key=lambda r: r["steady_s"])[len(rs) // 2]
        res[name]["steady_s_all"] = [r["steady_s"] for r in rs]
    b_, c_ = res["b_optuna_pg"], res["c_service"]
    n = a.trials
    per = {k: v["steady_s"] / n for k, v in res.items() if isinstance(v, dict)}
    res["per_trial_s"] = per
    res["ratios"] = {"c_over_a": per["c_service"] / per["a_inprocess"],
                     "c_over_b": per["c_service"] / per["b_optuna_pg"],
                     "c_over_b_wall": c_["wall_s"] / b_["wall_s"]}
    print(f"{'method':<14} {'wall s':>8} {'s/trial':>8} {'trial s':>8} {'gap s':>7} "
          f"{'epochs/trial':>12} {'pruned':>6}")
    for k in ("a_inprocess", "b_optuna_pg", "c_service"):
        v = res[k]
        print(f"{k:<14} {v['wall_s']:>8.1f} {per[k]:>8.3f} {v['trial_s']:>8.3f} "
              f"{v['gap_s']:>7.3f} {v['epochs_per_trial']:>12.2f} {v['n_pruned']:>6}")
    work = {k: res[k]["epochs_per_trial"] for k in ("a_inprocess", "b_optuna_pg", "c_service")}
    if max(work.values()) > 1.02 * min(work.values()):  # the ratios would compare unlike work
        print(f"WARNING: the methods trained different epochs per trial: {work}", file=sys.stderr)
    print("\nCPU seconds per group of processes during each method (2 cores = "
          "2 CPU-s per second of wall time):")
    print(f"{'method':<14} " + " ".join(f"{g:>13}" for g in CpuMeter.GROUPS))
    for k in ("a_inprocess", "b_optuna_pg", "c_service"):
        print(f"{k:<14} " + " ".join(f"{res[k]['cpu_s'][g]:>13.1f}" for g in CpuMeter.GROUPS))
    print(f"(c)/(a) = {res['ratios']['c_over_a']:.3f}   (c)/(b) = {res['ratios']['c_over_b']:.3f}"
          f"   fixed start-up: Ray {c_['ray_start_s']:.1f} s, submit -> first trial "
          f"{c_['submit_to_first_trial_s']:.1f} s")
    save(a.out, res)
    return res


if __name__ == "__main__":
    main()
