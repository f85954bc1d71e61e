"""A queued job says why it waits: the dispatchers' own word of themselves (started, seen, stopped,
crashed), read by the job's API, CLI and page; and `tuner serve`'s dispatcher, ended by an error,
starts again instead of leaving the API taking jobs that nothing runs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

import cli.servers
import workers.dispatcher
from tests.test_jobs import SLEEPS, _merge, dispatcher, job_of, queue, wait_for
from tuner.client import Client
from tuner.store.auth import create_api_key, get_or_create_team
from tuner.store.db import session_factory
from tuner.store.dispatchers import (
    ALIVE_WITHIN_S,
    KEPT_FOR,
    dispatcher_ended,
    dispatcher_seen,
    job_waiting,
)
from tuner.store.jobs import claim_job, get_job, release_leases, request_cancel
from tuner.store.models import DispatcherRecord, Job, utcnow

ONE = _merge(SLEEPS, training={"epochs": 1}, budget={"n_trials": 1})


def _waiting(url: str, job_id: str, now: Any = None) -> dict[str, Any] | None:
    with session_factory(url)() as s:
        return job_waiting(s, get_job(s, job_id), now)


def _records(url: str) -> dict[str, DispatcherRecord]:
    with session_factory(url)() as s:
        return {r.owner: r for r in s.scalars(select(DispatcherRecord))}


def test_a_queued_job_says_whether_anything_will_run_it(migrated_url: str) -> None:
    url = migrated_url
    first, second = queue(url, ONE), queue(url, ONE)
    w = _waiting(url, second)
    assert w is not None and w["ahead"] == 1 and w["last_dispatcher"] is None
    assert w["dispatchers"] == {"running": 0, "busy": 0, "blocked": 0}
    assert w["note"] == ("1 job waits ahead of it. No dispatcher has ever run on this database. "
                         "Start one (`tuner dispatcher` on this database, or `tuner serve`, "
                         "which runs one) and it runs the job.")
    sessions = session_factory(url)
    now = utcnow()
    # A dispatcher of a release before revision 0016 writes no row, but its lease says it runs.
    with sessions() as s:
        assert claim_job(s, "old:1:x", 60, now=now) is not None
    w = _waiting(url, second, now)
    assert w is not None and w["dispatchers"] == {"running": 1, "busy": 1, "blocked": 0}
    assert w["note"].startswith("1 dispatcher is running, busy with another job")
    with sessions() as s:
        release_leases(s, "old:1:x")
        s.execute(update(Job).where(Job.id == first).values(status="queued", started_at=None))
        s.commit()
    with sessions() as s:
        dispatcher_seen(s, "host:1:a", now)
    w = _waiting(url, second, now)
    assert w is not None and w["dispatchers"] == {"running": 1, "busy": 0, "blocked": 0}
    assert w["note"] == ("1 job waits ahead of it. 1 dispatcher is running, 1 of them free: it "
                         "is claimed within seconds.")
    with sessions() as s:
        claimed = claim_job(s, "host:1:a", 60, now=now)
    assert claimed is not None and claimed.id == first
    assert _waiting(url, first, now) is None  # being run
    w = _waiting(url, second, now)
    assert w is not None and w["ahead"] == 0 and w["dispatchers"] == {"running": 1, "busy": 1, "blocked": 0}
    assert w["note"] == ("1 dispatcher is running, busy with another job (a dispatcher runs one "
                         "job at a time): it runs when one is free, or when another dispatcher "
                         "starts.")
    # Running, but unable to start a trial (Ray down): the queue says so, and why.
    with sessions() as s:
        dispatcher_seen(s, "host:1:a", now, "the local Ray's raylet process ended")
    w = _waiting(url, second, now)
    assert w is not None and w["dispatchers"] == {"running": 1, "busy": 1, "blocked": 1}
    assert w["note"] == ("1 dispatcher is running, but cannot start a trial now: the local "
                         "Ray's raylet process ended. It takes the job once it can (it tries "
                         "again, backing off to a minute), or another dispatcher does.")
    with sessions() as s:
        dispatcher_seen(s, "host:1:a", now)  # Ray back
    assert "busy with another job" in _waiting(url, second, now)["note"]  # type: ignore[index]
    # Unheard from past ALIVE_WITHIN_S (killed outright: it said nothing), its lease run out:
    # the job it ran waits to be claimed again, ahead of the other.
    later = now + timedelta(seconds=ALIVE_WITHIN_S + 1)
    w = _waiting(url, first, later)
    assert w is not None and w["dispatchers"]["running"] == 0
    assert w["last_dispatcher"]["state"] == "gone"
    assert w["note"].startswith("Its dispatcher let it go (stopped, or lost), so it waits to be "
                                "claimed again, and resumes where it stopped. No dispatcher is "
                                "running: the last one was last heard from at ")
    assert _waiting(url, second, later)["ahead"] == 1  # type: ignore[index]
    # It crashed, and said so: the error is on the waiting job.
    with sessions() as s:
        dispatcher_ended(s, "host:1:a", "RuntimeError: a bug", later)
    w = _waiting(url, second, later)
    assert w is not None and w["last_dispatcher"]["state"] == "crashed"
    assert "No dispatcher is running: the last one crashed at " in w["note"]
    assert w["note"].endswith(": RuntimeError: a bug. Start one (`tuner dispatcher` on this "
                              "database, or `tuner serve`, which runs one) and it runs the job.")
    # Started again: running, its error gone. Another stops cleanly: the last heard from counts.
    with sessions() as s:
        dispatcher_seen(s, "host:1:a", later)
        dispatcher_ended(s, "host:2:b", None, later + timedelta(seconds=1))
    recs = _records(url)
    assert (recs["host:1:a"].state, recs["host:1:a"].error) == ("running", None)
    assert (recs["host:2:b"].state, recs["host:2:b"].error) == ("stopped", None)
    w = _waiting(url, second, later + timedelta(seconds=2))
    assert w is not None and w["dispatchers"]["running"] == 1
    assert w["last_dispatcher"]["state"] == "running"  # the one running, not the last to end
    # Ended rows go after KEPT_FOR (written by the next dispatcher to end).
    with sessions() as s:
        dispatcher_ended(s, "host:3:c", None, later + KEPT_FOR + timedelta(seconds=2))
    assert set(_records(url)) == {"host:3:c"}
    w = _waiting(url, second, later + KEPT_FOR + timedelta(seconds=3))
    assert w is not None and " the last one stopped at " in w["note"]
    with sessions() as s:  # an ended job waits for nothing
        s.execute(DispatcherRecord.__table__.delete())
        s.commit()
    assert _waiting(url, first, later) is not None
    with sessions() as s:
        request_cancel(s, second)
    assert _waiting(url, second) is None


@pytest.mark.usefixtures("ray_session")
def test_a_dispatcher_says_it_runs_and_how_it_ended(migrated_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    d = dispatcher(migrated_url)
    assert d.run(once=True) == []
    rec = _records(migrated_url)[d.config.owner]
    assert rec.state == "stopped" and rec.ended_at is not None and rec.error is None

    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("a bug in the claim")

    monkeypatch.setattr(workers.dispatcher, "claim_job", broken)
    d = dispatcher(migrated_url)
    with pytest.raises(RuntimeError, match="a bug in the claim"):
        d.run(once=True)
    rec = _records(migrated_url)[d.config.owner]
    assert rec.state == "crashed" and rec.error == "RuntimeError: a bug in the claim"
    job_id = queue(migrated_url, ONE)
    w = _waiting(migrated_url, job_id)
    assert w is not None and "crashed at" in w["note"] and "a bug in the claim" in w["note"]


@pytest.mark.usefixtures("ray_session")
def test_serves_dispatcher_ended_by_an_error_starts_again_and_runs_the_job(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """`tuner serve`'s dispatcher thread died on an error (here a bug in its first claim) and
    the API went on taking jobs that nothing ran: now it starts again, and runs them."""
    real, calls = workers.dispatcher.claim_job, {"n": 0}

    def first_fails(*a: Any, **k: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug in the first claim")
        return real(*a, **k)

    monkeypatch.setattr(workers.dispatcher, "claim_job", first_fails)
    monkeypatch.setattr(cli.servers, "RESTART_WAIT_S", (0.2, 0.2))
    job_id = queue(migrated_url, ONE)
    d = dispatcher(migrated_url)
    caplog.set_level(logging.ERROR, logger="tuner.serve")
    thread = threading.Thread(target=cli.servers._supervised, args=(d,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: job_of(migrated_url, job_id).status == "completed", 120,
                 "the job to complete")
    finally:
        d.stop_event.set()
        thread.join(60)
    assert not thread.is_alive()
    assert "the dispatcher ended on an error; it starts again in 0 s" in caplog.text
    assert "a bug in the first claim" in caplog.text  # with its traceback
    rec = _records(migrated_url)[d.config.owner]
    assert rec.state == "stopped" and rec.error is None  # stopped by the test, not crashed


def test_the_api_says_why_a_job_waits_and_its_events_say_when_that_changes(
        migrated_url: str) -> None:
    from tests.test_hostile import serving

    with session_factory(migrated_url)() as s:
        key = create_api_key(s, get_or_create_team(s, "t"))
        s.commit()
    job_id = queue(migrated_url, ONE)
    with serving(migrated_url, poll_s=0.1) as url:
        c = Client(url, key)
        job = c.job(job_id)
        assert job["waiting"]["dispatchers"] == {"running": 0, "busy": 0, "blocked": 0}
        assert job["waiting"]["note"].startswith("No dispatcher has ever run on this database.")
        # The event stream says it, and says it again when it changes (a dispatcher started).
        seen: list[str] = []

        def follow() -> None:
            for event, data in c.events(job_id):
                if event == "progress" and data["waiting"]:
                    seen.append(data["waiting"]["note"])

        th = threading.Thread(target=follow, daemon=True)
        th.start()
        wait_for(lambda: len(seen) == 1, 30, "the first progress event")
        with session_factory(migrated_url)() as s:
            dispatcher_seen(s, "host:9:z")
        wait_for(lambda: len(seen) == 2, 30, "an event saying a dispatcher started")
        assert seen[1] == "1 dispatcher is running, 1 of them free: it is claimed within seconds."
        c.cancel(job_id)
        th.join(30)
        assert not th.is_alive()
        assert c.job(job_id)["waiting"] is None


def test_tuner_status_prints_why_a_job_waits(capsys: pytest.CaptureFixture[str]) -> None:
    from cli.render import print_job

    job = {"id": "j1", "status": "queued", "error": None, "failed_reasons": {},
           "task": {"model": "mlp", "dataset": "iris", "model_params": {}, "dataset_params": {},
                    "metric": "val_accuracy", "direction": "maximize"},
           "progress": {"done": 0, "n_trials": 1, "complete": 0, "pruned": 0, "diverged": 0,
                        "failed": 0, "running": 0},
           "confirmation": {}, "notes": [], "by_optimizer": [], "best": None,
           "waiting": {"note": "No dispatcher has ever run on this database. Start one."}}
    print_job(job)
    out = capsys.readouterr().out
    assert "waiting: No dispatcher has ever run on this database. Start one." in out


def test_tuner_submit_wait_says_why_the_job_waits_and_again_when_that_changes(
        migrated_url: str, tmp_path: Any) -> None:
    from tests.test_hostile import serving

    with session_factory(migrated_url)() as s:
        key = create_api_key(s, get_or_create_team(s, "t"))
        s.commit()
    spec = tmp_path / "one.json"
    spec.write_text(json.dumps(ONE))
    with serving(migrated_url, poll_s=0.1) as url:
        env = {**os.environ, "TUNER_URL": url, "TUNER_API_KEY": key,
               "TUNER_HOME": str(tmp_path), "COLUMNS": "400"}
        proc = subprocess.Popen([sys.executable, "-m", "cli", "submit", str(spec), "--wait"],
                                env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")),
                                  daemon=True)  # type: ignore[union-attr]
        reader.start()

        def said() -> list[str]:
            return [" ".join(line.split()) for line in list(lines)
                    if line.startswith("waiting:")]

        wait_for(lambda: len(said()) == 1, 60, "the first word of why it waits")
        with session_factory(migrated_url)() as s:
            dispatcher_seen(s, "host:8:y")
        wait_for(lambda: len(said()) == 2, 30, "the word that a dispatcher started")
        c = Client(url, key)
        c.cancel(c.jobs()["data"][0]["id"])
        assert proc.wait(60) == 1  # the job did not complete (cancelled)
        reader.join(10)
    assert said() == [
        "waiting: No dispatcher has ever run on this database. Start one (`tuner dispatcher` on "
        "this database, or `tuner serve`, which runs one) and it runs the job.",
        "waiting: 1 dispatcher is running, 1 of them free: it is claimed within seconds."], lines
