"""The dispatcher: claims queued jobs, creates their studies, runs trial workers on Ray, follows
progress, handles cancel / timeout / failure, and always ends a job in a final state."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache, partial
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.orm import Session

from tuner import mlflow_log
from tuner.attrs import ATTR_BEATS, ATTR_ENDED_BY, ATTR_RECORD, ATTR_WORKER, STUDY_SEEDS_USED
from tuner.confirm import STOP_NOTHING, confirm_note, looked_at
from tuner.corpus import SOURCE as CORPUS
from tuner.errors import TunerError
from tuner.metrics import JOBS_CLAIMED, TRIALS_STALLED, WORKERS_RUNNING, WORKERS_STARTED
from tuner.results import failing_alike
from tuner.search import (
    SweepPlan,
    confirm_round,
    confirmation_count,
    create_study,
    race_trials,
    sweep_plan,
    trial_notes,
)
from tuner.spec import TRAINING_FORMAT, JobSpec
from tuner.store.auth import team_name
from tuner.store.db import (
    first_line,
    in_transaction,
    session_factory,
    transaction,
    transient,
    with_retries,
)
from tuner.store.dispatchers import SEEN_EVERY_S, dispatcher_ended, dispatcher_seen
from tuner.store.jobs import (
    add_notes,
    aware,
    claim_job,
    finish_job,
    get_job,
    job_spec,
    reconcile_tickets,
    release_leases,
    renew_lease,
    request_stop,
    set_notes,
    set_training_format,
)
from tuner.store.models import FINAL_STATUSES, Job, utcnow
from tuner.store.recorder import (
    STOPPED_FOR_DATA,
    STOPPED_FOR_SAME_FAILURE,
    StaleTrialHandler,
    TrialRecorder,
    optuna_storage,
    with_heartbeat,
)
from tuner.store.trials import first_failure, longest_epoch_wait, refresh_counters
from tuner.trial import DATA_ERROR, WORKER_LOST, SameFailure
from workers.decisions import (
    CANCELLED,
    SAME_FAILURE,
    STALLED,
    UNSCHEDULABLE,
    Progress,
    Stopping,
    conclusion,
    next_step,
    on_job_row,
    orphaned,
)
from workers.trial_worker import WorkerConfig, provenance, remote_worker

log = logging.getLogger(__name__)
ORPHAN_MIN_AGE_S = 30.0
# A trial failed this recently with no record from its worker is recorded a tick later: the
# process whose heartbeat check failed it (a retried worker, another dispatcher) records it
# `worker_lost` right after (TrialRecorder.sync); the job's last sync records whatever is left.
RECORD_SETTLE_S = 10.0
# A job whose watch crashes the dispatcher this many times (not a database blip: those are
# retried) ends failed; before that it is handed back and claimed again.
MAX_JOB_CRASHES = 3
# The longest wait between two tries of a dispatcher whose database is down.
OUTAGE_WAIT_MAX_S = 60.0


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class DispatcherConfig:
    """Timings come from `tuner.config.Settings` (TUNER_LEASE_S, TUNER_POLL_S, ...)."""

    db_url: str
    lease_s: float
    poll_s: float
    heartbeat_interval: int
    grace_period: int
    # After a timeout, running trials get this long to finish before their workers are killed.
    stop_grace_s: float
    # How often a trial's batch heartbeat is written (TUNER_PROGRESS_EVERY_S; workers use it).
    progress_every_s: float
    ray_address: str | None = None
    num_cpus: int | None = None
    owner: str = field(default_factory=_owner)
    mlflow_uri: str | None = None  # log each trial to MLflow (TUNER_MLFLOW_TRACKING_URI)
    # Resources the cluster lacks now: wait this long for a worker to start (an autoscaler adding
    # nodes), instead of failing the job at once (TUNER_RESOURCES_WAIT_S).
    resources_wait_s: float | None = None
    # The dispatcher's clock (aware UTC): leases, the job's deadline and the stop grace are read
    # from it, so tests move time instead of sleeping.
    clock: Callable[[], datetime] = utcnow

    @classmethod
    def from_settings(cls, db_url: str | None = None, **overrides: Any) -> DispatcherConfig:
        from tuner.config import get_settings

        st = get_settings()
        values: dict[str, Any] = dict(
            db_url=db_url or st.database_url, lease_s=st.lease_s, poll_s=st.poll_s,
            heartbeat_interval=st.heartbeat_interval, grace_period=st.grace_period,
            stop_grace_s=st.stop_grace_s, progress_every_s=st.progress_every_s,
            num_cpus=st.ray_num_cpus, resources_wait_s=st.resources_wait_s,
            mlflow_uri=st.mlflow_tracking_uri)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join RAY_ADDRESS (a cluster) when set, else start a local Ray."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _require_reachable(address)
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


class RayDown(TunerError):
    """The Ray this dispatcher runs trials on cannot run them now: not the job's fault."""


def local_ray_node() -> Any:
    """The Ray node this process started itself (a local Ray: `ensure_ray` without an
    address), or None (joined a cluster, or none). Ray's own private handle on it (stable since
    Ray 1.x); were it renamed, only the cluster check of `ray_problem` would be left."""
    from ray._private import worker as ray_worker

    node = getattr(ray_worker, "_global_node", None)
    return node if getattr(node, "all_processes", None) and \
        hasattr(node, "dead_processes") else None


def ray_problem() -> str | None:
    """Why Ray cannot run trials now, or None: a process of the local Ray this process started
    has ended (its raylet killed: by the OOM killer, say), or the cluster has no live node, or
    does not answer. (A job claimed then failed at once, blaming its spec: "1.0 CPUs per trial
    but the Ray cluster has 0", and every queued job after it the same.)"""
    import ray

    node = local_ray_node()
    dead = sorted({name for name, _ in node.dead_processes()}) if node is not None else []
    if dead:
        return f"the local Ray's {', '.join(dead)} process ended"
    try:
        alive = any(n.get("Alive") for n in ray.nodes())  # type: ignore[no-untyped-call]
    except Exception as exc:
        return f"the Ray cluster does not answer ({type(exc).__name__}: {first_line(exc)})"
    return None if alive else "the Ray cluster has no live node"


class LocalRayLost(RayDown):
    """A process of the local Ray this process started has ended. Ray cannot be started again
    in this process: `ray.shutdown()` of a driver whose raylet is dead may end the process
    outright (Ray exits it when the driver's goodbye meets the dead raylet: "Exiting because
    the Raylet IPC connection failed and the local Raylet is dead"), as it did to one `tuner
    serve` in four on 2026-12-07. The command starts itself again instead
    (`cli.servers.start_again`)."""


class RayUnreachable(TunerError):
    """The Ray cluster named by RAY_ADDRESS (or --ray-address) does not answer."""


def _require_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A `host:port` or `ray://host:port` address that refuses or does not answer a connection
    within `timeout_s` raises `RayUnreachable` (Ray itself would retry for minutes, logging
    its own warnings); `auto` and other forms are left to Ray."""
    import socket

    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayUnreachable(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or type(exc).__name__}): "
            "is RAY_ADDRESS (or --ray-address) right, and its head node running?") from None


def _not_as_made(job: Job, spec: JobSpec, team: str) -> str | None:
    """Why the job cannot run as its task was made: the team's file or folder (or `hf:` model
    folder) was rewritten since the job was submitted, its plugins' code here is not the code
    it was submitted with, or its trials began under another release's training code (each
    worker checks again as it loads them)."""
    try:
        provenance(job).check(spec.task, team)
    except TunerError as exc:
        return str(exc)
    return None


@cache
def _trial_worker() -> Any:
    return remote_worker()


def _task_of(t: FrozenTrial) -> str | None:
    """The Ray task id of the worker running trial `t` (None until the worker marks it; "" when
    a worker marked it without saying its task)."""
    if ATTR_WORKER not in t.user_attrs:
        return None
    task = (t.user_attrs.get(ATTR_WORKER) or {}).get("task")
    return str(task) if task else ""


def _progress_count(t: FrozenTrial) -> int:
    """How far running trial `t` has got: its epochs reported and its batch heartbeats (any
    increase is progress for the stall check)."""
    return len(t.intermediate_values) + int(t.user_attrs.get(ATTR_BEATS) or 0)


def _data_error(t: FrozenTrial) -> bool:
    """Did trial `t` fail because it could not read the task's data (its worker's record)?"""
    return t.state == TrialState.FAIL and \
        (t.user_attrs.get(ATTR_RECORD) or {}).get("stop_reason") == DATA_ERROR


def _hardware_of(t: FrozenTrial) -> str:
    """What the worker running trial `t` runs on (tuner.training.hardware_name; "" from a
    worker of an earlier release, which did not say)."""
    return str((t.user_attrs.get(ATTR_WORKER) or {}).get("hardware") or "")


@dataclass
class _Watch:
    """One job as its dispatcher watches it: the study, the recorder and the live workers."""

    job: Job
    spec: JobSpec
    study: optuna.Study
    storage: optuna.storages.RDBStorage
    recorder: TrialRecorder
    deadline: datetime | None
    remote: Any  # the Ray remote function with the job's resources
    wcfg: WorkerConfig
    workers: list[Any] = field(default_factory=list)
    # The cluster lacks the job's resources (why, since when, and the tickets taken then): until
    # a worker takes a ticket, within DispatcherConfig.resources_wait_s.
    waiting: tuple[str, datetime, int] | None = None

    def kill_workers(self) -> None:
        """Their trials end failed (or are retried when their heartbeat goes stale). Only the
        workers still running: force-cancelling a task that has just finished can trip Ray's
        task manager (`Tried to complete task that was not pending`)."""
        import ray

        if not self.workers:
            return
        _, pending = ray.wait(self.workers, num_returns=len(self.workers), timeout=0)
        for ref in pending:
            ray.cancel(ref, force=True)


class Dispatcher:
    def __init__(self, config: DispatcherConfig) -> None:
        from tuner.store.db import normalize_url

        config.db_url = normalize_url(config.db_url)  # workers open the same database
        self.config = config
        self.sessions = session_factory(config.db_url)
        self.stop_event = threading.Event()
        self.jobs_run: list[str] = []
        self.crashes: dict[str, int] = {}
        self._seen_next = 0.0  # when `_seen` next writes (monotonic)
        self._ray_down: str | None = None  # why Ray cannot run trials, while it cannot

    # main loop ------------------------------------------------------------------------------
    def run(self, *, once: bool = False) -> list[str]:
        """Claim and run jobs until stopped; `once`: until no job is left to claim."""
        from tuner.store.migrate import require_migrated

        with_retries(lambda: require_migrated(self.config.db_url), what="check the schema")
        self._seen(now=True)
        try:
            ensure_ray(self.config.ray_address, self.config.num_cpus)
            self._loop(once)
        except Exception as exc:
            self._ended(f"{type(exc).__name__}: {first_line(exc)}")
            raise
        except BaseException:  # Ctrl-C, or the process exiting
            self._ended(None)
            raise
        self._ended(None)
        return self.jobs_run

    def _loop(self, once: bool) -> None:
        outage = 0  # claims in a row that met the database (or Ray) down, past their retries
        while not self.stop_event.is_set():
            if (problem := self._ray_ready()) is not None:
                # No job is claimed that Ray cannot run (each failed at once, blamed on its
                # spec); the queue waits, and says why (`tuner.store.dispatchers`).
                outage += 1
                self._wait_out(outage, RayDown(problem))
                continue
            try:
                self._seen()
                job = self._claim()
            except Exception as exc:
                if not transient(exc):
                    raise
                outage += 1
                self._wait_out(outage, exc)
                continue
            outage = 0
            if job is None:
                if once:
                    break
                self.stop_event.wait(self.config.poll_s)
                continue
            JOBS_CLAIMED.inc()
            if job.id not in self.jobs_run:
                self.jobs_run.append(job.id)
            try:
                self.run_job(job)  # disposes the job's Optuna storage when it returns
            except Exception as exc:  # never leave a job running without an owner
                if transient(exc) or isinstance(exc, RayDown):
                    # The database past its retries, or Ray gone: not the job's fault, never
                    # counted against it. Hand it back (or, the database still down, claim it
                    # again once it is back: a job leased to us is ours to claim) and wait.
                    log.warning("job %s: %s under its watch (%s); handing it back", job.id,
                                "Ray failed" if isinstance(exc, RayDown) else
                                "the database failed", first_line(exc))
                    try:
                        self._release(job.id)
                    except Exception as again:
                        if not transient(again):
                            raise
                    outage += 1
                    self._wait_out(outage, exc)
                    continue
                n = self.crashes[job.id] = self.crashes.get(job.id, 0) + 1
                log.exception("job %s crashed the dispatcher loop (%d of %d)", job.id, n,
                              MAX_JOB_CRASHES)
                if n >= MAX_JOB_CRASHES:
                    self._finish(job.id, "failed",
                                 f"dispatcher error: {type(exc).__name__}: {exc}")
                else:  # hand it back (its workers were killed): claimed again, resumed
                    self._release(job.id)
        if self.stop_event.is_set():
            try:
                in_transaction(self.sessions, lambda s: release_leases(s, self.config.owner),
                               what="hand the leases back")
            except Exception as exc:  # the database down: the leases run out on their own
                if not transient(exc):
                    raise
                log.warning("could not hand the jobs back (%s); their leases run out in %.0f s",
                            first_line(exc), self.config.lease_s)

    def _seen(self, *, now: bool = False) -> None:
        """Say that this dispatcher runs (`tuner.store.dispatchers`: what a queued job's
        submitter is told), at most every `SEEN_EVERY_S` unless `now`. Never raises and never
        retries: a dispatcher that cannot say so goes on with its work (the database down is
        met, and waited out, by what it does next)."""
        if not now and time.monotonic() < self._seen_next:
            return
        self._seen_next = time.monotonic() + SEEN_EVERY_S
        try:
            with transaction(self.sessions) as s:
                dispatcher_seen(s, self.config.owner, self.config.clock(), self._ray_down)
        except Exception as exc:
            log.debug("could not say this dispatcher runs: %s", first_line(exc))

    def _ended(self, error: str | None) -> None:
        """Say that this dispatcher has stopped, or crashed on `error` (once; never raises)."""
        try:
            with transaction(self.sessions) as s:
                dispatcher_ended(s, self.config.owner, error, self.config.clock())
        except Exception as exc:
            log.warning("could not say this dispatcher %s: %s",
                        "crashed" if error else "stopped", first_line(exc))

    def _wait_out(self, outage: int, exc: BaseException) -> None:
        """The database is down past `with_retries`' attempts, or Ray cannot run trials
        (`RayDown`), the `outage`-th time in a row: wait, backing off to a minute, and go on.
        (The loop ended there: a `tuner dispatcher` exited, and `tuner serve`'s dispatcher
        thread died while its API went on taking jobs that nothing would run.)"""
        wait = min(self.config.poll_s * 2 ** outage, OUTAGE_WAIT_MAX_S)
        log.warning("%s (%s); trying again in %.0f s",
                    "Ray cannot run trials" if isinstance(exc, RayDown) else
                    "the database cannot be reached", first_line(exc), wait)
        self.stop_event.wait(wait)

    def _ray_ready(self) -> str | None:
        """None when Ray can run trials; else why not (a cluster with no live node: waited
        out). A local Ray this process started, one of whose processes ended (its raylet
        killed), raises `LocalRayLost` once the job it ran has been handed back (`_loop`): the
        command starts itself again, with a new Ray, and the job resumes."""
        problem = ray_problem()
        if problem is not None and local_ray_node() is not None:
            raise LocalRayLost(problem)
        if problem != self._ray_down:
            if problem is None:
                log.warning("Ray can run trials again")
            self._ray_down = problem
            self._seen(now=True)  # the queue's waiting jobs say why, or no longer
        return problem

    def _claim(self) -> Job | None:
        cfg = self.config
        return in_transaction(
            self.sessions, lambda s: claim_job(s, cfg.owner, cfg.lease_s, now=cfg.clock()),
            what="claim a job")

    # one job --------------------------------------------------------------------------------
    def run_job(self, job: Job) -> None:
        team = in_transaction(self.sessions, lambda s: team_name(s, job.team_id),
                              what="read the job's team")
        mlflow_target = mlflow_log.target_for(self.config.mlflow_uri, job.id, job.study_name,
                                              job.task.metric, team)
        mlflow_log.prepare(mlflow_target)
        recorder = TrialRecorder(self.config.db_url, job.id, mlflow_log.hook(mlflow_target))
        # It reads Optuna's schema version: a blip is waited out, not a crash of the job's
        # watch (three of which fail the job).
        storage = with_retries(lambda: optuna_storage(
            self.config.db_url, heartbeat_interval=self.config.heartbeat_interval,
            grace_period=self.config.grace_period,
            stale_trial_callback=StaleTrialHandler(recorder)), what="open Optuna's storage")
        try:
            self._run_job(job, team, recorder, storage)
        finally:
            WORKERS_RUNNING.set(0)  # one job at a time: its workers are done or killed
            storage.engine.dispose()

    def _run_job(self, job: Job, team: str, recorder: TrialRecorder,
                 storage: optuna.storages.RDBStorage) -> None:
        """Watch one job until it ends or we stop: each tick reads the job row and the study,
        asks `workers.decisions` what to do, and carries it out here."""
        cfg = self.config
        spec = job_spec(job)
        if job.training_format != TRAINING_FORMAT and self._new(job):
            # Queued under another release: it runs this release's training code, and says so.
            in_transaction(self.sessions, lambda s: set_training_format(s, job.id,
                                                                        TRAINING_FORMAT),
                           what="record the job's training format")
            job.training_format = TRAINING_FORMAT
        rec = self._ranking(job, spec)
        seeds = self._warm_start(job, spec, rec)
        plan = self._sweep(job, spec, rec, seeds)
        about = {"job_id": job.id, "team": team, "model": job.task.model_name,
                 "dataset": job.task.dataset_name, "metric": job.task.metric,
                 "direction": job.task.direction, STUDY_SEEDS_USED: self._seeds_used(job)}
        study = with_retries(lambda: create_study(spec, job.task.direction, storage,
                                                  job.study_name, load_if_exists=True,
                                                  seed_configs=seeds, sweep=plan,
                                                  user_attrs=about),
                             what="open the study")
        recorder.sync(study)  # resuming: trials finished while no dispatcher was watching
        short = self._infeasible(spec.resources.cpus_per_trial, spec.resources.gpus_per_trial)
        problem = _not_as_made(job, spec, team) or (short if cfg.resources_wait_s is None
                                                     else None)
        if problem:
            self._finish(job.id, "failed", problem + (
                "; on a cluster whose autoscaler adds such nodes, set TUNER_RESOURCES_WAIT_S"
                if problem == short else ""))
            return

        started = aware(job.started_at) or cfg.clock()
        deadline = started + timedelta(seconds=spec.budget.timeout_s) if spec.budget.timeout_s \
            else None
        wcfg = WorkerConfig(cfg.db_url, job.id, cfg.heartbeat_interval, cfg.grace_period,
                            spec.resources.cpus_per_trial, spec.resources.gpus_per_trial,
                            owner=cfg.owner, mlflow_uri=cfg.mlflow_uri,
                            progress_every_s=cfg.progress_every_s)
        w = _Watch(job, spec, study, storage, recorder, deadline,
                   _trial_worker().options(num_cpus=spec.resources.cpus_per_trial,
                                           num_gpus=spec.resources.gpus_per_trial), wcfg)
        if short:
            log.warning("job %s: %s; waiting up to %.0f s for the cluster to add it", job.id,
                        short, cfg.resources_wait_s)
            w.waiting = (short, cfg.clock(), self._job(job.id).trials_claimed)
        try:
            self._watch(w)
        except BaseException:
            w.kill_workers()  # never leave workers running for a job nobody watches
            raise

    def _watch(self, w: _Watch) -> None:
        import ray

        cfg, job, spec, study, workers = self.config, w.job, w.spec, w.study, w.workers
        worker_errors: list[str] = []
        stopping = Stopping()
        alike: SameFailure | None = None  # the failure the job's trials shared (SAME_FAILURE)
        progress = self._progress(job)
        last_running = -1
        self._launch(w)
        while True:
            if (problem := ray_problem()) is not None:  # its workers are gone with it
                raise RayDown(problem)
            lease_held = self._renew(job.id)
            self._seen()
            current = self._job(job.id) if lease_held else None
            d = on_job_row(stopping, lease_held=lease_held,
                           final=current is not None and current.status in FINAL_STATUSES,
                           cancel_requested=current is not None and current.cancel_requested,
                           now=cfg.clock(), deadline=w.deadline,
                           stop_grace=timedelta(seconds=cfg.stop_grace_s))
            stopping = d.stopping
            if d.kill_workers:
                w.kill_workers()
            if w.waiting is not None and current is not None and stopping.reason is None:
                if current.trials_claimed > w.waiting[2]:
                    w.waiting = None  # a worker started: the cluster has the resources now
                elif cfg.clock() - w.waiting[1] > timedelta(seconds=cfg.resources_wait_s or 0):
                    stopping = Stopping(UNSCHEDULABLE, cfg.clock())
                    w.kill_workers()
            if d.leave:
                log.warning("job %s: %s; leaving it", job.id, d.leave)
                return
            if d.request_stop:
                in_transaction(self.sessions, lambda s: request_stop(s, job.id),
                               what="ask the workers to stop")

            with_retries(lambda: optuna.storages.fail_stale_trials(study),
                         what="fail stale trials")
            # One read of the study per tick (Optuna's cached storage fetches the unfinished
            # and new trials each time it is asked); what changes below shows up next tick.
            trials = with_retries(lambda: study.get_trials(deepcopy=False), what="read the study")
            in_flight = [t for t in trials if t.state == TrialState.RUNNING]
            if stopping.reason is None and any(_data_error(t) for t in trials):
                # Every trial reads the same files: the others would fail the same way.
                log.warning("job %s: a trial could not read the task's data; stopping", job.id)
                stopping = Stopping(DATA_ERROR, cfg.clock())
                w.kill_workers()
            if stopping.reason is None and (alike := failing_alike(trials)) is not None:
                log.warning("job %s: %s", job.id, alike.message())
                stopping = Stopping(SAME_FAILURE, cfg.clock())
                w.kill_workers()
            live = {ref.task_id().hex() for ref in workers}
            with_retries(partial(self._fail_orphaned, study, w.storage, w.recorder, in_flight,
                                 live), what="fail orphaned trials")
            progress.observe({task: (t.number, _progress_count(t), _hardware_of(t))
                              for t in in_flight if (task := _task_of(t))},
                             live, cfg.clock())
            stalled = progress.stalled(cfg.clock(), spec.budget.stall_s) \
                if stopping.reason is None else {}
            if stalled:
                with_retries(partial(self._stop_stalled, w, in_flight, stalled, progress),
                             what="stop stalled trials")
                self._launch(w)  # in their place (their tickets came back)
            w.recorder.sync(study, trials, settle_s=RECORD_SETTLE_S)
            if len(in_flight) != last_running:  # workers keep the other counters current
                last_running = len(in_flight)
                self._update_running(job.id, last_running)

            if workers:
                done, _ = ray.wait(workers, num_returns=len(workers), timeout=0)
                for ref in done:
                    workers.remove(ref)
                    try:
                        ray.get(ref)
                    except Exception as exc:  # worker crashed beyond Ray's retries, or cancelled
                        if stopping.reason is None:
                            log.warning("job %s: a trial worker failed: %s", job.id, exc)
                            worker_errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
                WORKERS_RUNNING.set(len(workers))
            step = next_step(stopping, workers=len(workers), running=len(in_flight),
                             worker_errors=len(worker_errors))
            if step == "end_cancelled":
                with_retries(partial(self._fail_running, study, w.recorder, CANCELLED,
                                     {DATA_ERROR: STOPPED_FOR_DATA,
                                      SAME_FAILURE: STOPPED_FOR_SAME_FAILURE}.get(
                                          stopping.reason or "")),
                             what="fail the cancelled trials")
                break
            if step == "refill":
                if self._budget_left(job.id) or with_retries(
                        lambda: self._confirm(job.id, spec, study), what="confirmation round"):
                    self._launch(w)  # budget left (or reconciled), or the confirmation runs
                else:
                    break
            elif step == "conclude":
                break
            self.stop_event.wait(cfg.poll_s)
            if self.stop_event.is_set():
                self._drain(w)
                return

        w.recorder.sync(study)
        # what its trials showed, beside its notes
        if late := with_retries(lambda: trial_notes(spec, study), what="read the study"):
            in_transaction(self.sessions, lambda s: add_notes(s, job.id, late),
                           what="add to the job's notes")
        self._conclude(job.id, stopping.reason, worker_errors,
                       (w.waiting[0], cfg.resources_wait_s or 0) if w.waiting else None, alike)

    def _drain(self, w: _Watch) -> None:
        """Shutting down (SIGTERM): hand the job back at once, so another dispatcher (or our
        restart) resumes it without waiting for the lease, and our workers take no new ticket;
        give the trials in flight `stop_grace_s` to finish and be recorded; kill the rest (their
        trials go stale and are retried by the next owner)."""
        import ray

        self._release(w.job.id)
        if w.workers:
            log.info("job %s: handed back; %d trial worker(s) get %.0f s to finish", w.job.id,
                     len(w.workers), self.config.stop_grace_s)
            ray.wait(w.workers, num_returns=len(w.workers), timeout=self.config.stop_grace_s)
        w.kill_workers()  # those still running after the grace
        w.recorder.sync(w.study)

    def _launch(self, w: _Watch) -> None:
        """Start workers up to the job's parallelism and its tickets left."""
        j = self._job(w.job.id)
        left = j.n_trials + j.n_confirm - j.trials_claimed
        for _ in range(max(0, min(w.spec.budget.parallelism - len(w.workers), left))):
            w.workers.append(w.remote.remote(w.wcfg))
            WORKERS_STARTED.inc()
        WORKERS_RUNNING.set(len(w.workers))

    # helpers --------------------------------------------------------------------------------
    @staticmethod
    def _new(job: Job) -> bool:
        return not (job.trials_claimed or job.n_done)

    def _progress(self, job: Job) -> Progress:
        """The stall check's start: by hardware, the longest wait for progress the task's
        trials recorded at this job's pace; none when it cannot be read (the limit is then a day
        until the job's first epoch, as for a new task: never a reason to fail the job)."""
        try:
            waited = in_transaction(self.sessions, lambda s: longest_epoch_wait(s, job),
                                    what="read the task's epoch waits")
        except Exception as exc:
            log.warning("job %s: the task's epoch waits not read (%s: %s)", job.id,
                        type(exc).__name__, exc)
            waited = {}
        return Progress(history={h: (timedelta(seconds=w), n) for h, (w, n) in waited.items()})

    def _seeds_used(self, job: Job) -> dict[str, list[int]]:
        """Per configuration, the seeds the task's other jobs ran it with at this job's budget:
        the trials of a new study move past them (tuner.objective.fresh_seed). Read for a new
        study only; {} when the history cannot be read (repeating a run wastes it, it does not
        make it wrong)."""
        if not self._new(job) or job.epochs is None:
            return {}
        from tuner.store.history import Budget, seeds_used

        budget = Budget.of(job.epochs, job.batch_size, job.early_stopping_patience, job.precision,
                           job.training_seed, job.training_format)
        try:
            return in_transaction(self.sessions,
                                  lambda s: seeds_used(s, job.task_id, budget, exclude_job=job.id),
                                  what="read the seeds the task's history used")
        except Exception as exc:
            log.warning("job %s: seeds of earlier jobs not read (%s: %s)", job.id,
                        type(exc).__name__, exc)
            return {}

    def _ranking(self, job: Job, spec: JobSpec) -> dict[str, Any] | None:
        """The team's recommendation for the task, read once for the warm start and the order
        of a new job's sweep; None when neither needs it, or when only the sweep does and the
        history cannot be read (the order is an optimisation, never a reason to fail a job)."""
        warm = spec.search.warm_start != "none"
        if not warm and not (self._new(job) and spec.search.defaults_sweep):
            return None
        from tuner.recommendations import recommend

        try:
            # At the job's own budget: configurations tuned for other epochs, batch size or
            # early stopping come as a transfer, their learning rate moved to this batch size.
            return in_transaction(self.sessions, lambda s: recommend(
                s, job.team_id, task_id=job.task_id, epochs=job.epochs, batch_size=job.batch_size,
                early_stopping_patience=(job.early_stopping_patience or 0)
                if job.epochs is not None else None,
                precision=job.precision if job.epochs is not None else None,
                training_seed=job.training_seed if job.epochs is not None else None,
                training_format=job.training_format if job.epochs is not None else None),
                what="read the team's ranking for the task")
        except Exception as exc:
            if warm:
                raise
            log.warning("job %s: sweep in the corpus's order (%s: %s)", job.id,
                        type(exc).__name__, exc)
            return None

    def _warm_start(self, job: Job, spec: JobSpec,
                    rec: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Best known configurations of this task (or similar ones) for a new study."""
        if spec.search.warm_start == "none" or rec is None:
            return []
        from tuner.recommendations import warm_start_configs
        from tuner.sampling import SearchSpace

        space = SearchSpace(spec.space)
        configs = warm_start_configs(rec, spec.search.warm_start, space.families)
        seeds = [p for c in configs if (p := space.optuna_params(c)) is not None]
        log.info("job %s: warm start (%s) with %d configurations", job.id,
                 spec.search.warm_start, len(seeds))
        return seeds

    def _sweep(self, job: Job, spec: JobSpec, rec: dict[str, Any] | None,
               seeds: list[dict[str, Any]]) -> SweepPlan | None:
        """A new job's defaults sweep, the families the team's history ranks best (this task, or
        similar tasks and the reference corpus) first (`rec`: `_ranking`), else the corpus's
        order; its notes replace the submit's, which said the order was not settled yet. None
        (the plan made when the study was) for a job already started or without a sweep."""
        if not (self._new(job) and spec.search.defaults_sweep):
            return None
        if rec is None or rec["method"] == "prior" or not rec["ranking"]:
            plan = sweep_plan(spec, seeds=seeds)
        else:
            own = {t["id"] for t in rec.get("tasks") or []}
            near = {n.get("task_id") for n in rec.get("similar_tasks") or []}
            if rec["method"] == "direct":
                source = "this task's ranking in your team's history"
            elif rec.get("from_splits"):
                source = (f"this task's ranking on its other data splits at this budget "
                          f"(training.seed {', '.join(map(str, rec['from_splits']))}) in your "
                          f"team's history")
            elif near and near <= own:
                source = "this task's ranking at its other training budgets in your team's " \
                         "history"
            else:
                source = f"the ranking transferred from similar tasks ({rec['source']})"
            order = [r["optimizer"] for r in rec["ranking"]]
            rest = self._corpus_order(job, spec, order) if rec["source"] != CORPUS else []
            if rest:
                source += ", then the reference corpus's tasks most similar to this one"
            plan = sweep_plan(spec, order + rest, source, seeds=seeds)
        in_transaction(self.sessions, lambda s: set_notes(s, job.id, plan.notes()),
                       what="write the job's notes")
        return plan

    def _corpus_order(self, job: Job, spec: JobSpec, ranked: list[str]) -> list[str]:
        """The job's families that `ranked` (its team's ranking) leaves out, in the order the
        reference corpus's tasks most similar to this one give them (`corpus_order`), when the
        sweep reaches past `ranked` and there is an order to choose (2 families left or more):
        its rest came in the corpus's order over all its tasks, which a new job on the task had
        bettered. [] when not, or when the corpus says nothing (the order is an optimisation: a
        failure to read it is logged)."""
        from tuner.recommendations import corpus_order
        from tuner.sampling import SearchSpace

        space = list(SearchSpace(spec.space).families)
        families = [f for f in space if f not in ranked]
        if len(families) < 2 or job.epochs is None or \
                len(space) - len(families) >= sweep_plan(spec).cap:
            return []
        try:
            order = in_transaction(self.sessions, lambda s: corpus_order(
                s, job.task_id, job.epochs or 0, job.batch_size or 0),
                what="read the corpus's ranking for the task")
        except Exception as exc:
            log.warning("job %s: the sweep's rest in the corpus's order (%s: %s)", job.id,
                        type(exc).__name__, exc)
            return []
        return [f for f in order if f in families]

    def _confirm(self, job_id: str, spec: JobSpec, study: optuna.Study) -> bool:
        """After the search (and after each round): the confirmation race's next round, within
        the job's reserved runs (tuner.confirm). Idempotent across dispatcher restarts: the race
        is read from the study's trials, and n_confirm counts the runs in the study."""
        if not spec.search.confirm_top_k:
            return False
        job = self._job(job_id)
        reserve, counted = job.confirm_budget, job.n_confirm
        in_study = confirmation_count(study)
        n, why = (0, None) if in_study > counted else \
            confirm_round(study, spec, reserve - in_study)
        total = in_study + n

        give_back = why == STOP_NOTHING and reserve > total  # nothing to confirm: search on
        # the families the race gave a second look, read before the transaction (the study is
        # another connection's)
        looked = looked_at(race_trials(study.get_trials(deepcopy=False))) if why else []

        def txn(s: Session) -> None:
            job = get_job(s, job_id)
            job.n_confirm = total
            if give_back:
                job.n_trials += job.confirm_budget - total
                job.confirm_budget = total
            if why is not None and job.confirm_note is None:
                job.confirm_note = confirm_note(total, spec.budget.n_trials, why, looked)

        if total != counted or why is not None:
            in_transaction(self.sessions, txn, what="add confirmation runs")
        if n:
            log.info("job %s: %d confirmation runs queued (%d in all)", job_id, n, total)
        return total > counted or give_back

    def _release(self, job_id: str) -> None:
        in_transaction(self.sessions, lambda s: release_leases(s, self.config.owner, job_id),
                       what="hand the job back")

    def _renew(self, job_id: str) -> bool:
        cfg = self.config
        return in_transaction(
            self.sessions, lambda s: renew_lease(s, job_id, cfg.owner, cfg.lease_s,
                                                 now=cfg.clock()), what="renew lease")

    def _job(self, job_id: str) -> Job:
        return in_transaction(self.sessions, lambda s: get_job(s, job_id), what="read job")

    def _budget_left(self, job_id: str) -> bool:
        """Called when no worker is alive and no trial runs: reconcile tickets, then look."""
        def txn(s: Session) -> bool:
            reconcile_tickets(s, job_id)
            j = get_job(s, job_id)
            return j.trials_claimed < j.n_trials + j.n_confirm and not j.cancel_requested

        return in_transaction(self.sessions, txn, what="reconcile the trial budget")

    def _update_running(self, job_id: str, running: int) -> None:
        in_transaction(self.sessions, lambda s: refresh_counters(s, job_id, n_running=running),
                       what="update progress")

    def _fail_orphaned(self, study: optuna.Study, rdb: optuna.storages.RDBStorage,
                       recorder: TrialRecorder, running: list[FrozenTrial],
                       live: set[str]) -> None:
        """A RUNNING trial that never recorded a heartbeat is one that Optuna's stale check
        never sees (it skips trials without one). When its worker is gone (`orphaned`: killed
        before the trial reached the objective, ended or retried by Ray, or moved on to another
        trial after a write of this one's end failed) nothing else would ever end it, and the
        job would wait for it forever. After max(2 x grace period, 30 s), so that a worker
        merely slowed by a locked database is left alone, fail it `worker_lost`, saying why,
        and run it again like any stale trial. (A trial without a heartbeat whose worker is
        still on it is the stall check's: it stops a worker that makes no progress.)"""
        storage = study._storage
        limit = timedelta(seconds=max(2 * self.config.grace_period, ORPHAN_MIN_AGE_S))
        # Optuna's own timestamps (naive local time, written by the workers): the real clock.
        now = datetime.now()
        old = [t for t in running if t.datetime_start is not None and now - t.datetime_start >= limit]
        # Whose worker is gone first, from what the tick read; the heartbeat table only for those
        # (a running job's trials are past the limit most ticks, their workers on them).
        lost = orphaned({t.number: _task_of(t) for t in old},
                        {t.number: _task_of(t) for t in running}, live)
        beating = with_heartbeat(rdb, [t._trial_id for t in old if t.number in lost])
        for t in old:
            if (why := lost.get(t.number)) is None or t._trial_id in beating:
                continue  # its worker is on it, or Optuna's heartbeat check owns it
            try:  # why first: a sync records it so if the write below meets an outage
                storage.set_trial_system_attr(t._trial_id, ATTR_ENDED_BY,
                                              {"reason": WORKER_LOST, "detail": why})
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except Exception as exc:  # finished or failed meanwhile (a blip: retried whole)
                if transient(exc):
                    raise
                continue
            log.warning("trial %d: %s; failing and retrying it", t.number, why)
            recorder.write(storage.get_trial(t._trial_id), study=study)

    def _stop_stalled(self, w: _Watch, in_flight: list[FrozenTrial],
                      stalled: dict[str, tuple[int, timedelta, str]],
                      progress: Progress) -> None:
        """Stop the workers that went too long without an epoch or a new trial, and fail their
        trials `stalled` (recorded with the epochs they reported; not run again: a
        configuration that hangs would hang again), unless a trial was already failed without
        its worker (lost: it is retried)."""
        import ray

        storage = w.study._storage
        stall_s = w.spec.budget.stall_s
        by_task = {ref.task_id().hex(): ref for ref in w.workers}
        running = {t.number: t for t in in_flight}
        for task, (number, waited, hardware) in stalled.items():
            ref = by_task.get(task)
            if ref is None:
                continue
            ray.cancel(ref, force=True)
            w.workers.remove(ref)
            t = running.get(number)
            if t is None:  # failed as lost meanwhile (and retried): only its worker was left
                log.warning("job %s: the worker of trial %d made no progress for %.0f s after "
                            "the trial was failed without it; stopped", w.job.id, number,
                            waited.total_seconds())
                continue
            detail = (f"stalled: no epoch or batch reported for {waited.total_seconds():.0f} s "
                      f"(limit {progress.limit(stall_s, hardware).total_seconds():.0f} s: "
                      f"{progress.rule(stall_s, hardware)}); its worker was stopped "
                      f"and another started in its place")
            try:
                storage.set_trial_user_attr(t._trial_id, ATTR_RECORD,
                                            {"stop_reason": STALLED, "detail": detail})
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except Exception as exc:  # it finished as its worker was stopped (or a blip)
                if transient(exc):
                    raise
                continue
            log.warning("job %s: trial %d %s", w.job.id, number, detail)
            TRIALS_STALLED.inc()
            w.recorder.write(storage.get_trial(t._trial_id))

    def _fail_running(self, study: optuna.Study, recorder: TrialRecorder, reason: str,
                      detail: str | None = None) -> None:
        """Trials whose workers were killed on purpose end failed with `reason` (and `detail`,
        or the reason's), and so do the enqueued trials that never started (a cancelled study
        keeps nothing WAITING)."""
        storage = study._storage
        for t in study.get_trials(deepcopy=False,
                                  states=(TrialState.RUNNING, TrialState.WAITING)):
            try:  # why first: a sync records it so if the write below meets an outage
                storage.set_trial_system_attr(t._trial_id, ATTR_ENDED_BY,
                                              {"reason": reason, "detail": detail})
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except Exception as exc:  # finished meanwhile (a database blip: retried whole)
                if transient(exc):
                    raise
                continue
            recorder.write(storage.get_trial(t._trial_id))  # its reason: the mark above

    def _finish(self, job_id: str, status: str, error: str | None) -> None:
        in_transaction(self.sessions, lambda s: finish_job(s, job_id, status, error),
                       what="finish job")

    def _conclude(self, job_id: str, reason: str | None, worker_errors: list[str],
                  unscheduled: tuple[str, float] | None = None,
                  same: SameFailure | None = None) -> None:
        def txn(s: Session) -> tuple[str, str | None]:
            job = get_job(s, job_id)
            return conclusion(reason, done=job.n_done, failed=job.n_failed,
                              total=job.n_trials + job.n_confirm,
                              first_failure=first_failure(
                                  s, job_id, reason=DATA_ERROR if reason == DATA_ERROR else None),
                              worker_errors=worker_errors,
                              complete=job.n_complete, diverged=job.n_diverged,
                              first_divergence=first_failure(s, job_id, state="diverged"),
                              unscheduled=unscheduled, same=same, job_id=job_id)

        self._finish(job_id, *in_transaction(self.sessions, txn, what="read the job's outcome"))

    @staticmethod
    def _infeasible(cpus: float, gpus: float) -> str | None:
        import ray

        if (problem := ray_problem()) is not None:  # a cluster gone has no resources either
            raise RayDown(problem)
        total: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        if cpus > total.get("CPU", 0):
            return (f"resources.cpus_per_trial: {cpus} CPUs per trial but the Ray cluster has "
                    f"{total.get('CPU', 0)}")
        if gpus > total.get("GPU", 0):
            return (f"resources.gpus_per_trial: {gpus} GPUs per trial but the Ray cluster has "
                    f"{total.get('GPU', 0)}")
        return None
