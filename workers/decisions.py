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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

CANCELLED: Final = "cancelled"
TIMEOUT: Final = "timeout"
# A job whose trial workers crash this many times (beyond Ray's own retries) stops launching.
MAX_WORKER_ERRORS = 3


@dataclass(frozen=True)
class Stopping:
    """Why the job is stopping (None while it is not) and since when, on the dispatcher's
    clock."""

    reason: Literal["cancelled", "timeout"] | None = None
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
    stale and Optuna fails (and retries) it."""
    if stopping.reason == CANCELLED:
        return "wait" if workers else "end_cancelled"
    if workers or running:
        return "wait"
    if stopping.reason is None and worker_errors < MAX_WORKER_ERRORS:
        return "refill"
    return "conclude"


def conclusion(reason: str | None, *, done: int, failed: int, total: int,
               first_failure: str | None, worker_errors: list[str], complete: int | None = None,
               diverged: int = 0, first_divergence: str | None = None) -> tuple[str, str | None]:
    """The job's final status and message. A job whose trials all diverged or were pruned has
    no result: it fails, saying so (`complete`: its complete trials, when known)."""
    if reason == CANCELLED:
        return "cancelled", f"cancelled after {done} finished trials"
    if done == 0:
        why = first_failure or (worker_errors[0] if worker_errors else "no trial ran")
        prefix = "timeout before any trial finished" if reason == TIMEOUT else \
            f"all {failed} trials failed" if failed else "no trial finished"
        return "failed", f"{prefix}: {why}"
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
