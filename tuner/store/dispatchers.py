"""Dispatchers as they last said of themselves, and what a waiting job's submitter is told of
them. A queued job says nothing else of why it waits: with no dispatcher running (never
started, stopped, crashed, or `tuner serve`'s dispatcher thread ended on an error while its
API went on taking jobs) it was "queued" for ever, and its submitter could not tell that from
a queue behind other jobs.

Each dispatcher writes its row as it starts, then `seen_at` every `SEEN_EVERY_S` while it claims
or watches a job, and its end (stopped, or crashed with the error). One killed outright says
nothing: it is taken for gone once unseen for `ALIVE_WITHIN_S`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from tuner.store.models import DispatcherRecord, Job, utcnow

# How often a running dispatcher writes that it is: at most once in this many seconds.
SEEN_EVERY_S = 10.0
# Unseen this long, a dispatcher is taken for gone. Well past SEEN_EVERY_S: a dispatcher's tick
# can take a while (a job's start reads the team's history to order its sweep), and one called
# gone while it runs would send its submitter to start another for nothing.
ALIVE_WITHIN_S = 90.0
# Ended dispatchers' rows (and those of dispatchers gone without a word) are kept this long.
KEPT_FOR = timedelta(days=7)

RUNNING, STOPPED, CRASHED = "running", "stopped", "crashed"


def _say(s: Session, owner: str, now: datetime, state: str, error: str | None,
         ended_at: datetime | None) -> None:
    """`owner`'s row as it says now: updated, or made (its first word: it has started then)."""
    values: dict[str, Any] = dict(seen_at=now, state=state, error=error[:2000] if error else None,
                                  ended_at=ended_at)
    res = s.execute(update(DispatcherRecord).where(DispatcherRecord.owner == owner)
                    .values(**values))
    if res.rowcount == 0:  # type: ignore[attr-defined]
        s.add(DispatcherRecord(owner=owner, started_at=now, **values))


def dispatcher_seen(s: Session, owner: str, now: datetime | None = None,
                    problem: str | None = None) -> None:
    """`owner` is running (its first call: it has started); `problem`: why it cannot start
    trials now (Ray down), kept as its `error` while it runs. Commits."""
    _say(s, owner, now or utcnow(), RUNNING, problem, None)
    s.commit()


def dispatcher_ended(s: Session, owner: str, error: str | None = None,
                     now: datetime | None = None) -> None:
    """`owner` has stopped, or crashed on `error`; ended rows older than `KEPT_FOR` go. Commits."""
    now = now or utcnow()
    _say(s, owner, now, CRASHED if error else STOPPED, error, now)
    s.execute(delete(DispatcherRecord).where(DispatcherRecord.seen_at < now - KEPT_FOR))
    s.commit()


def _when(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S UTC")


def _start_one() -> str:
    return ("Start one (`tuner dispatcher` on this database, or `tuner serve`, which runs one) "
            "and it runs the job.")


def job_waiting(s: Session, job: Job, now: datetime | None = None) -> dict[str, Any] | None:
    """Why `job` is not running, when it is not: queued, or running while no dispatcher holds
    it (its dispatcher's lease ran out: it died, or lost the database). `ahead`: jobs that
    would be claimed before it (every team's: one queue serves them all); `dispatchers`: those
    running now, and how many of them run a job (each runs one at a time); `note`: all that in
    one sentence or three, with what to do. None for a job that is being run, or has ended."""
    from tuner.store.jobs import aware

    now = now or utcnow()
    lease = aware(job.lease_until)
    if job.status == "running" and job.claimed_by is not None and lease is not None \
            and lease >= now:
        return None
    if job.status not in ("queued", "running"):
        return None
    alive_since = now - timedelta(seconds=ALIVE_WITHIN_S)
    latest = select(DispatcherRecord).order_by(DispatcherRecord.seen_at.desc())
    running = list(s.scalars(latest.where(DispatcherRecord.state == RUNNING,
                                          DispatcherRecord.seen_at >= alive_since)))
    # Running, but unable to start a trial now (Ray down): they say why as their `error`.
    blocked = [r for r in running if r.error]
    holders = set(s.scalars(select(Job.claimed_by).distinct().where(
        Job.status == "running", Job.claimed_by.is_not(None), Job.lease_until >= now)))
    # A dispatcher holding a job's lease runs, whether it said so or not (one of a release
    # before revision 0016 writes no row; a rolling deploy runs both).
    alive = len({r.owner for r in running} | holders)
    busy = len(holders)
    ahead = s.scalar(select(func.count()).select_from(Job).where(
        Job.id != job.id, Job.created_at < job.created_at,
        or_(Job.status == "queued",
            (Job.status == "running") & (or_(Job.claimed_by.is_(None),
                                             Job.lease_until < now))))) or 0
    # The dispatcher heard from last: a running one before any that has ended since.
    last = running[0] if running else s.scalars(latest.limit(1)).first()
    lead = ("Its dispatcher let it go (stopped, or lost), so it waits to be claimed again, "
            "and resumes where it stopped. " if job.status == "running" else "")
    ahead_words = (f"{ahead} job{'s' if ahead != 1 else ''} wait{'s' if ahead == 1 else ''} "
                   f"ahead of it. " if ahead else "")
    if alive and len(blocked) == alive:
        these = ("1 dispatcher is running" if alive == 1 else
                 f"{alive} dispatchers are running")
        note = (f"{ahead_words}{these}, but cannot start a trial now: {blocked[0].error}. It "
                f"takes the job once it can (it tries again, backing off to a minute), or "
                f"another dispatcher does.")
    elif alive:
        idle = max(alive - busy - len(blocked), 0)
        if idle:
            note = (f"{ahead_words}{alive} dispatcher{'s are' if alive != 1 else ' is'} "
                    f"running, {idle} of them free: it is claimed within seconds"
                    f"{' once those ahead are' if ahead > idle else ''}.")
        else:
            busy_words = ("1 dispatcher is running, busy with another job" if alive == 1 else
                          f"{alive} dispatchers are running, all busy with other jobs")
            note = (f"{ahead_words}{busy_words} (a dispatcher runs one job at a time): it "
                    f"runs when one is free, or when another dispatcher starts.")
    elif last is None:
        note = f"{ahead_words}No dispatcher has ever run on this database. {_start_one()}"
    else:
        seen = aware(last.seen_at)
        assert seen is not None
        if last.state == CRASHED:
            how = f"the last one crashed at {_when(seen)}: {last.error}"
        elif last.state == STOPPED:
            how = f"the last one stopped at {_when(seen)}"
        else:
            how = (f"the last one was last heard from at {_when(seen)} and has said nothing "
                   f"since (killed, or cut off from the database)")
        note = f"{ahead_words}No dispatcher is running: {how}. {_start_one()}"
    return {"ahead": ahead, "dispatchers": {"running": alive, "busy": min(busy, alive),
                                            "blocked": len(blocked)},
            "last_dispatcher": None if last is None else {
                "state": last.state if alive or last.state != RUNNING else "gone",
                "seen_at": aware(last.seen_at), "error": last.error},
            "note": lead + note}
