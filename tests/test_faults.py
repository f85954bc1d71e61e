"""Faults, at a small size: the database dropping every connection during a job, a real SIGTERM
to a dispatcher, and what must survive them (no job failed, no trial lost or counted twice)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from optuna.trial import TrialState
from sqlalchemy import create_engine, text

from tests.test_jobs import (
    SLEEPS,
    SLOW,
    _merge,
    _storages,
    assert_consistent_with_optuna,
    dispatcher,
    dispatcher_env,
    job_of,
    queue,
    rows,
    study_of,
    wait_for,
)
from tuner.store.db import transient, with_retries
from tuner.store.models import Job
from tuner.trial import INFRA_FAILURES

pytestmark = pytest.mark.usefixtures("ray_session")


def test_transient_errors_are_recognised_through_optuna_wrappers() -> None:
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import IntegrityError, OperationalError

    dropped = OperationalError("SELECT 1", {}, Exception("terminating connection"))
    try:
        try:
            raise dropped
        except OperationalError as exc:
            raise StorageInternalError("An exception is raised during the commit.") from exc
    except StorageInternalError as wrapped:
        assert transient(wrapped)
    assert transient(dropped)
    assert not transient(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not transient(ValueError("a bug"))


def _kill_connections(url: str, stop: threading.Event, every_s: float, counter: list[int]) -> None:
    """What a failover or a restarted PostgreSQL does to every client: all their connections of
    this database are terminated, again and again (the first round at once)."""
    db = url.rsplit("/", 1)[1]
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        while not stop.is_set():
            n = conn.execute(text("select count(pg_terminate_backend(pid)) from pg_stat_activity "
                                  "where datname = :db and pid <> pg_backend_pid()"),
                             {"db": db}).scalar()
            counter.append(int(n or 0))
            stop.wait(every_s)
    admin.dispose()


def test_connections_killed_during_a_job_lose_nothing(migrated_url: str,
                                                      caplog: pytest.LogCaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection to the database killed every half second, from before the dispatcher
    claims the job to its end: no trial is lost or recorded twice, none fails but for the
    infrastructure (and those run again), and the dispatcher's watch of the job never crashes
    (opening Optuna's storage met a killed connection, unretried: three such crashes fail
    the job)."""
    import workers.dispatcher as wd

    if not migrated_url.startswith("postgresql"):
        pytest.skip("connection kills are a PostgreSQL fault (SQLite has no server)")
    # A trial orphaned before its first heartbeat (one in six runs here) is failed after 2 x
    # the test dispatcher's grace period rather than 30 s.
    monkeypatch.setattr(wd, "ORPHAN_MIN_AGE_S", 6.0)
    job_id = queue(migrated_url, _merge(SLOW, training={"epochs": 8},
                                        budget={"n_trials": 6, "parallelism": 2}))
    stop, kills = threading.Event(), []
    killer = threading.Thread(target=_kill_connections, args=(migrated_url, stop, 0.5, kills))
    d = dispatcher(migrated_url)
    runner = threading.Thread(target=d.run, kwargs={"once": True})
    killer.start()
    runner.start()
    wait_for(lambda: with_retries(lambda: job_of(migrated_url, job_id)).status == "running",
             what="the job running")
    try:
        runner.join(300)
    finally:
        stop.set()
        killer.join()
    assert not runner.is_alive()
    job = job_of(migrated_url, job_id)
    assert sum(1 for n in kills if n) >= 3, kills  # the faults really happened, during the job
    assert job.status == "completed", job.error
    recs = assert_consistent_with_optuna(migrated_url, job_id)  # none lost, none twice
    assert len({r.number for r in recs}) == len(recs)
    spurious = [r for r in recs if r.state == "failed" and r.stop_reason not in INFRA_FAILURES]
    assert spurious == [], [(r.number, r.stop_reason, r.detail) for r in spurious]
    assert job.n_done == 6  # every infrastructure failure was run again
    assert not [r.getMessage() for r in caplog.records
                if "crashed the dispatcher" in r.getMessage() or "handing it back" in r.getMessage()]


def _refuse_connections(url: str, refuse: bool) -> None:
    """The database refuses every new connection (and drops the open ones), or takes them again:
    an outage of one test database, as a PostgreSQL restart or a network cut looks."""
    db = url.rsplit("/", 1)[1]
    admin = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS {str(not refuse).lower()}'))
        if refuse:
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": db})
    admin.dispose()


def test_a_dispatcher_outlives_a_database_outage_longer_than_its_retries(
        migrated_url: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The database is down for longer than a call's retries while a job runs. The
    job's watch gives up and hands the job back; the dispatcher waits the outage out and takes
    the job again; it completes, nothing lost, and is never counted as crashed. (The
    dispatcher's loop died there: `tuner dispatcher` exited, and `tuner serve`'s dispatcher
    thread died while its API went on taking jobs that nothing would run.)"""
    import tuner.store.db

    if not migrated_url.startswith("postgresql"):
        pytest.skip("an outage of the database server (SQLite has no server)")
    # The dispatcher's calls (in this process) give up after 4 tries, about 1.5 s, not 8 (16 s):
    # the same path, a shorter outage. The workers' (Ray's processes) keep their 8.
    monkeypatch.setitem(tuner.store.db.with_retries.__kwdefaults__, "attempts", 4)
    job_id = queue(migrated_url, _merge(SLEEPS, training={"epochs": 4},
                                        budget={"n_trials": 2}))
    d = dispatcher(migrated_url)
    runner = threading.Thread(target=d.run)  # as `tuner dispatcher` runs: until stopped
    runner.start()
    try:
        wait_for(lambda: job_of(migrated_url, job_id).trials_claimed, what="a worker's ticket")
        wait_for(lambda: study_of(migrated_url, job_of(migrated_url, job_id)).get_trials(
            states=(TrialState.RUNNING,)), what="a trial in flight")
        _refuse_connections(migrated_url, True)
        try:
            wait_for(lambda: any("handing it back" in r.getMessage() for r in caplog.records),
                     timeout=90, what="the job's watch giving up")
            time.sleep(2)  # the hand-back meets the outage too
        finally:
            _refuse_connections(migrated_url, False)
            _storages.pop(migrated_url).engine.dispose()  # the test's own, its connection dropped
        wait_for(lambda: job_of(migrated_url, job_id).status == "completed", timeout=180,
                 what="the job completed")
        assert runner.is_alive()  # still claiming jobs
    finally:
        d.stop_event.set()
        runner.join(60)
    job = job_of(migrated_url, job_id)
    recs = assert_consistent_with_optuna(migrated_url, job_id)
    assert len({r.number for r in recs}) == len(recs)
    spurious = [r for r in recs if r.state == "failed" and r.stop_reason not in INFRA_FAILURES]
    assert spurious == [], [(r.number, r.stop_reason, r.detail) for r in spurious]
    assert job.n_done == 2 and job.error is None
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "crashed the dispatcher" in m], said
    assert any("the database cannot be reached" in m for m in said), said


def test_sigterm_hands_the_job_back_at_once(migrated_url: str, ray_session: str,
                                            tmp_path: Path) -> None:
    job_id = queue(migrated_url, _merge(SLEEPS, budget={"n_trials": 4}))
    env = dispatcher_env(migrated_url, ray_session, TUNER_STOP_GRACE_S="2")
    log_path = tmp_path / "dispatcher.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cli", "dispatcher"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: rows(migrated_url, job_id), timeout=180, what="a finished trial")
            job = job_of(migrated_url, job_id)
            wait_for(lambda: study_of(migrated_url, job).get_trials(
                states=(TrialState.RUNNING,)),
                what="a trial in flight")
            proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()

            def released() -> Job | None:
                j = job_of(migrated_url, job_id)
                return j if j.claimed_by is None else None

            wait_for(released, timeout=5, what="the lease handed back")
            assert time.monotonic() - t0 < 5
            assert proc.wait(60) == 0, log_path.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "SIGTERM received" not in log_path.read_text()  # Ray's handler did not run
    # A second dispatcher takes the job over at once (the lease was 10 minutes).
    d = dispatcher(migrated_url)
    t0 = time.monotonic()
    th = threading.Thread(target=d.run, kwargs={"once": True})
    th.start()
    wait_for(lambda: job_id in d.jobs_run, timeout=5, what="the second dispatcher's claim")
    assert time.monotonic() - t0 < 5
    th.join(300)
    job = job_of(migrated_url, job_id)
    assert job.status == "completed", job.error
    recs = assert_consistent_with_optuna(migrated_url, job_id)
    assert job.n_done == 4 and len({r.number for r in recs}) == len(recs)


def test_api_sigterm_closes_open_event_streams(migrated_url: str) -> None:
    """An API process with a client watching a job (the stream would stay open until the job
    ends) exits within seconds of SIGTERM."""
    from tests.test_api import free_port
    from tuner.store.auth import create_api_key, get_or_create_team
    from tuner.store.db import session_factory

    job_id = queue(migrated_url, _merge(SLOW, budget={"n_trials": 2}), team="watchers")
    with session_factory(migrated_url)() as s:
        key = create_api_key(s, get_or_create_team(s, "watchers"))
        s.commit()
    port = free_port()
    env = {**os.environ, "TUNER_DATABASE_URL": migrated_url, "TUNER_POLL_S": "0.2"}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "api", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    got: list[str] = []

    def watch() -> None:
        import httpx

        try:
            with httpx.stream("GET", f"http://127.0.0.1:{port}/v1/jobs/{job_id}/events",
                              headers={"Authorization": f"Bearer {key}"}, timeout=60) as r:
                for line in r.iter_lines():
                    got.append(line)
        except httpx.HTTPError:
            pass

    try:
        def up() -> bool:
            import httpx

            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60, what="the API")
        th = threading.Thread(target=watch, daemon=True)
        th.start()
        wait_for(lambda: any(line.startswith("event: progress") for line in got),
                 timeout=30, what="a progress event")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught (exit -15).
        assert proc.wait(20) in (0, -signal.SIGTERM)
        assert time.monotonic() - t0 < 10
        th.join(10)
        assert not th.is_alive()  # the client saw its stream end
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_api_answers_503_not_500_while_connections_drop(migrated_url: str) -> None:
    """The real app on PostgreSQL while every connection is terminated again and again: each
    answer is a success or a 503 problem document with Retry-After, never a 500."""
    if not migrated_url.startswith("postgresql"):
        pytest.skip("connection kills are a PostgreSQL fault (SQLite has no server)")
    import httpx

    from tests.test_hostile import serving
    from tuner.store.auth import create_api_key, get_or_create_team
    from tuner.store.db import session_factory

    queue(migrated_url, _merge(SLOW, budget={"n_trials": 2}), team="load")
    with session_factory(migrated_url)() as s:
        key = create_api_key(s, get_or_create_team(s, "load"))
        s.commit()
    stop, kills = threading.Event(), []
    killer = threading.Thread(target=_kill_connections, args=(migrated_url, stop, 0.05, kills))
    killer.start()
    statuses: list[int] = []
    try:
        with serving(migrated_url, "critical") as url, httpx.Client(
                base_url=url, timeout=30,
                headers={"Authorization": f"Bearer {key}"}) as c:
            for i in range(150):
                r = c.get(("/v1/jobs", "/v1/tasks", "/readyz")[i % 3])
                statuses.append(r.status_code)
                if r.status_code == 503 and not r.url.path.endswith("readyz"):
                    assert r.headers["retry-after"].isdigit()
                    assert r.headers["content-type"].startswith("application/problem+json")
                    assert "terminating connection" not in r.text  # no driver internals
    finally:
        stop.set()
        killer.join()
    assert sum(kills) >= 10, kills  # the connections really were dropped, many times
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert statuses.count(200) > len(statuses) // 2  # and it still served most requests


def test_the_client_rides_out_a_database_restart(migrated_url: str) -> None:
    """Every connection of the service's database dropped again and again for a few seconds (a
    restart, a failover) while a client reads and follows a job: the API answers 503s, and the
    client sends its reads again after each Retry-After; the event stream stays open through it
    (the server polls again; a follower allowed no reconnect gets every event), and one opened
    meanwhile waits out the 503s. None of the calls fails; no event is repeated."""
    if not migrated_url.startswith("postgresql"):
        pytest.skip("connection kills are a PostgreSQL fault (SQLite has no server)")
    from tests.test_hostile import serving
    from tuner.client import Client
    from tuner.store.auth import create_api_key, get_or_create_team
    from tuner.store.db import session_factory

    job_id = queue(migrated_url, _merge(SLOW, budget={"n_trials": 2}), team="follow")
    with session_factory(migrated_url)() as s:
        key = create_api_key(s, get_or_create_team(s, "follow"))
        s.commit()
    statuses: list[int] = []
    streams: list[list[tuple[str, dict[str, object]]]] = [[], []]
    errors: list[Exception] = []
    stop, kills = threading.Event(), []
    # the event stream polls the job 10 times a second: dozens of polls meet a dropped connection
    with serving(migrated_url, "critical", poll_s=0.1) as url, Client(url, key) as reader, \
            Client(url, key) as follower:
        reader.http.event_hooks["response"].append(lambda r: statuses.append(r.status_code))

        def follow(into: list[tuple[str, dict[str, object]]], reconnects: int) -> None:
            try:
                into.extend(follower.events(job_id, reconnects=reconnects))
            except Exception as exc:  # the test says which
                errors.append(exc)

        followers = [threading.Thread(target=follow, args=(streams[0], 0))]
        followers[0].start()
        wait_for(lambda: streams[0], 30)  # the stream is open: the job's first (queued) event
        killer = threading.Thread(target=_kill_connections, args=(migrated_url, stop, 0.05, kills))
        killer.start()
        try:
            followers.append(threading.Thread(target=follow, args=(streams[1], 3)))
            followers[1].start()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                assert reader.job(job_id)["id"] == job_id
                assert reader.jobs()["count"] == 1
        finally:
            stop.set()
            killer.join()
        assert reader.cancel(job_id)["status"] == "cancelled"  # a queued job ends at once
        for f in followers:
            f.join(60)
    assert sum(kills) >= 10, kills  # the connections really were dropped, many times
    assert 503 in statuses and set(statuses) <= {200, 202, 503}, statuses
    assert not errors, errors
    for events in streams:
        kinds = [e for e, _ in events]
        assert kinds[-1] == "end" and events[-1][1]["status"] == "cancelled", events
        seen = [repr(d) for e, d in events if e == "progress"]
        assert kinds.count("end") == 1 and len(set(seen)) == len(seen), events  # no repeats


def test_the_client_rides_out_an_api_restart(migrated_url: str) -> None:
    """The API stopped and started again at the same address (a deploy, `tuner serve`
    restarted) while a client follows a job: the stream is cut, reconnects are refused for a
    few seconds, and a read sent meanwhile finds the service down. The client, which the
    service has answered before, tries again until it is back: the follower gets every event
    once, the read its answer. A client the service never answered fails at once (a wrong
    URL is not waited for)."""
    from tests.test_api import free_port
    from tests.test_hostile import serving
    from tuner.client import ApiError, Client
    from tuner.store.auth import create_api_key, get_or_create_team
    from tuner.store.db import session_factory

    job_id = queue(migrated_url, _merge(SLOW, budget={"n_trials": 2}), team="restart")
    with session_factory(migrated_url)() as s:
        key = create_api_key(s, get_or_create_team(s, "restart"))
        s.commit()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    events: list[tuple[str, dict[str, object]]] = []
    read: list[dict[str, object]] = []
    errors: list[Exception] = []

    def run(fn: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                fn()
            except Exception as exc:  # the test says which
                errors.append(exc)
        th = threading.Thread(target=guarded, daemon=True)
        th.start()
        return th

    with Client(url, key, unavailable_s=60) as reader, \
            Client(url, key, unavailable_s=60) as follower:
        with serving(migrated_url, "critical", port=port, poll_s=0.1):
            following = run(lambda: events.extend(follower.events(job_id)))
            wait_for(lambda: events, 30)  # the stream is open: the job's first (queued) event
            assert reader.job(job_id)["status"] == "queued"
        # The service is down: its port refuses connections, the follower's stream was cut.
        with pytest.raises(ApiError, match="cannot reach"):
            Client(url, key, unavailable_s=60).job(job_id)
        reading = run(lambda: read.append(reader.job(job_id)))
        time.sleep(2)
        assert reading.is_alive() and following.is_alive() and not errors, errors
        with serving(migrated_url, "critical", port=port, poll_s=0.1):
            reading.join(30)
            assert read and read[0]["id"] == job_id, errors
            assert reader.cancel(job_id)["status"] == "cancelled"  # a queued job ends at once
            following.join(30)
    assert not errors, errors
    kinds = [e for e, _ in events]
    assert kinds[-1] == "end" and events[-1][1]["status"] == "cancelled", events
    seen = [repr(d) for e, d in events if e == "progress"]
    assert kinds.count("end") == 1 and len(set(seen)) == len(seen), events  # no repeats


def test_a_trial_whose_result_could_not_be_stored_is_an_infrastructure_failure() -> None:
    """The objective finished, then Optuna's tell failed on the database: the trial ends FAIL
    with a normal record. It is a `db_error` (run again, not counted), never the
    configuration's failure."""
    import optuna

    from tuner.attrs import ATTR_CONFIG, ATTR_RECORD
    from tuner.results import trial_record

    t = optuna.trial.create_trial(
        state=TrialState.FAIL, params={}, distributions={},
        user_attrs={ATTR_CONFIG: {"optimizer": "adam", "schedule": "constant", "params": {}},
                    ATTR_RECORD: {"stop_reason": "completed", "stop_step": 3, "steps": []}})
    rec = trial_record(t)
    assert rec.state == "failed" and rec.stop_reason in INFRA_FAILURES
    assert "could not be stored" in rec.detail
    raised = optuna.trial.create_trial(state=TrialState.FAIL, params={}, distributions={},
                                       user_attrs={ATTR_RECORD: {"stop_reason": "failed",
                                                                 "detail": "ValueError: x"}})
    assert trial_record(raised).stop_reason == "failed"  # the configuration's own failure
