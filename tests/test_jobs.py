"""Durable jobs end to end: real database (both backends), real local Ray, real training.
Create → dispatch → completed; fault tolerance; cancellation; timeouts; failures."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import select

from tuner.spec import JobSpec
from tuner.store.auth import get_or_create_team
from tuner.store.db import session_factory
from tuner.store.jobs import create_job, get_job, job_brief, request_cancel
from tuner.store.models import Job, TrialRow, utcnow
from tuner.tasks import inspect_task
from workers.dispatcher import Dispatcher, DispatcherConfig

pytestmark = pytest.mark.usefixtures("ray_session")

FAST = {"task": {"model": {"name": "mlp", "params": {"hidden": [16]}},
                 "dataset": {"name": "iris"}},
        "space": {"optimizers": ["adam", "sgd", "momentum", "rmsprop"]},
        "training": {"epochs": 3}, "budget": {"n_trials": 6, "parallelism": 2}}
# Trials long enough (a few seconds) to be interrupted in the middle.
SLOW = {"task": {"model": {"name": "mlp", "params": {"hidden": [256, 256]}},
                 "dataset": {"name": "digits"}},
        "space": {"optimizers": ["adam", "sgd"], "schedules": ["constant"]},
        "training": {"epochs": 12, "batch_size": 8},
        "search": {"pruner": "none", "confirm_top_k": 0},  # trial mechanics only
        "budget": {"n_trials": 3, "parallelism": 1}}

# Trials that take their time without the CPU (the plugin's `sleeps`: each epoch waits
# epoch_s): for what a trial's length matters to, not its training.
SLEEPS = {"task": {"trainable": {"name": "sleeps", "params": {"epoch_s": 1.0}}},
          "space": {"optimizers": ["adam", "sgd"], "schedules": ["constant"]},
          "training": {"epochs": 3}, "search": {"pruner": "none", "confirm_top_k": 0},
          "budget": {"n_trials": 3, "parallelism": 1}}


def _merge(base: dict[str, Any], **kw: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    for k, v in kw.items():
        out[k] = {**out.get(k, {}), **v}
    return out


def queue(url: str, spec: dict[str, Any], team: str = "t") -> str:
    js = JobSpec.model_validate(spec)
    with session_factory(url)() as s:
        t = get_or_create_team(s, team)
        return create_job(s, t.id, js, inspect_task(js))[0].id


def dispatcher(url: str, **kw: Any) -> Dispatcher:
    cfg = dict(poll_s=0.3, heartbeat_interval=1, grace_period=3, lease_s=30, stop_grace_s=2)
    cfg.update(kw)
    return Dispatcher(DispatcherConfig.from_settings(url, **cfg))


class Clock:
    """The dispatcher's clock, moved by the test: real UTC time plus an offset."""

    def __init__(self, offset: timedelta = timedelta()) -> None:
        self.offset = offset

    def __call__(self) -> datetime:
        return utcnow() + self.offset


def dispatcher_env(url: str, ray_session: str, **extra: str) -> dict[str, str]:
    """The environment of a `tuner dispatcher` subprocess joining the test's Ray: a 10-minute
    lease (a restart never waits it out), fast polls and heartbeats."""
    return {**os.environ, "RAY_ADDRESS": ray_session, "TUNER_DATABASE_URL": url,
            "TUNER_LEASE_S": "600", "TUNER_POLL_S": "0.3", "TUNER_HEARTBEAT_INTERVAL": "1",
            "TUNER_GRACE_PERIOD": "3", **extra}


def job_of(url: str, job_id: str) -> Job:
    with session_factory(url)() as s:
        return get_job(s, job_id)


def rows(url: str, job_id: str) -> list[TrialRow]:
    with session_factory(url)() as s:
        return list(s.scalars(select(TrialRow).where(TrialRow.job_id == job_id)
                              .order_by(TrialRow.number)))


_storages: dict[str, optuna.storages.RDBStorage] = {}


@pytest.fixture(autouse=True)
def _dispose_storages() -> Any:
    yield
    for st in _storages.values():
        st.engine.dispose()
    _storages.clear()


def study_of(url: str, job: Job) -> optuna.Study:
    if url not in _storages:
        _storages[url] = optuna.storages.RDBStorage(url, skip_table_creation=True)
    return optuna.load_study(study_name=job.study_name, storage=_storages[url])


def wait_for(cond: Callable[[], Any], timeout: float = 120, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def assert_consistent_with_optuna(url: str, job_id: str) -> list[TrialRow]:
    """Our records hold exactly Optuna's finished trials, with matching states and steps."""
    job = job_of(url, job_id)
    study = study_of(url, job)
    recs = rows(url, job_id)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert [r.number for r in recs] == [t.number for t in finished]
    states = {TrialState.COMPLETE: {"complete"}, TrialState.PRUNED: {"pruned", "diverged"},
              TrialState.FAIL: {"failed"}}
    for r, t in zip(recs, finished, strict=True):
        assert r.state in states[t.state], (r.number, r.state, t.state)
        if r.state in ("complete", "pruned"):
            assert [st.step for st in r.steps] == list(range(1, r.stop_step + 1))
            assert r.value == pytest.approx(t.value)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert all(r.detail for r in recs if r.state == "failed")  # every failure says why
    assert job.n_done == sum(r.state in ("complete", "pruned", "diverged") for r in recs)
    assert job.n_failed == sum(r.state == "failed" for r in recs)
    return recs


def test_create_dispatch_complete(migrated_url: str) -> None:
    job_id = queue(migrated_url, FAST)
    assert dispatcher(migrated_url).run(once=True) == [job_id]
    job = job_of(migrated_url, job_id)
    assert job.status == "completed", job.error
    recs = assert_consistent_with_optuna(migrated_url, job_id)
    assert job.n_done == 6 and job.n_failed == 0 and job.n_running == 0
    # A quarter of 6 trials: one family at defaults. mlp/iris is in the reference corpus, so
    # the dispatcher orders the sweep by the corpus's ranking for it, and the job's notes say
    # which family ran, from where the order came and which three were left to the sampler.
    assert recs[0].defaults_sweep and not any(r.defaults_sweep for r in recs[1:])
    assert job.notes is not None and job.notes[0] == (
        f"defaults sweep, in this order (the ranking transferred from similar tasks (reference "
        f"corpus)): {recs[0].optimizer} at the configuration that scored best over the "
        f"reference corpus's tasks")
    left = job.notes[1].rsplit(": ", 1)[1].split(", ")
    assert sorted([recs[0].optimizer, *left]) == ["adam", "momentum", "rmsprop", "sgd"]
    best = max((r for r in recs if r.state == "complete"), key=lambda r: r.value or 0)
    assert job.best_value == pytest.approx(best.value) and job.best_trial_number == best.number
    assert not any("planned at submit" in n for n in job.notes)  # settled when it started
    assert all(r.device == "cpu" and r.seconds_per_epoch > 0 for r in recs
               if r.state == "complete")


def test_a_sweep_with_no_ranking_to_order_it_is_settled_at_the_start(migrated_url: str) -> None:
    """The submit's notes say the sweep's order is not settled; when the job's start has no
    ranking to order it by (the history unreadable, or only the prior), the reference corpus's
    order stays, and the notes say it without the submit's proviso."""
    from tuner.search import PROVISIONAL
    from tuner.store.jobs import job_spec

    job_id = queue(migrated_url, FAST)
    submitted = job_of(migrated_url, job_id).notes
    assert submitted and PROVISIONAL in submitted[0]
    job = job_of(migrated_url, job_id)
    plan = dispatcher(migrated_url)._sweep(job, job_spec(job), None, [])
    settled = job_of(migrated_url, job_id).notes
    assert plan is not None and settled == plan.notes() == [
        n.replace(PROVISIONAL, "") for n in submitted]


def test_two_dispatchers_never_run_the_same_job(migrated_url: str) -> None:
    ids = [queue(migrated_url, _merge(FAST, budget={"n_trials": 2, "parallelism": 1}))
           for _ in range(4)]
    ds = [dispatcher(migrated_url), dispatcher(migrated_url)]
    threads = [threading.Thread(target=d.run, kwargs={"once": True}) for d in ds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    ran = [j for d in ds for j in d.jobs_run]
    assert sorted(ran) == sorted(ids)  # each job run once, by one dispatcher
    for j in ids:
        assert job_of(migrated_url, j).status == "completed"
        assert len(assert_consistent_with_optuna(migrated_url, j)) == 2


def test_worker_killed_mid_trial_is_retried(migrated_url: str) -> None:
    # Trials of 4 s that wait rather than train (trained ones of 48 epochs took 9 to 25 s here,
    # and the test 84 s alone, 128 s in the suite): the kill, 0.5 s after trial 1 is seen
    # sampled, lands while it runs, however loaded the machine; and none diverges (trained, a
    # trial 1 sampled at a rate that diverged ended within a poll, never seen running: twice in
    # suite runs the test waited 120 s for it; once the retry diverged where it should complete).
    job_id = queue(migrated_url, _merge(SLEEPS, training={"epochs": 8}, task={"trainable": {
        "name": "sleeps", "params": {"epoch_s": 0.5}}}))
    d = dispatcher(migrated_url)
    th = threading.Thread(target=d.run, kwargs={"once": True})
    th.start()
    job = wait_for(lambda: job_of(migrated_url, job_id).status == "running" and
                   job_of(migrated_url, job_id), what="job running")

    def created() -> optuna.Study | None:  # the dispatcher creates it just after claiming
        try:
            return study_of(migrated_url, job)
        except KeyError:
            return None

    study = wait_for(created, what="the job's study")

    def running_trial() -> Any:
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            w = t.user_attrs.get("worker")
            # mid-job (after one trial finished) and mid-trial: its configuration sampled
            if w and t.number == 1 and t.user_attrs.get("config"):
                return t, w
        return None

    try:
        trial, worker = wait_for(running_trial, what="a running trial with a worker pid")
    except AssertionError:  # say what the job did instead (it happened once, not reproduced)
        now = job_of(migrated_url, job_id)
        raise AssertionError(
            f"no trial 1 seen running: job {now.status} ({now.error}), trials "
            f"{[(t.number, t.state.name, len(t.intermediate_values)) for t in study.get_trials()]}"
        ) from None
    time.sleep(0.5)
    os.kill(worker["pid"], signal.SIGKILL)
    th.join(300)
    assert not th.is_alive()
    job = job_of(migrated_url, job_id)
    assert job.status == "completed", job.error
    recs = assert_consistent_with_optuna(migrated_url, job_id)
    lost = [r for r in recs if r.number == trial.number]
    assert (lost[0].state, lost[0].stop_reason) == ("failed", "worker_lost"), \
        (lost[0].stop_step, lost[0].detail)
    assert lost[0].epochs_run == len(lost[0].steps)  # what it reported before it was killed
    retries = [r for r in recs if r.retry_of == trial.number]
    # it ran to the end: the same configuration, run again
    assert len(retries) == 1 and retries[0].state == "complete", \
        [(r.number, r.state, r.optimizer, r.seed, r.detail) for r in recs]
    assert retries[0].params == lost[0].params  # the same configuration, run again
    assert job.n_done == 3  # the requested number of finished trials


def test_dispatcher_killed_and_restarted_resumes(migrated_url: str, ray_session: str,
                                                 tmp_path: Path) -> None:
    job_id = queue(migrated_url, SLEEPS)
    env = dispatcher_env(migrated_url, ray_session)
    log = (tmp_path / "dispatcher.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "dispatcher"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(rows(migrated_url, job_id)) >= 1, timeout=180,
                 what="a first finished trial")
        job = job_of(migrated_url, job_id)
        wait_for(lambda: study_of(migrated_url, job).get_trials(states=(TrialState.RUNNING,)),
                 what="a trial in flight")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert job_of(migrated_url, job_id).status == "running"
    # The dead dispatcher's lease runs 10 minutes: a dispatcher whose clock is past it takes
    # the job over at once.
    d = dispatcher(migrated_url, clock=Clock(timedelta(minutes=11)))
    assert d.run(once=True) == [job_id]
    job = job_of(migrated_url, job_id)
    assert job.status == "completed", job.error
    recs = assert_consistent_with_optuna(migrated_url, job_id)
    assert job.n_done == 3
    assert len({r.number for r in recs}) == len(recs)  # no duplicate records
    # `sleeps` reads no data, so never its split: its job's notes say so at its end, once.
    said = [n for n in job.notes if "never read ctx.split_seed" in n]
    assert len(said) == 1 and said[0].startswith("sleeps never read ctx.split_seed in its "), \
        job.notes


def test_cancel_stops_workers_promptly(migrated_url: str) -> None:
    job_id = queue(migrated_url, _merge(SLEEPS, budget={"n_trials": 20, "parallelism": 2}))
    d = dispatcher(migrated_url)
    th = threading.Thread(target=d.run, kwargs={"once": True})
    th.start()
    wait_for(lambda: rows(migrated_url, job_id), timeout=180, what="a finished trial")
    with session_factory(migrated_url)() as s:
        request_cancel(s, job_id)
    t0 = time.monotonic()
    th.join(120)
    assert time.monotonic() - t0 < 30
    job = job_of(migrated_url, job_id)
    assert job.status == "cancelled" and "cancelled after" in (job.error or "")
    recs = assert_consistent_with_optuna(migrated_url, job_id)
    assert job.n_done < 20
    assert all(r.stop_reason == "cancelled" for r in recs if r.state == "failed")
    study = study_of(migrated_url, job)
    assert not study.get_trials(states=(TrialState.WAITING,))  # nothing left enqueued
    # A trial killed mid-training keeps the epochs it reported (from Optuna's intermediate
    # values), not an empty history.
    killed = [t for t in study.trials if t.state == TrialState.FAIL and t.intermediate_values]
    for t in killed:
        r = next(r for r in recs if r.number == t.number)
        assert [st.step for st in r.steps] == sorted(t.intermediate_values)


def test_queued_job_cancel_and_timeout(migrated_url: str) -> None:
    queued = queue(migrated_url, FAST)
    with session_factory(migrated_url)() as s:
        assert request_cancel(s, queued).status == "cancelled"
        # of the 6 trials asked for, the race's reserve included (it showed 0/5)
        assert job_brief(get_job(s, queued))["progress"]["n_trials"] == 6
    timed = queue(migrated_url, _merge(SLOW, budget={"n_trials": 50, "timeout_s": 3600}))
    clock = Clock()
    d = dispatcher(migrated_url, clock=clock)
    th = threading.Thread(target=d.run, kwargs={"once": True})
    th.start()
    wait_for(lambda: rows(migrated_url, timed), timeout=180, what="a finished trial")
    clock.offset = timedelta(hours=1)  # the job's hour is up
    th.join(120)
    assert not th.is_alive() and d.jobs_run == [timed]
    job = job_of(migrated_url, timed)
    recs = assert_consistent_with_optuna(migrated_url, timed)
    assert job.status == "completed"
    assert job.error == f"timeout: {job.n_done} of 50 trials finished"
    assert 1 <= job.n_done < 50 and len(recs) < 50


def test_job_whose_every_trial_fails_ends_failed(migrated_url: str) -> None:
    # the team's loop raises in its second epoch, every time (a budget of 1: its ticket comes
    # back once, and two failures are not enough to stop it as failing the same way)
    job_id = queue(migrated_url, {"task": {"trainable": {"name": "crashes"}},
                                  "training": {"epochs": 2}, "search": {"confirm_top_k": 0},
                                  "budget": {"n_trials": 1, "parallelism": 1}})
    dispatcher(migrated_url).run(once=True)
    job = job_of(migrated_url, job_id)
    assert job.status == "failed"
    assert job.error is not None and job.error.startswith("all 2 trials failed: ")
    assert "ValueError: the team's loader lost its shard" in job.error, job.error
    assert_consistent_with_optuna(migrated_url, job_id)


def test_job_whose_trials_fail_the_same_way_stops_there(
        migrated_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The team's loop raises in its second epoch whatever the configuration: the job stops
    once 3 trials failed so and none got further. (A failed trial gives its ticket back, so it
    ran 12 failing trials for a budget of 6.)"""
    job_id = queue(migrated_url, {"task": {"trainable": {"name": "crashes"}},
                                  "training": {"epochs": 3},
                                  "budget": {"n_trials": 6, "parallelism": 2}})
    dispatcher(migrated_url).run(once=True)
    job = job_of(migrated_url, job_id)
    recs = assert_consistent_with_optuna(migrated_url, job_id)
    assert job.status == "failed"
    assert job.error is not None and re.fullmatch(
        r"(\d+) trials failed the same way after 1 epoch, with \1 configurations, and no trial "
        r"got further: ValueError: the team's loader lost its shard; a failure that does not "
        r"depend on the configuration would fail every trial, so the job stopped there \(`tuner "
        r"trials " + job_id + r" --state failed` prints the error's traceback; fix it and "
        r"submit the job again\)", job.error), job.error
    # (One in flight may fail so after the tick that stopped the job, before it was killed.)
    own = [r for r in recs if r.stop_reason == "failed"]
    assert 3 <= int(job.error.split()[0]) <= len(own) and len(recs) <= 6, [
        (r.number, r.stop_reason) for r in recs]
    # A trial in flight when it stopped, killed, is cancelled, saying why.
    from tuner.store.recorder import STOPPED_FOR_SAME_FAILURE
    assert all((r.stop_reason, r.detail) == ("cancelled", STOPPED_FOR_SAME_FAILURE)
               for r in recs if r.stop_reason != "failed"), [
        (r.number, r.state, r.stop_reason, r.detail) for r in recs]
    # The failed trials keep the error's traceback, down to the team's line that raised, each
    # file under its import root (not the worker machine's folders); the store answers them.
    from tuner.store.queries import count_trials
    from tuner.store.trials import trial_page

    with session_factory(migrated_url)() as s:
        failed = trial_page(s, job_id, state="failed", with_steps=False)
        assert count_trials(s, job_id, "failed") == len(failed) >= 3
    for t in failed:
        tb = t["traceback"] if t["stop_reason"] == "failed" else None
        assert (tb is None) == (t["stop_reason"] != "failed"), t
        if tb:
            assert tb.startswith("Traceback (most recent call last):\n"), tb
            assert re.search(r'File "tuner_example_plugin/trainables\.py", line \d+, in crashes\n'
                             r'.*raise ValueError\("the team\'s loader lost its shard"\)', tb), tb
            assert 'File "/' not in tb and str(Path.cwd()) not in tb, tb
            assert tb.rstrip().endswith("ValueError: the team's loader lost its shard"), tb
    # `tuner status`: the confirmation runs reserved were never due ("so far" said otherwise),
    # and failures of one kind are not counted twice ("4 failed (4 failed)")
    from cli.render import print_job
    from tuner.store.jobs import job_summary

    monkeypatch.setenv("COLUMNS", "300")
    with session_factory(migrated_url)() as s:
        print_job(job_summary(s, job))
    shown = capsys.readouterr().out
    assert f"{job.n_failed} failed ({job.n_failed} failed)" not in shown, shown
    assert re.search(r"confirmation: 0 of \d+ reserved runs \(the job ended failed before the "
                     r"rest\)", shown), shown


def test_a_job_that_demands_a_gpu_it_does_not_ask_for_is_refused(migrated_url: str) -> None:
    """`training.device: cuda` with no `resources.gpus_per_trial`: Ray gives a worker a GPU only
    for what its trials ask, so every trial failed (`cuda requested but no GPU is assigned`);
    refused at submit instead, with what to set. Asking for a GPU is accepted. So is bf16
    (autocast on a GPU only) without a GPU."""
    from tuner.errors import SpecError

    with pytest.raises(SpecError, match=r"^training\.device: cuda, but resources\.gpus_per_"
                                        r"trial is 0: a trial's worker is given a GPU only"):
        queue(migrated_url, _merge(FAST, training={"device": "cuda"}))
    queue(migrated_url, _merge(FAST, training={"device": "cuda"},
                               resources={"gpus_per_trial": 0.25}))
    # bf16 applies on a GPU only: without one the trials trained in fp32 on the CPU, kept as
    # the bf16 budget's runs, which a later job on GPUs pooled its bf16 runs with.
    for no_gpu, said in (({}, "resources.gpus_per_trial is 0"),
                         ({"training": {"precision": "bf16", "device": "cpu"},
                           "resources": {"gpus_per_trial": 1}}, "training.device is cpu")):
        with pytest.raises(SpecError, match=rf"^training\.precision: bf16 applies on a GPU only "
                                            rf"\(autocast\), and {re.escape(said)}: the trials "
                                            rf"would train in fp32 on the CPU"):
            queue(migrated_url, _merge(_merge(FAST, training={"precision": "bf16"}), **no_gpu))
    queue(migrated_url, _merge(FAST, training={"precision": "bf16"},
                               resources={"gpus_per_trial": 0.5}))


def test_a_job_whose_every_trial_diverged_fails_saying_so(migrated_url: str) -> None:
    job_id = queue(migrated_url, {
        "task": {"model": {"name": "linear"},
                 "dataset": {"name": "quadratic", "params": {"condition": 1000.0}}},
        "space": {"optimizers": ["sgd"], "schedules": ["constant"],
                  "overrides": {"sgd.lr": 1.0}},
        "training": {"epochs": 3}, "budget": {"n_trials": 2, "parallelism": 1},
        "search": {"confirm_top_k": 0}})
    dispatcher(migrated_url).run(once=True)
    job = job_of(migrated_url, job_id)
    assert job.status == "failed"
    assert (job.error or "").startswith("no trial completed (2 diverged); first divergence: ")
    recs = assert_consistent_with_optuna(migrated_url, job_id)
    assert all(r.state == "diverged" and r.steps and r.steps[0].step == 1 for r in recs)


def test_a_job_on_other_plugin_code_than_its_task_fails_and_trains_nothing(
        migrated_url: str) -> None:
    """A task on a team's plugin is that plugin's code: where the job runs with other code (the
    service that checked the job had another release of the team's package than the
    dispatcher, here simulated in the task's row), the job fails saying so and trains nothing;
    a worker's objective checks the same before its first trial."""
    from sqlalchemy import update

    from tuner.attrs import ATTR_RECORD
    from tuner.objective import Objective, Provenance
    from tuner.store.models import Task

    spec = _merge(FAST, task={"model": {"name": "tiny_mlp"}, "dataset": {"name": "moons"}},
                  budget={"n_trials": 2, "parallelism": 1})
    job_id = queue(migrated_url, spec)
    with session_factory(migrated_url)() as s:
        job = s.get(Job, job_id)
        assert job is not None and job.task.code_digest == JobSpec.model_validate(
            spec).task.code_digest() is not None
        s.execute(update(Task).where(Task.id == job.task_id).values(code_digest="0" * 16))
        s.commit()
    dispatcher(migrated_url).run(once=True)
    job = job_of(migrated_url, job_id)
    assert job.status == "failed" and job.n_done == 0
    assert "plugin code on this machine" in (job.error or ""), job.error
    study = optuna.create_study(direction="maximize")
    study.optimize(Objective(JobSpec.model_validate(spec),
                             made_from=Provenance(code_digest="0" * 16)),
                   n_trials=1, catch=(Exception,))
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL
    assert "not the code the job was submitted with" in trial.user_attrs[ATTR_RECORD]["detail"]


def test_a_job_queued_under_another_release_runs_this_ones_code_and_says_so(
        migrated_url: str) -> None:
    """A job queued under another release's training code (`TRAINING_FORMAT`) that has run
    nothing yet runs this release's, and its row says so (its runs are this budget's); one
    whose trials began under the other code fails instead of mixing the two in one job; a
    worker of another release refuses to train for it."""
    from sqlalchemy import update

    from tuner.spec import TRAINING_FORMAT

    fresh = queue(migrated_url, _merge(FAST, budget={"n_trials": 2, "parallelism": 1},
                                       search={"confirm_top_k": 0}))
    begun = queue(migrated_url, _merge(FAST, budget={"n_trials": 2, "parallelism": 1},
                                       search={"confirm_top_k": 0}))
    with session_factory(migrated_url)() as s:
        s.execute(update(Job).where(Job.id.in_([fresh, begun]))
                  .values(training_format=TRAINING_FORMAT + 1))
        s.execute(update(Job).where(Job.id == begun).values(trials_claimed=1))
        s.commit()
    dispatcher(migrated_url).run(once=True)
    dispatcher(migrated_url).run(once=True)
    ran, refused = job_of(migrated_url, fresh), job_of(migrated_url, begun)
    assert ran.status == "completed" and ran.training_format == TRAINING_FORMAT, ran.error
    assert refused.status == "failed" and refused.n_complete == 0
    assert "training code of another release" in (refused.error or ""), refused.error
    # A worker of another release refuses the job's trials (its objective, here directly).
    from tuner.attrs import ATTR_RECORD
    from tuner.objective import Objective, Provenance

    study = optuna.create_study(direction="maximize")
    study.optimize(Objective(JobSpec.model_validate(FAST),
                             made_from=Provenance(training_format=TRAINING_FORMAT + 1)),
                   n_trials=1, catch=(Exception,))
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL
    assert "training code of another release" in trial.user_attrs[ATTR_RECORD]["detail"]


def test_a_crashed_watch_hands_the_job_back_and_it_resumes(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the dispatcher's loop (not a database blip) no longer ends the job failed on the
    first crash: the job is handed back, claimed again and finished."""
    job_id = queue(migrated_url, _merge(FAST, budget={"n_trials": 3, "parallelism": 1}))
    d = dispatcher(migrated_url)
    real = d._renew
    calls = {"n": 0}

    def flaky(job: str) -> bool:  # called every tick
        calls["n"] += 1
        if calls["n"] == 1:  # the first tick of the first watch
            raise RuntimeError("a bug in the watch")
        return real(job)

    monkeypatch.setattr(d, "_renew", flaky)
    assert d.run(once=True) == [job_id]
    assert d.crashes == {job_id: 1}
    job = job_of(migrated_url, job_id)
    assert job.status == "completed", job.error
    assert_consistent_with_optuna(migrated_url, job_id)


def test_infeasible_resources_fail_the_job(migrated_url: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    job_id = queue(migrated_url, _merge(FAST, resources={"gpus_per_trial": 1}))
    dispatcher(migrated_url).run(once=True)
    job = job_of(migrated_url, job_id)
    assert job.status == "failed" and "resources.gpus_per_trial" in (job.error or "")
    # `tuner status` says why, and prints no empty table of families for a job with no trial
    from cli.render import print_job
    from tuner.store.jobs import job_summary

    with session_factory(migrated_url)() as s:
        print_job(job_summary(s, job))
    shown = capsys.readouterr().out
    assert "GPUs per trial but the Ray cluster has 0" in shown.replace("\n", " ")
    assert "progress: 0/" in shown and "Best per optimizer" not in shown
    assert (job.error or "").endswith("; on a cluster whose autoscaler adds such nodes, set "
                                      "TUNER_RESOURCES_WAIT_S"), job.error


@pytest.mark.usefixtures("ray_session")
def test_a_job_waits_for_resources_an_autoscaler_may_add_then_fails_saying_so(
        migrated_url: str) -> None:
    """On a cluster whose autoscaler adds GPU nodes (scaled to zero while idle), every GPU job
    failed at once: the cluster had 0 GPUs when it started. With TUNER_RESOURCES_WAIT_S its
    workers are queued for the autoscaler; a job none of whose workers starts within it fails
    saying so, its queued workers stopped and its enqueued trials recorded."""
    job_id = queue(migrated_url, _merge(FAST, resources={"gpus_per_trial": 1}))
    started = time.monotonic()
    dispatcher(migrated_url, resources_wait_s=2).run(once=True)
    job = job_of(migrated_url, job_id)
    assert job.status == "failed"
    assert job.error == ("resources.gpus_per_trial: 1.0 GPUs per trial but the Ray cluster has "
                         "0, and no trial started in 2 s (TUNER_RESOURCES_WAIT_S): can the "
                         "cluster's autoscaler add a node that has them?"), job.error
    assert 2 <= time.monotonic() - started < 60
    recs = assert_consistent_with_optuna(migrated_url, job_id)
    assert all((r.state, r.stop_reason, r.epochs_run) == ("failed", "cancelled", 0)
               for r in recs), recs
    # Resources the cluster lacked when the job started and had once its workers were queued
    # (an autoscaler's node came up): the job runs on, past the wait, to its end.
    # (Trials that wait, not train: 3 trials of 3 one-second epochs outlast a 6 s wait on any
    # machine. 12 trained trials took 30 to 86 s here, as loaded as the other test worker left
    # the cores, and 6 took 7.2 s on a quiet machine, within the wait.)
    job_id = queue(migrated_url, SLEEPS)
    d = dispatcher(migrated_url, resources_wait_s=6)
    d._infeasible = lambda cpus, gpus: "resources.cpus_per_trial: pretend"  # type: ignore
    started = time.monotonic()
    d.run(once=True)
    job = job_of(migrated_url, job_id)
    took = time.monotonic() - started
    assert job.status == "completed" and job.n_complete >= 1, job.error
    assert took > 6, f"the job ended within the wait ({took:.1f} s): nothing was tested"


def _cli(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], env=env, text=True,
                          capture_output=True, check=check, timeout=600)


def test_cli_db_upgrade_job_create_dispatch_show(db_url: str, ray_session: str,
                                                 tmp_path: Path) -> None:
    env = {**os.environ, "TUNER_DATABASE_URL": db_url, "RAY_ADDRESS": ray_session,
           "TUNER_POLL_S": "0.3"}
    assert "revision 0016" in _cli(["db", "upgrade"], env).stdout  # the newest migration
    spec = tmp_path / "job.yaml"
    spec.write_text("task: {model: {name: linear}, dataset: {name: wine}}\n"
                    "training: {epochs: 3}\nbudget: {n_trials: 5, parallelism: 2}\n"
                    "space: {optimizers: [adam, nadam]}\nsearch: {sweep_share: 1.0}\n")
    job_id = _cli(["job", "create", str(spec)], env).stdout.strip()
    assert len(job_id) == 32
    _cli(["dispatcher", "--once"], env)
    # Reading a job needs neither torch nor SciPy: their imports cost seconds per command.
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cli", "job", "show", job_id,
                           "--json"], env=env, text=True, capture_output=True, check=True,
                          timeout=120)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "tuner.store.jobs" in imported and not imported & {"torch", "scipy", "sklearn"}
    shown = json.loads(proc.stdout)
    assert shown["status"] == "completed"
    assert shown["progress"]["done"] == 5
    assert shown["best"]["value"] == shown["progress"]["best_value"]
    assert {e["optimizer"] for e in shown["by_optimizer"]} == {"adam", "nadam"}
    human = _cli(["job", "show", job_id], env).stdout
    assert "completed" in human and "best trial:" in human
    # Not there: exit 1, as over HTTP (`tuner status nope`), not 2 (what was given is wrong).
    missing = _cli(["job", "show", "nope"], env, check=False)
    assert (missing.returncode, missing.stderr.strip()) == (1, "error: job 'nope' not found")
    # The operator's view of teams and keys (the job's team, `local`, has no key yet).
    key = _cli(["admin", "create-key", "local", "--name", "ci-bot"], env).stdout.strip()
    teams = json.loads(_cli(["admin", "teams", "--json"], env).stdout)
    assert [(t["name"], t["active_keys"], t["jobs"]) for t in teams] == [("local", 1, 1)]
    keys = _cli(["admin", "keys"], {**env, "COLUMNS": "200"}).stdout
    assert f"{key[:10]}… │ local │ ci-bot" in keys and key not in keys
    # Optuna's own tools read the same database.
    (name,) = [n for n in optuna.get_all_study_names(db_url) if n.endswith(f"/job-{job_id}")]
    assert optuna.load_study(study_name=name, storage=db_url).trials


def test_bad_specs_are_refused_before_queueing(migrated_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "TUNER_DATABASE_URL": migrated_url}
    cases = {
        "task: {model: {name: resnet}, dataset: {name: digits}}\n": "unknown model 'resnet'",
        "task: {model: {name: cnn}, dataset: {name: iris}}\n": "cnn needs image-shaped input",
        "task: {model: {name: mlp}, dataset: {name: iris}}\n"
        "budget: {n_trials: 2, parallelism: 8}\n": "budget.parallelism",
        "task: {model: {name: mlp}, dataset: {name: diabetes}, metric: val_accuracy}\n":
            "does not apply to a regression dataset",
    }
    for i, (text, msg) in enumerate(cases.items()):
        spec = tmp_path / f"bad{i}.yaml"
        spec.write_text(text)
        proc = _cli(["job", "create", str(spec)], env, check=False)
        assert proc.returncode == 2 and msg in proc.stderr, proc.stderr
    with session_factory(migrated_url)() as s:
        assert s.scalars(select(Job)).all() == []


@pytest.mark.parametrize("marked", [False, True], ids=["before-the-objective", "worker-gone"])
def test_trial_orphaned_before_its_first_heartbeat_is_retried(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch, marked: bool) -> None:
    """A worker killed right after Optuna created its trial leaves it RUNNING without any
    heartbeat, which Optuna's stale check skips; the dispatcher fails and retries it. So too
    when the worker had marked the trial as its own and is gone (its process died holding the
    interpreter before the first heartbeat, and Ray ran the task again; the write of the
    trial's end failed and the worker ended): the job waited for that trial forever."""
    import workers.dispatcher as wd
    from tuner.attrs import ATTR_WORKER
    from tuner.search import create_study

    monkeypatch.setattr(wd, "ORPHAN_MIN_AGE_S", 1.0)
    job_id = queue(migrated_url, _merge(FAST, budget={"n_trials": 3, "parallelism": 1}))
    job = job_of(migrated_url, job_id)
    study = create_study(JobSpec.model_validate(job.spec), "maximize",
                         optuna.storages.RDBStorage(migrated_url), job.study_name)
    orphan = study.ask()  # RUNNING, and no heartbeat was ever recorded
    if marked:  # by a worker no longer running (its Ray task id is none of the job's workers')
        orphan.set_user_attr(ATTR_WORKER, {"pid": 1, "host": "gone", "device": "cpu",
                                           "hardware": "cpu", "task": "ab" * 14})
    with session_factory(migrated_url)() as s:  # the dead worker held one ticket
        get_job(s, job_id).trials_claimed = 1
        s.commit()
    dispatcher(migrated_url).run(once=True)
    job = job_of(migrated_url, job_id)
    assert job.status == "completed", job.error
    recs = assert_consistent_with_optuna(migrated_url, job_id)
    lost = next(r for r in recs if r.number == orphan.number)
    assert lost.state == "failed" and lost.stop_reason == "worker_lost"
    assert lost.detail == ("worker lost: its worker ended before the trial recorded a heartbeat "
                           "or a result" if marked else "worker lost: no worker started the "
                           "trial (its worker was killed before the trial reached it)")
    retry = [t for t in study_of(migrated_url, job).trials
             if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t)
             == orphan.number]
    assert len(retry) == 1  # enqueued again (it queues behind the rest of the defaults sweep)
    assert job.n_done == 3
