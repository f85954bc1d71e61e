"""What the dispatcher decides about a running job, as pure functions of what it sees.

Each tick of `Dispatcher._run_job` reads the job row and the study, asks these functions what to
do, and carries the answer out in one place (kill workers, ask them to stop, launch more, end
the job). Nothing here touches Ray, the database or a real clock: `now` is whatever the
dispatcher's injected clock says, so the tests drive leases, timeouts and grace periods without
sleeping.

A job's life on one dispatcher:

    watching --cancel requested--> cancelled --workers gone--> end_cancelled
    watching --deadline passed---> timeout --grace over--> (workers killed) --> conclude
    watching --no worker, no running trial--> refill (launch, or conclude when nothing is left)
    any --lease lost or job final elsewhere--> leave (kill our workers, touch nothing else)

Beside that, each trial worker's progress is watched (`Progress`): a worker that goes too long
without an epoch, a batch heartbeat (written at most every TUNER_PROGRESS_EVERY_S while the
built-in loop's batches go on) or a new trial is stalled (a hung data loader, a deadlocked
collective, a team loop waiting on a lock); the dispatcher stops it, fails its trial
`stalled` (unless the trial was already failed as lost) and starts another worker, so a hung
trial never holds its job forever.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal

from tuner.trial import DATA_ERROR, SameFailure

CANCELLED: Final = "cancelled"
# Trials of the job failed the same way and none got further (tuner.trial.same_failure).
SAME_FAILURE: Final = "same_failure"
# The cluster lacked the job's resources and no worker started within TUNER_RESOURCES_WAIT_S.
UNSCHEDULABLE: Final = "unschedulable"
TIMEOUT: Final = "timeout"
# A job whose trial workers crash this many times (beyond Ray's own retries) stops launching.
MAX_WORKER_ERRORS = 3
# Without budget.stall_s, a trial is stalled after this many times the longest wait for
# progress (an epoch, a batch heartbeat, or a worker's next trial) on its worker's hardware
# that the job has seen or its task's trials recorded at the job's pace
# (tuner.store.trials.longest_epoch_wait), and never before STALL_MIN.
STALL_FACTOR = 5
STALL_MIN = timedelta(minutes=10)
# A worker on hardware (a GPU model) that neither the job nor its task's records have seen an
# epoch on is allowed this many times the longest wait seen on any other: a slower GPU than
# those seen must not have its first epochs called stalled.
STALL_FACTOR_OTHER_HARDWARE = 20
# With nothing seen anywhere (a new task, or a new pace) until the job's first epoch, there is
# nothing to scale from: a day (a first epoch of a large model on a large dataset may take
# hours; budget.stall_s sets a tighter limit).
STALL_BEFORE_FIRST_EPOCH = timedelta(days=1)
STALLED: Final = "stalled"


@dataclass(frozen=True)
class Stopping:
    """Why the job is stopping (None while it is not) and since when, on the dispatcher's
    clock."""

    reason: Literal["cancelled", "timeout", "data_error", "unschedulable", "same_failure"] \
        | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class RowDecision:
    """The answer to the job row of one tick."""

    stopping: Stopping
    leave: str | None = None  # stop watching the job (why), after killing our workers
    kill_workers: bool = False
    request_stop: bool = False  # workers take no new trial


def on_job_row(stopping: Stopping, *, lease_held: bool, final: bool, cancel_requested: bool,
               now: datetime, deadline: datetime | None, stop_grace: timedelta) -> RowDecision:
    """Lease, cancel and timeout. A cancel kills the workers at once (their trials end failed);
    a timeout first asks them to stop and kills them only after `stop_grace`, so trials close
    to their end still finish."""
    if not lease_held:
        return RowDecision(stopping, leave="lost the lease", kill_workers=True)
    if final:
        return RowDecision(stopping, leave="job ended elsewhere", kill_workers=True)
    kill = request = False
    if cancel_requested and stopping.reason is None:
        stopping, kill = Stopping(CANCELLED, now), True
    if deadline is not None and stopping.reason is None and now >= deadline:
        stopping, request = Stopping(TIMEOUT, now), True
    if stopping.reason == TIMEOUT and stopping.since is not None and \
            now - stopping.since > stop_grace:
        kill = True
    return RowDecision(stopping, kill_workers=kill, request_stop=request)


Next = Literal["wait", "refill", "conclude", "end_cancelled"]


def next_step(stopping: Stopping, *, workers: int, running: int, worker_errors: int) -> Next:
    """After collecting finished workers: keep waiting, launch more (`refill`: the dispatcher
    launches when budget or a confirmation round is left, else concludes), or end the job.

    A RUNNING trial without a live worker belongs to a dead worker: wait until its heartbeat goes
    stale and Optuna fails (and retries) it, or, one that never recorded a heartbeat, until the
    dispatcher finds it `orphaned` and does the same. A job stopped for its data (`DATA_ERROR`: a trial
    could not read the task's files, which every trial reads) ends as a cancelled one does, and
    so do one whose workers never started (`UNSCHEDULABLE`) and one whose trials failed the same
    way (`SAME_FAILURE`)."""
    if stopping.reason in (CANCELLED, DATA_ERROR, UNSCHEDULABLE, SAME_FAILURE):
        return "wait" if workers else "end_cancelled"
    if workers or running:
        return "wait"
    if stopping.reason is None and worker_errors < MAX_WORKER_ERRORS:
        return "refill"
    return "conclude"


def conclusion(reason: str | None, *, done: int, failed: int, total: int,
               first_failure: str | None, worker_errors: list[str], complete: int | None = None,
               diverged: int = 0, first_divergence: str | None = None,
               unscheduled: tuple[str, float] | None = None,
               same: SameFailure | None = None, job_id: str = "<job>") -> tuple[str, str | None]:
    """The job's final status and message. A job whose trials all diverged or were pruned has
    no result: it fails, saying so (`complete`: its complete trials, when known).
    `unscheduled`: what the cluster lacked and how long the job waited for it (`UNSCHEDULABLE`);
    `same`: the failure its trials shared (`SAME_FAILURE`). A job whose trials failed says
    where their tracebacks are (`tuner trials <job_id> --state failed`)."""
    tracebacks = f"`tuner trials {job_id} --state failed` prints"
    if reason == CANCELLED:
        return "cancelled", f"cancelled after {done} finished trials"
    if reason == UNSCHEDULABLE and unscheduled is not None:
        return "failed", (f"{unscheduled[0]}, and no trial started in {unscheduled[1]:.0f} s "
                          f"(TUNER_RESOURCES_WAIT_S): can the cluster's autoscaler add a node "
                          f"that has them?")
    if reason == SAME_FAILURE and same is not None:
        return "failed", (f"{same.message()} ({tracebacks} the error's traceback; fix it and "
                          f"submit the job again)")
    if reason == DATA_ERROR:  # `first_failure`: the detail of the trial that found it
        return "failed", (f"the task's data cannot be read: {first_failure}; every trial reads "
                          f"the same files, so the job stopped there")
    if done == 0:
        why = first_failure or (worker_errors[0] if worker_errors else "no trial ran")
        prefix = "timeout before any trial finished" if reason == TIMEOUT else \
            f"all {failed} trials failed" if failed else "no trial finished"
        where = f" ({tracebacks} their tracebacks)" if failed and first_failure else ""
        return "failed", f"{prefix}: {why}{where}"
    if complete == 0:
        pruned = done - diverged
        counts = ", ".join(f"{n} {what}" for n, what in ((diverged, "diverged"),
                                                        (pruned, "pruned"), (failed, "failed"))
                           if n)
        why = f"; first divergence: {first_divergence}" if first_divergence else ""
        return "failed", f"no trial completed ({counts}){why}"
    if reason == TIMEOUT:
        return "completed", f"timeout: {done} of {total} trials finished"
    return "completed", None


@dataclass
class Progress:
    """The progress of a job's trial workers as one dispatcher saw it, tick by tick. Each
    worker (its Ray task id) is known by its running trial, that trial's count of reported
    epochs, when the dispatcher first saw that count, and the hardware it runs on (the GPU's
    model, or `cpu`: trials of one job may land on different GPUs); and the job's longest wait
    for progress (an epoch, or the worker's next trial) on each hardware. A worker stops
    counting as making progress when it reports no epoch and starts no trial: its trial hangs
    (the process alive and idle: its heartbeat goes on), or its trial was failed without it (its
    heartbeat went stale: a hang that holds the interpreter) and it never moved on. A worker not
    seen with a trial yet (queued for resources) is never stalled; one first seen mid-trial (a
    dispatcher taking the job over) is timed from then. `history`: by hardware, the longest wait
    for progress that the task's trials recorded at the job's pace, and how many jobs recorded
    it (the job's own recorded trials and its task's earlier jobs'), so a trial that hangs
    before the job's first epoch is not given a day."""

    seen: dict[str, tuple[int, int, datetime, str]] = field(default_factory=dict)
    longest: dict[str, timedelta] = field(default_factory=dict)
    history: dict[str, tuple[timedelta, int]] = field(default_factory=dict)

    def observe(self, running: dict[str, tuple[int, int, str]], live: Collection[str],
                now: datetime) -> None:
        """`running`: each worker's running trial (its number, how far it got: the epochs it
        reported and its batch heartbeats, its hardware), by the worker's task id; `live`: the
        task ids of the workers still running (one seen before that has no running trial now is
        between trials, or stuck)."""
        for task, (number, got, hardware) in running.items():
            prev = self.seen.get(task)
            if prev is None:
                self.seen[task] = (number, got, now, hardware)
            elif prev[0] != number or got > prev[1]:
                # progress: a new epoch or batch heartbeat, or a new trial (the time from the
                # last one's last epoch through its recording to the next one's start was a
                # wait as well)
                wait = now - prev[2]
                self.longest[hardware] = max(self.longest.get(hardware, wait), wait)
                self.seen[task] = (number, got, now, hardware)
        for task in set(self.seen) - set(live):
            del self.seen[task]

    def _basis(self, hardware: str) -> tuple[int, timedelta, list[str]] | None:
        """The factor, the wait it multiplies, and where that wait was seen, in words: this
        hardware's waits (the job's own and the recorded) when there are any, else, allowed
        STALL_FACTOR_OTHER_HARDWARE times over, any other hardware's (a slower GPU than those
        seen must not have its epochs called stalled); None when nothing was seen anywhere."""
        same = {h: w for h, w in self.longest.items() if h == hardware}
        recorded = {h: w for h, w in self.history.items() if h == hardware}
        factor = STALL_FACTOR
        if not same and not recorded:
            same, recorded, factor = self.longest, self.history, STALL_FACTOR_OTHER_HARDWARE
        if not same and not recorded:
            return None
        words = [f"{w.total_seconds():.1f} s in this job on {h or 'unnamed hardware'}"
                 for h, w in same.items()]
        words += [f"{w.total_seconds():.1f} s recorded by {n} job{'s' * (n != 1)} of this task "
                  f"at this job's batch size, precision, device, loader and resources on "
                  f"{h or 'unnamed hardware'}" for h, (w, n) in recorded.items()]
        wait = max([*same.values(), *(w for w, _ in recorded.values())])
        return factor, wait, words

    def limit(self, stall_s: float | None, hardware: str = "") -> timedelta:
        """How long a worker on `hardware` may go without progress: `stall_s` when given, else
        STALL_FACTOR x the longest wait for progress seen or recorded on that hardware, at least
        STALL_MIN; with none there, STALL_FACTOR_OTHER_HARDWARE x the longest on any other;
        STALL_BEFORE_FIRST_EPOCH while nothing was seen anywhere."""
        if stall_s is not None:
            return timedelta(seconds=stall_s)
        basis = self._basis(hardware)
        if basis is None:
            return STALL_BEFORE_FIRST_EPOCH
        return max(STALL_MIN, basis[0] * basis[1])

    def rule(self, stall_s: float | None, hardware: str = "") -> str:
        """Where `limit` came from, in words (a stalled trial's detail says it)."""
        if stall_s is not None:
            return "budget.stall_s"
        basis = self._basis(hardware)
        if basis is None:
            return "no epoch or batch of this task seen yet at this job's pace, so a day; " \
                "budget.stall_s sets it"
        factor, _, words = basis
        return (f"{factor} x the longest wait for progress ({'; '.join(words)}), at least "
                f"{STALL_MIN.total_seconds():.0f} s; budget.stall_s sets it")

    def stalled(self, now: datetime, stall_s: float | None
                ) -> dict[str, tuple[int, timedelta, str]]:
        """The workers past their limit: by task id, the trial each was last seen running, how
        long it has gone without progress, and its hardware."""
        return {task: (number, now - since, hardware)
                for task, (number, _, since, hardware) in self.seen.items()
                if now - since > self.limit(stall_s, hardware)}


def orphaned(silent: Mapping[int, str | None], running: Mapping[int, str | None],
             live: Collection[str]) -> dict[int, str]:
    """Which of these running trials have lost their worker, and why (by trial number): those
    that never recorded a heartbeat are then orphans (the dispatcher reads the heartbeats of
    these only). `silent`: the trials to judge (old enough to have beaten), each with the Ray
    task id of the worker that marked it as its own (None: no worker marked it; "": one that
    did not say its task, which is left alone); `running`: every running trial of the job and
    its worker's task id alike; `live`: the task ids of the job's workers still running. A
    trial is orphaned when no worker reached it (killed between Optuna creating it and its
    objective), when its worker is no longer running (ended, killed, or retried by Ray after
    its process died), or when its worker runs a later trial (the write of this one's end
    failed and the worker went on)."""
    newest: dict[str, int] = {}
    for number, task in running.items():
        if task:
            newest[task] = max(number, newest.get(task, number))
    lost = {}
    for number, task in silent.items():
        if task is None:
            lost[number] = "worker lost: no worker started the trial (its worker was killed " \
                "before the trial reached it)"
        elif task and task not in live:
            lost[number] = "worker lost: its worker ended before the trial recorded a " \
                "heartbeat or a result"
        elif task and newest[task] > number:
            lost[number] = f"worker lost: its worker went on to trial {newest[task]} before " \
                "this trial recorded a heartbeat or a result"
    return lost
