"""The dispatcher's decisions, as pure functions of what one tick sees (no Ray, no database, no
sleeping: the clock is a value)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tuner.trial import SameFailure, TrialRecord, same_failure
from workers.decisions import (
    MAX_WORKER_ERRORS,
    STALL_FACTOR_OTHER_HARDWARE,
    STALL_MIN,
    Progress,
    Stopping,
    conclusion,
    next_step,
    on_job_row,
    orphaned,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
GRACE = timedelta(seconds=10)
WATCHING = Stopping()


def row(stopping: Stopping = WATCHING, **kw: Any) -> Any:
    args: dict[str, Any] = dict(lease_held=True, final=False, cancel_requested=False, now=T0,
                                deadline=None, stop_grace=GRACE)
    args.update(kw)
    return on_job_row(stopping, **args)


def test_a_quiet_tick_changes_nothing() -> None:
    d = row(deadline=T0 + timedelta(seconds=1))
    assert d.stopping == Stopping() and not (d.leave or d.kill_workers or d.request_stop)


@pytest.mark.parametrize(("kw", "why"), [({"lease_held": False}, "lost the lease"),
                                         ({"final": True}, "job ended elsewhere")])
def test_lost_lease_or_final_job_leaves_and_kills_our_workers(kw: dict[str, Any],
                                                              why: str) -> None:
    # Even while stopping, and before any cancel or deadline is looked at.
    d = row(Stopping("timeout", T0), cancel_requested=True, **kw)
    assert d.leave == why and d.kill_workers and not d.request_stop


def test_cancel_kills_at_once_and_only_once() -> None:
    d = row(cancel_requested=True, deadline=T0)
    assert d.stopping == Stopping("cancelled", T0) and d.kill_workers
    assert not d.request_stop  # a cancel outranks a deadline reached in the same tick
    later = row(d.stopping, cancel_requested=True, now=T0 + timedelta(minutes=5), deadline=T0)
    assert later.stopping == d.stopping and not later.kill_workers


def test_timeout_asks_workers_to_stop_then_kills_after_the_grace() -> None:
    deadline = T0 + timedelta(hours=1)
    assert row(now=deadline - timedelta(microseconds=1), deadline=deadline).stopping == Stopping()
    d = row(now=deadline, deadline=deadline)
    assert d.stopping == Stopping("timeout", deadline) and d.request_stop and not d.kill_workers
    within = row(d.stopping, now=deadline + GRACE, deadline=deadline)
    assert not (within.request_stop or within.kill_workers)  # asked once, not killed yet
    past = row(d.stopping, now=deadline + GRACE + timedelta(seconds=1), deadline=deadline)
    assert past.kill_workers and past.stopping == d.stopping
    # A cancel during the grace does not turn the timeout into a cancel.
    assert row(d.stopping, cancel_requested=True, now=deadline,
               deadline=deadline).stopping.reason == "timeout"


def test_next_step() -> None:
    idle = Stopping()
    assert next_step(idle, workers=2, running=2, worker_errors=0) == "wait"
    assert next_step(idle, workers=0, running=1, worker_errors=0) == "wait"  # a dead worker's
    assert next_step(idle, workers=0, running=0, worker_errors=0) == "refill"
    assert next_step(idle, workers=0, running=0,
                     worker_errors=MAX_WORKER_ERRORS) == "conclude"
    cancelled = Stopping("cancelled", T0)
    assert next_step(cancelled, workers=1, running=1, worker_errors=0) == "wait"
    assert next_step(cancelled, workers=0, running=1, worker_errors=0) == "end_cancelled"
    timeout = Stopping("timeout", T0)
    assert next_step(timeout, workers=1, running=0, worker_errors=0) == "wait"
    assert next_step(timeout, workers=0, running=0, worker_errors=0) == "conclude"
    # A trial that could not read the task's data stops the job as a cancel does.
    unreadable = Stopping("data_error", T0)
    assert next_step(unreadable, workers=1, running=1, worker_errors=0) == "wait"
    assert next_step(unreadable, workers=0, running=1, worker_errors=0) == "end_cancelled"
    # So do trials that failed the same way (tuner.trial.same_failure).
    alike = Stopping("same_failure", T0)
    assert next_step(alike, workers=1, running=1, worker_errors=0) == "wait"
    assert next_step(alike, workers=0, running=0, worker_errors=0) == "end_cancelled"


def test_conclusion() -> None:
    kw: dict[str, Any] = dict(total=10, first_failure=None, worker_errors=[])
    assert conclusion(None, done=10, failed=0, **kw) == ("completed", None)
    assert conclusion("timeout", done=3, failed=1, **kw) == (
        "completed", "timeout: 3 of 10 trials finished")
    assert conclusion("cancelled", done=2, failed=0, **kw) == (
        "cancelled", "cancelled after 2 finished trials")
    assert conclusion(None, done=0, failed=4, total=10, first_failure="CUDA missing",
                      worker_errors=["RayTaskError: x"], job_id="j1") == (
        "failed", "all 4 trials failed: CUDA missing (`tuner trials j1 --state failed` prints "
                  "their tracebacks)")
    assert conclusion("timeout", done=0, failed=0, total=10, first_failure=None,
                      worker_errors=["RayTaskError: x"]) == (
        "failed", "timeout before any trial finished: RayTaskError: x")
    assert conclusion(None, done=0, failed=0, **kw) == ("failed",
                                                        "no trial finished: no trial ran")
    # Trials finished, but none completed: no result, and the job says why.
    assert conclusion(None, done=3, failed=1, complete=0, diverged=3,
                      first_divergence="loss became nan", **kw) == (
        "failed", "no trial completed (3 diverged, 1 failed); first divergence: loss became nan")
    assert conclusion(None, done=4, failed=0, complete=0, diverged=1, **kw) == (
        "failed", "no trial completed (1 diverged, 3 pruned)")
    assert conclusion(None, done=4, failed=0, complete=1, diverged=3, **kw) == ("completed",
                                                                                 None)
    # No worker started while the cluster lacked what the job asks for (an autoscaler's node).
    assert conclusion("unschedulable", done=0, failed=0, unscheduled=(
        "resources.gpus_per_trial: 1.0 GPUs per trial but the Ray cluster has 0", 1800.0),
        **kw) == ("failed", "resources.gpus_per_trial: 1.0 GPUs per trial but the Ray cluster "
                            "has 0, and no trial started in 1800 s (TUNER_RESOURCES_WAIT_S): can "
                            "the cluster's autoscaler add a node that has them?")
    # Whatever else finished: the job failed on its data, and says what could not be read.
    assert conclusion("data_error", done=5, failed=2, total=10, complete=3,
                      first_failure="task.dataset: 'a/b.png' cannot be read (...)",
                      worker_errors=[]) == (
        "failed", "the task's data cannot be read: task.dataset: 'a/b.png' cannot be read "
                  "(...); every trial reads the same files, so the job stopped there")
    # Trials failed the same way: the job says how, and that it stopped for it.
    assert conclusion("same_failure", done=0, failed=3, same=SameFailure(
        "ValueError: no shard", 1, 3, 2), job_id="j1", **kw) == (
        "failed", "3 trials failed the same way after 1 epoch, with 2 configurations, and no "
                  "trial got further: ValueError: no shard; a failure that does not depend on "
                  "the configuration would fail every trial, so the job stopped there (`tuner "
                  "trials j1 --state failed` prints the error's traceback; fix it and submit the "
                  "job again)")


def _ended(number: int, state: str = "failed", *, epochs: int = 0, lr: float = 0.1,
           reason: str | None = None, detail: str = "ValueError: no shard") -> TrialRecord:
    return TrialRecord(number=number, state=state, optimizer="sgd", schedule="constant",
                       params={"lr": lr}, epochs_run=epochs, stop_step=epochs,
                       stop_reason=reason or ("failed" if state == "failed" else None),
                       detail=detail if state == "failed" else "")


def test_same_failure() -> None:
    """A job's trials that failed the same way, with nothing further: the job stops there.
    Anything that shows the failure may depend on the configuration keeps it going."""
    alike = [_ended(0, epochs=1, lr=0.1), _ended(1, epochs=1, lr=0.2), _ended(2, epochs=1, lr=0.1)]
    assert same_failure(alike) == SameFailure("ValueError: no shard", 1, 3, 2)
    assert same_failure(alike[:2]) is None  # two are not enough
    # One configuration three times (its seeds) says nothing of the others.
    assert same_failure([_ended(i, epochs=1) for i in range(3)]) is None
    # A trial pruned before the failing epoch, or running at it, does not contradict it...
    assert same_failure([*alike, _ended(3, "pruned", epochs=1),
                         _ended(4, "running", epochs=1)]) is not None
    # ... one past it does, and so does any complete trial.
    assert same_failure([*alike, _ended(3, "pruned", epochs=2)]) is None
    assert same_failure([*alike, _ended(3, "running", epochs=2)]) is None
    assert same_failure([*alike, _ended(3, "complete", epochs=1)]) is None
    # Another error, or the same after other epochs, is another failure.
    assert same_failure([*alike[:2], _ended(2, epochs=1, detail="KeyError: 'x'")]) is None
    assert same_failure([*alike[:2], _ended(2, epochs=0, lr=0.3)]) is None
    # Failures the trial did not cause (a lost worker, memory, a stall) are not counted.
    for reason in ("worker_lost", "out_of_memory", "stalled", "db_error", "cancelled"):
        assert same_failure([*alike[:2], _ended(2, epochs=1, lr=0.3, reason=reason)]) is None
    # A failure before the first epoch: the job's other trials have run nothing either.
    built = [_ended(i, lr=0.1 * (i + 1), detail="TypeError: bad width") for i in range(4)]
    assert same_failure(built) == SameFailure("TypeError: bad width", 0, 4, 4)
    assert same_failure(built).message() == (  # type: ignore[union-attr]
        "4 trials failed the same way before their first epoch, with 4 configurations, and no "
        "trial got further: TypeError: bad width; a failure that does not depend on the "
        "configuration would fail every trial, so the job stopped there")


CPU = "cpu"


def _on(hardware: str, running: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int, str]]:
    return {task: (number, epochs, hardware) for task, (number, epochs) in running.items()}


def test_a_worker_is_stalled_after_five_times_the_longest_epoch_wait_and_never_too_soon() -> None:
    s = timedelta(seconds=1)
    p = Progress()
    live = {"a", "b", "c"}
    p.observe(_on(CPU, {"a": (0, 0), "b": (1, 0)}), live, T0)  # c: queued, no trial yet
    # no epoch seen yet in the job: a day (a first epoch may take hours), unless given
    assert p.stalled(T0 + 10 * STALL_MIN, None) == {}
    assert p.stalled(T0 + timedelta(days=1, seconds=1), None) == {
        "a": (0, timedelta(days=1, seconds=1), CPU), "b": (1, timedelta(days=1, seconds=1), CPU)}
    assert p.stalled(T0 + 4 * s, 3.0) == {"a": (0, 4 * s, CPU), "b": (1, 4 * s, CPU)}
    p.observe(_on(CPU, {"a": (0, 1), "b": (1, 0)}), live, T0 + 100 * s)  # trial 0's first: 100 s
    p.observe(_on(CPU, {"a": (0, 2), "b": (1, 0)}), live, T0 + 160 * s)
    assert p.longest == {CPU: 100 * s} and p.limit(None, CPU) == STALL_MIN  # 5 x 100 s < 10 min
    p.observe(_on(CPU, {"a": (0, 2), "b": (1, 1)}), live, T0 + 400 * s)  # trial 1's: the longest
    assert p.limit(None, CPU) == 2000 * s
    assert p.stalled(T0 + 2160 * s, None) == {}  # worker a at exactly the limit
    assert p.stalled(T0 + 2161 * s, None) == {"a": (0, 2001 * s, CPU)}
    assert p.stalled(T0 + 2401 * s, None) == {"a": (0, 2241 * s, CPU), "b": (1, 2001 * s, CPU)}
    # a's trial was failed without it (its heartbeat went stale) and a never moved on: a is
    # still timed from its last epoch; b's next trial is progress (100 s after its last epoch:
    # shorter than the longest wait); c (never seen with a trial) is never stalled; a worker
    # that ended is forgotten
    p.observe(_on(CPU, {"b": (7, 0)}), live, T0 + 500 * s)
    assert p.limit(None, CPU) == 2000 * s
    assert p.stalled(T0 + 2401 * s, None) == {"a": (0, 2241 * s, CPU)}
    p.observe(_on(CPU, {"b": (7, 0)}), {"b", "c"}, T0 + 2400 * s)
    assert set(p.seen) == {"b"} and p.stalled(T0 + 2500 * s, None) == {}
    assert p.stalled(T0 + 2501 * s, None) == {"b": (7, 2001 * s, CPU)}
    # the wait before a worker's next trial counts as well (from its last trial's last epoch
    # through its recording to the next trial's start)
    p.observe(_on(CPU, {"b": (8, 0)}), {"b"}, T0 + 2450 * s)
    assert p.longest == {CPU: 1950 * s} and p.limit(None, CPU) == 9750 * s


def test_a_hang_before_the_jobs_first_epoch_is_timed_from_the_tasks_recorded_waits() -> None:
    """A trial that hangs before any epoch of its job (a data loader deadlocked on its first
    batch, the commonest hang) is not given a day when the task's trials recorded their waits
    at this job's pace: 5 x the longest of them on its hardware, at least 10 minutes, the job's
    own waits there counted too (the longer rules)."""
    s = timedelta(seconds=1)
    h100 = "NVIDIA H100 80GB HBM3"
    p = Progress(history={h100: (300 * s, 2)})
    p.observe(_on(h100, {"a": (0, 0)}), {"a"}, T0)
    assert p.limit(None, h100) == 1500 * s
    assert p.stalled(T0 + 1500 * s, None) == {}
    assert p.stalled(T0 + 1501 * s, None) == {"a": (0, 1501 * s, h100)}
    assert p.rule(None, h100) == (
        "5 x the longest wait for progress (300.0 s recorded by 2 jobs of this task at this "
        f"job's batch size, precision, device, loader and resources on {h100}), at least "
        "600 s; budget.stall_s sets it")
    p.observe(_on(h100, {"a": (0, 1)}), {"a"}, T0 + 400 * s)  # the job's own took longer
    assert p.limit(None, h100) == 2000 * s
    assert f"400.0 s in this job on {h100}; 300.0 s recorded" in p.rule(None, h100)
    assert Progress(history={h100: (10 * s, 1)}).limit(None, h100) == STALL_MIN  # >= 10 min
    assert Progress(history={h100: (10 * s, 1)}).limit(4.0, h100) == 4 * s  # stall_s rules
    assert Progress(history={h100: (10 * s, 1)}).rule(4.0, h100) == "budget.stall_s"
    assert Progress().rule(None, h100).startswith(
        "no epoch or batch of this task seen yet at this job's pace")


def test_a_gpu_never_seen_is_allowed_twenty_times_the_waits_seen_on_others() -> None:
    """Trials of one job may land on different GPUs, and a task's records on another model than
    this job's: a worker on hardware with no wait seen (in the job or the records) is allowed
    STALL_FACTOR_OTHER_HARDWARE times the longest seen on any other (a T4 is several times
    slower than an H100), never only five."""
    s = timedelta(seconds=1)
    h100, t4 = "NVIDIA H100 80GB HBM3", "Tesla T4"
    p = Progress(history={h100: (60 * s, 1)})
    p.observe({"a": (0, 0, h100), "b": (1, 0, t4)}, {"a", "b"}, T0)
    assert p.limit(None, h100) == STALL_MIN  # 5 x 60 s, at least ten minutes
    assert p.limit(None, t4) == STALL_FACTOR_OTHER_HARDWARE * 60 * s == 1200 * s
    assert p.rule(None, t4).startswith(f"{STALL_FACTOR_OTHER_HARDWARE} x the longest wait")
    assert p.stalled(T0 + 601 * s, None) == {"a": (0, 601 * s, h100)}  # b, on a T4, is not
    p.observe({"a": (0, 0, h100), "b": (1, 1, t4)}, {"a", "b"}, T0 + 900 * s)  # b's first
    assert p.limit(None, t4) == 4500 * s  # from now on, its own hardware's: 5 x 900 s
    assert p.limit(None, h100) == STALL_MIN  # unchanged: the H100's own


def test_a_silent_trial_is_orphaned_only_when_its_worker_is_not_on_it() -> None:
    """Running trials that never recorded a heartbeat: lost when no worker reached them, when
    their worker is gone, or when their worker runs a later trial; left to the stall check while
    their worker is still on them; left alone when marked by a worker that gave no task id."""
    running = {0: "a", 1: None, 2: "b", 3: "c", 4: "c", 5: "", 6: "d"}
    silent = {n: running[n] for n in (0, 1, 2, 3, 5)}
    lost = orphaned(silent, running, live={"a", "c", "d"})
    assert sorted(lost) == [1, 2, 3]
    assert lost[1].startswith("worker lost: no worker started the trial")
    assert lost[2].startswith("worker lost: its worker ended before")
    assert lost[3] == ("worker lost: its worker went on to trial 4 before this trial recorded a "
                       "heartbeat or a result")
    assert orphaned({}, running, live=set()) == {}
