"""The SQL store on SQLite and PostgreSQL: migrations, jobs, claims, trial records, outages."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from datetime import timedelta
from typing import Any

import optuna
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text

from tuner.search import run_search
from tuner.spec import JobSpec
from tuner.store.auth import create_api_key, get_or_create_team, revoke_key, team_for_key
from tuner.store.db import engine_for, session_factory
from tuner.store.jobs import (
    aware,
    claim_job,
    create_job,
    finish_job,
    get_job,
    request_cancel,
    take_ticket,
)
from tuner.store.migrate import VERSION_TABLE, include_object, upgrade
from tuner.store.models import Job, TrialRow, TrialStep, metadata, utcnow
from tuner.store.recorder import TrialRecorder
from tuner.tasks import inspect_task

SPEC = {"task": {"model": {"name": "mlp", "params": {"hidden": [16]}},
                 "dataset": {"name": "iris"}},
        "training": {"epochs": 3}, "budget": {"n_trials": 4}}


def _queue(url: str, n: int = 1, team: str = "a", **budget: Any) -> list[str]:
    spec = JobSpec.model_validate({**SPEC, "budget": {**SPEC["budget"], **budget}})
    feats = inspect_task(spec)
    ids = []
    with session_factory(url)() as s:
        t = get_or_create_team(s, team)
        for _ in range(n):
            ids.append(create_job(s, t.id, spec, feats)[0].id)
    return ids


def test_migrations_match_models_and_leave_optuna_alone(db_url: str) -> None:
    # Optuna's tables (and its own alembic_version) exist first, in the same database.
    optuna.create_study(storage=db_url, study_name="other")
    upgrade(db_url)
    upgrade(db_url)  # idempotent
    with engine_for(db_url).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "include_object": include_object, "version_table": VERSION_TABLE,
            "compare_type": True})
        diff = compare_metadata(ctx, metadata)
        assert diff == [], diff
        tables = set(inspect(conn).get_table_names())
        assert {"tuner_jobs", "tuner_trials", "tuner_trial_steps", "tuner_tasks", "tuner_teams",
                "tuner_api_keys", "tuner_recommendation_cache", "tuner_alembic_version", "trials",
                "tuner_dispatchers",
                "studies",
                "alembic_version"} <= tables
        assert conn.execute(text("select version_num from tuner_alembic_version")).scalar() == "0016"
    assert optuna.load_study(study_name="other", storage=db_url).study_name == "other"


@pytest.mark.parametrize(("revision", "training", "column", "plain_value"), [
    ("0007", {"early_stopping_patience": 2}, "early_stopping_patience", None),
    ("0008", {"precision": "bf16"}, "precision", "fp32"),
    ("0009", {"seed": 7}, "training_seed", 0),
])
def test_upgrade_reads_each_jobs_budget_part_from_its_spec(
        db_url: str, revision: str, training: dict[str, Any], column: str,
        plain_value: Any) -> None:
    """The migration that adds a part of the training budget to the jobs table (the history is
    read by it) fills it for existing jobs from the spec they were submitted with, and with the
    spec's default for a job that said nothing: early stopping patience (0007), precision
    (0008), the training seed that draws the data split (0009)."""
    from alembic import command

    from tuner.store.migrate import alembic_config

    upgrade(db_url)
    gpu = {"resources": {"gpus_per_trial": 1}} if training.get("precision") == "bf16" else {}
    spec = JobSpec.model_validate({**SPEC, "training": {"epochs": 3, **training}, **gpu})
    with session_factory(db_url)() as s:
        t = get_or_create_team(s, "a")
        asked = create_job(s, t.id, spec, inspect_task(spec))[0].id
    plain = _queue(db_url)[0]
    command.downgrade(alembic_config(db_url), f"{int(revision) - 1:04d}")
    upgrade(db_url)
    with session_factory(db_url)() as s:
        got = {j.id: getattr(j, column) for j in s.scalars(select(Job))}
    assert got == {asked: next(iter(training.values())), plain: plain_value}


def test_upgrade_records_every_earlier_job_at_the_first_training_format(db_url: str) -> None:
    """Migration 0011: the jobs of a database from before training formats were recorded all
    ran the first (1), the budget their trials are read at."""
    from alembic import command

    from tuner.store.migrate import alembic_config

    upgrade(db_url)
    job_id = _queue(db_url)[0]
    command.downgrade(alembic_config(db_url), "0010")
    with engine_for(db_url).connect() as conn:
        assert "training_format" not in {c["name"] for c in inspect(conn).get_columns(
            "tuner_jobs")}
    upgrade(db_url)
    with session_factory(db_url)() as s:
        assert s.get(Job, job_id).training_format == 1  # type: ignore[union-attr]


def test_api_keys_are_hashed_and_revocable(migrated_url: str) -> None:
    with session_factory(migrated_url)() as s:
        team = get_or_create_team(s, "vision")
        key = create_api_key(s, team, "ci")
        s.commit()
        stored = s.execute(text("select key_hash, prefix from tuner_api_keys")).one()
        assert key not in stored and stored[0] != key and key.startswith(stored[1])
        assert team_for_key(s, key).name == "vision"  # type: ignore[union-attr]
        assert team_for_key(s, key + "x") is None
        other = create_api_key(s, get_or_create_team(s, "audio"))
        assert revoke_key(s, "______") == 0  # a prefix, never a LIKE pattern
        assert revoke_key(s, "tk_%%%%%%") == 0
        assert revoke_key(s, key[:10]) == 1
        s.commit()
        assert team_for_key(s, key) is None
        assert team_for_key(s, other) is not None
        # The operator's view (`tuner admin teams`, `tuner admin keys`): keys by their shown
        # start, never the key or its hash.
        from tuner.errors import TeamNotFound
        from tuner.store.auth import list_keys, list_teams
        _queue(migrated_url, 2, team="audio")
        assert [(t["name"], t["active_keys"], t["jobs"]) for t in list_teams(s)] == [
            ("audio", 1, 2), ("vision", 0, 0)]
        assert [(k["prefix"], k["team"]) for k in list_keys(s)] == [(other[:10], "audio")]
        listed = list_keys(s, "vision", revoked=True)
        assert [(k["prefix"], k["name"]) for k in listed] == [(key[:10], "ci")]
        assert listed[0]["revoked_at"] is not None and key not in str(listed)
        with pytest.raises(TeamNotFound):
            list_keys(s, "nope")


def test_a_job_is_named_by_the_start_of_its_id_within_its_team(migrated_url: str) -> None:
    """The web UI lists jobs by the first 8 characters of their ids; the API (so the CLI)
    takes those for the job where they start exactly one of the team's job ids (it answered
    "not found"). Another team's job is not found by its start either, and a start shared by
    two of the team's jobs is refused, naming them."""
    from sqlalchemy import update

    from tuner.errors import JobIdAmbiguous, JobNotFound

    a1, a2 = _queue(migrated_url, 2, team="a")
    (b1,) = _queue(migrated_url, 1, team="b")
    with session_factory(migrated_url)() as s:  # ids chosen so that starts are shared
        for old, new in ((a1, "abcdef01" + "0" * 24), (a2, "abcdef02" + "0" * 24),
                         (b1, "abcdef03" + "0" * 24)):
            s.execute(update(Job).where(Job.id == old).values(id=new))
        s.commit()
        team_a = get_or_create_team(s, "a").id
        assert get_job(s, "abcdef01", team_a).id == "abcdef01" + "0" * 24
        with pytest.raises(JobIdAmbiguous, match=r"'abcdef0' is the start of 2 of your team's "
                                                 r"job ids \(abcdef010000…, abcdef020000…\)"):
            get_job(s, "abcdef0", team_a)
        for other in ("abcdef03", "abcdef%", "ABCDEF01", "abcdef01" + "0" * 25):
            with pytest.raises(JobNotFound):  # another team's, not hex, too long
                get_job(s, other, team_a)
        with pytest.raises(JobNotFound, match=r"job 'abcde' not found \(name a job by its id, "
                                              r"or by its first 6 characters or more\)"):
            get_job(s, "abcde", team_a)
        with pytest.raises(JobNotFound):  # without a team (the dispatcher's path): whole ids
            get_job(s, "abcdef01")


def test_idempotent_create_and_task_reuse(migrated_url: str) -> None:
    spec = JobSpec.model_validate(SPEC)
    feats = inspect_task(spec)
    assert feats.kind == "classification" and feats.n_classes == 3 and feats.depth == 2
    with session_factory(migrated_url)() as s:
        t = get_or_create_team(s, "a")
        j1, c1 = create_job(s, t.id, spec, feats, "key-1")
        j2, c2 = create_job(s, t.id, spec, feats, "key-1")
        j3, c3 = create_job(s, t.id, spec, feats, "key-2")
        assert (c1, c2, c3) == (True, False, True) and j1.id == j2.id != j3.id
        assert j1.task_id == j3.task_id  # same task fingerprint
        assert j1.study_name == f"{t.name}/{j1.task.model_name}/{j1.task.dataset_name}/job-{j1.id}"


def test_two_first_submissions_of_a_task_at_once_make_one_task(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two API processes take the first submission of a new task at once: each looks for the
    task, finds none and inserts it. The second insert breaks the unique (team, fingerprint)
    and was a 500; the job is made again and finds the task the first made. The race is made
    here by committing the other process's task between this one's lookup and its insert."""
    from tuner.store import jobs
    from tuner.store.models import Task

    spec = JobSpec.model_validate(SPEC)
    feats = inspect_task(spec)
    real = jobs.upsert_task
    raced: list[int] = []

    def racing(s: Any, team_id: int, spec: JobSpec, f: Any) -> Task:
        if not raced:
            with session_factory(migrated_url)() as other:  # the other API process
                raced.append(real(other, team_id, spec, f).id)
                other.commit()
            looked = s.scalar
            monkeypatch.setattr(s, "scalar", lambda *a, **k: (  # this one looked before it
                monkeypatch.setattr(s, "scalar", looked), None)[1], raising=False)
        return real(s, team_id, spec, f)

    monkeypatch.setattr(jobs, "upsert_task", racing)
    with session_factory(migrated_url)() as s:
        team = get_or_create_team(s, "a")
        s.commit()
        job, created = create_job(s, team.id, spec, feats)
        assert created and raced and job.task_id == raced[0]
        assert len(s.scalars(select(Task).where(Task.fingerprint == feats.fingerprint)).all()) == 1


def test_a_job_keeps_what_a_model_that_ignores_its_inputs_scores_on_its_split(
        migrated_url: str) -> None:
    """The submit check loads the job's data split and scores a model that ignores its inputs
    on its validation set; the job keeps it, and the history reads it back at the budget (its
    data split's), never another split's."""
    from tuner.datasets import load_dataset, no_skill
    from tuner.store import history as h

    made = {}
    with session_factory(migrated_url)() as s:
        team = get_or_create_team(s, "a")
        for seed in (0, 1):
            spec = JobSpec.model_validate({**SPEC, "training": {"epochs": 3, "seed": seed}})
            feats = inspect_task(spec)
            assert feats.no_skill == pytest.approx(no_skill(load_dataset("iris", {}, seed),
                                                            "val_accuracy"))
            job, _ = create_job(s, team.id, spec, feats)
            made[seed] = (job.task_id, feats.no_skill)
        task_id = made[0][0]
        assert made[1][0] == task_id  # one task, two splits
        for seed in (0, 1):
            at = h.Budget(3, 64, training_seed=seed)
            assert h.no_skill(s, [task_id], at) == pytest.approx(made[seed][1])
        assert h.no_skill(s, [task_id], h.Budget(3, 64, training_seed=2)) is None
        assert h.no_skill(s, [task_id], h.Budget(4, 64)) is None


def test_a_default_spelled_out_is_the_same_task(migrated_url: str) -> None:
    """`mlp` with `hidden: [128]` (its default) and `mlp` are one workload: one task, so the
    team's history is not split by how a spec is written (they were two tasks). A task stored
    before (keyed on its params as written) is found by them and moved to the new key, so the
    same model with its defaults left out finds it too. Other params stay another task."""
    from dataclasses import replace

    from tuner.store.models import Task

    def job(model: dict[str, Any], dataset: dict[str, Any] | None = None) -> Job:
        spec = JobSpec.model_validate({**SPEC, "task": {"model": {"name": "mlp", **model},
                                                        "dataset": {"name": "iris", **(dataset or {})}}})
        with session_factory(migrated_url)() as s:
            made, _ = create_job(s, get_or_create_team(s, "a").id, spec, inspect_task(spec))
            s.expunge(made)
            return made

    plain = job({})
    spelled = job({"params": {"hidden": [128], "dropout": 0, "activation": "relu"}},
                  {"params": {"val_fraction": 0.2}})
    assert spelled.task_id == plain.task_id
    assert job({"params": {"hidden": [64]}}).task_id != plain.task_id
    assert job({"params": {"dropout": 0.1}}).task_id != plain.task_id
    # A whole number is one number however it is written (a JavaScript client sends 5.0 as 5);
    # they were two tasks until 2026-12-07.
    noisy = job({}, {"name": "regression", "params": {"noise": 5.0}})
    assert job({}, {"name": "regression", "params": {"noise": 5}}).task_id == noisy.task_id
    assert job({}, {"name": "regression", "params": {"noise": 5.5}}).task_id != noisy.task_id
    # A task stored before the change, under its params as written: found, and re-keyed.
    old_spec = JobSpec.model_validate({**SPEC, "task": {
        "model": {"name": "mlp", "params": {"hidden": [128]}}, "dataset": {"name": "wine"}}})
    feats = inspect_task(old_spec)
    assert feats.written_fingerprint != feats.fingerprint
    with session_factory(migrated_url)() as s:
        team = get_or_create_team(s, "a")
        old, _ = create_job(s, team.id, old_spec, replace(feats, fingerprint=str(
            feats.written_fingerprint)))
        old_task = old.task_id
        again, _ = create_job(s, team.id, old_spec, feats)
        assert again.task_id == old_task
        assert s.get(Task, old_task).fingerprint == feats.fingerprint  # type: ignore[union-attr]
    plain_wine = JobSpec.model_validate({**SPEC, "task": {"model": {"name": "mlp"},
                                                          "dataset": {"name": "wine"}}})
    with session_factory(migrated_url)() as s:
        bare, _ = create_job(s, get_or_create_team(s, "a").id, plain_wine,
                             inspect_task(plain_wine))
        assert bare.task_id == old_task


def test_concurrent_claims_never_share_a_job(migrated_url: str) -> None:
    ids = set(_queue(migrated_url, 6))
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(i: int) -> None:
        sessions = session_factory(migrated_url)
        while True:
            for _ in range(20):  # SQLite may report "locked" under contention: try again
                try:
                    with sessions() as s:
                        job = claim_job(s, f"d{i}", lease_s=60)
                        if job is not None:  # run (a dispatcher claims again once it is done)
                            finish_job(s, job.id, "completed", None)
                    break
                except Exception:
                    time.sleep(0.05)
            else:
                raise AssertionError("could not claim")
            if job is None:
                return
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # every job once, none twice


def test_expired_lease_is_reclaimed_and_tickets_bound_the_budget(migrated_url: str) -> None:
    (job_id,) = _queue(migrated_url, n_trials=3)
    sessions = session_factory(migrated_url)
    t0 = utcnow()
    with sessions() as s:
        assert claim_job(s, "dead", lease_s=30, now=t0) is not None
        # The lease is held until t0 + 30 s, on the claiming dispatcher's clock.
        assert claim_job(s, "live", lease_s=60, now=t0 + timedelta(seconds=29)) is None
        job = claim_job(s, "live", lease_s=60, now=t0 + timedelta(seconds=31))
        assert job is not None and job.claimed_by == "live"
        assert [take_ticket(s, job_id) for _ in range(4)] == [True, True, True, False]
        request_cancel(s, job_id)
        assert get_job(s, job_id).cancel_requested


def test_a_claim_whose_reply_was_lost_is_claimed_again_by_its_dispatcher(
        migrated_url: str) -> None:
    """A claim that committed while the connection dropped before its reply is retried whole
    (`with_retries`); the retry takes that job again: it found nothing to claim, and the job sat
    leased to a dispatcher that never watched it (a `--once` dispatcher then quit, the job left
    `running` until its lease ran out). Another dispatcher still cannot take it."""
    (job_id,) = _queue(migrated_url)
    sessions = session_factory(migrated_url)
    t0 = utcnow()
    with sessions() as s:
        assert claim_job(s, "d1", lease_s=60, now=t0) is not None  # the reply that was lost
    with sessions() as s:
        assert claim_job(s, "d2", lease_s=60, now=t0 + timedelta(seconds=1)) is None
        job = claim_job(s, "d1", lease_s=60, now=t0 + timedelta(seconds=1))
        assert job is not None and (job.id, job.claimed_by, job.status) == (job_id, "d1",
                                                                            "running")
        assert aware(job.lease_until) == t0 + timedelta(seconds=61)  # the lease from now
        assert aware(job.started_at) == t0  # started when first claimed


def _real_trial() -> optuna.trial.FrozenTrial:
    spec = JobSpec.model_validate({**SPEC, "budget": {"n_trials": 1},
                                   "space": {"optimizers": ["adam"]}})
    return run_search(spec).study.trials[0]


def test_recorder_is_idempotent(migrated_url: str) -> None:
    (job_id,) = _queue(migrated_url)
    ft = _real_trial()
    rec = TrialRecorder(migrated_url, job_id)
    assert rec.write(ft) is True
    assert rec.write(ft) is False
    with session_factory(migrated_url)() as s:
        assert s.scalar(select(TrialRow.state)) == "complete"
        assert len(s.scalars(select(TrialStep)).all()) == 3
        job = s.get(Job, job_id)
        assert job is not None and job.n_done == 1 and job.n_complete == 1
        assert job.best_value == pytest.approx(ft.value)


def test_worker_write_survives_a_brief_database_outage(migrated_url: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """The database refuses the worker for a few seconds; its write is retried, lands once."""
    (job_id,) = _queue(migrated_url)
    ft = _real_trial()
    rec = TrialRecorder(migrated_url, job_id)
    rec.sync(optuna.create_study())  # warm the pool: the outage hits live connections
    released = threading.Event()
    if migrated_url.startswith("sqlite"):
        path = migrated_url.removeprefix("sqlite:///")
        holder = sqlite3.connect(path, timeout=1, check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")  # nobody else can write (or read, in WAL: write)

        def release() -> None:
            time.sleep(6.5)  # longer than the 5 s busy timeout: the first attempt fails
            holder.rollback()
            holder.close()
            released.set()
    else:
        db = migrated_url.rsplit("/", 1)[1]
        admin = create_engine(migrated_url.rsplit("/", 1)[0] + "/postgres",
                              isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false'))
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": db})

        def release() -> None:
            time.sleep(2.0)
            with admin.connect() as c:
                c.execute(text(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true'))
            admin.dispose()
            released.set()

    threading.Thread(target=release).start()
    with caplog.at_level(logging.WARNING, logger="tuner.store.db"):
        assert rec.write(ft) is True
    assert released.wait(10)
    assert any("retrying" in r.message for r in caplog.records), "no retry happened"
    assert rec.write(ft) is False
    with session_factory(migrated_url)() as s:
        assert s.scalar(select(TrialRow.number).where(TrialRow.job_id == job_id)) == 0
        assert len(s.scalars(select(TrialRow)).all()) == 1
        assert len(s.scalars(select(TrialStep)).all()) == 3


def test_relative_sqlite_urls_become_absolute(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.store.db import normalize_url

    monkeypatch.chdir(tmp_path)
    assert normalize_url("sqlite:///tuner.db") == f"sqlite:///{tmp_path}/tuner.db"
    assert normalize_url("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


def test_reconcile_tickets_restores_a_lost_ticket(migrated_url: str) -> None:
    from tuner.store.jobs import reconcile_tickets

    (job_id,) = _queue(migrated_url, n_trials=3)
    with session_factory(migrated_url)() as s:
        claim_job(s, "me", 60)
        assert [take_ticket(s, job_id) for _ in range(3)] == [True, True, True]
    TrialRecorder(migrated_url, job_id).write(_real_trial())  # one trial ran; two tickets lost
    with session_factory(migrated_url)() as s:
        reconcile_tickets(s, job_id)
        assert get_job(s, job_id).trials_claimed == 1
        assert take_ticket(s, job_id)


def test_the_longest_epoch_wait_is_read_at_the_jobs_pace_and_team(migrated_url: str) -> None:
    """The wait the stall check scales from before a job's first epoch: by hardware, the
    longest any trial of the task recorded at the job's pace (batch size, resources, ...), the
    job's own recorded trials included; never another pace's, another task's or another
    team's."""
    from tuner.store.trials import longest_epoch_wait, record_trial
    from tuner.trial import TrialRecord

    def job(team: str = "a", **parts: dict[str, Any]) -> Job:
        spec = JobSpec.model_validate({**SPEC, **{k: {**SPEC.get(k, {}), **v}
                                                  for k, v in parts.items()}})
        with session_factory(migrated_url)() as s:
            t = get_or_create_team(s, team)
            made = create_job(s, t.id, spec, inspect_task(spec))[0]
            s.expunge(made)
            return made

    def trials(j: Job, *waits: float | None, hardware: str = "cpu") -> None:
        with session_factory(migrated_url)() as s:
            start = len(s.scalars(select(TrialRow).where(TrialRow.job_id == j.id)).all())
            for n, w in enumerate(waits, start):
                assert record_trial(s, j.id, TrialRecord(number=n, state="complete",
                                                         optimizer="adam", longest_wait_s=w,
                                                         hardware=hardware))

    def wait(j: Job) -> dict[str, tuple[float, int]]:
        with session_factory(migrated_url)() as s:
            return longest_epoch_wait(s, s.get(Job, j.id))  # type: ignore[arg-type]

    first = job()
    trials(first, 2.0, 5.0, None)  # None: recorded before waits were measured
    smaller_batches = job(training={"batch_size": 8})
    trials(smaller_batches, 50.0)
    more_cpus = job(resources={"cpus_per_trial": 2})
    trials(more_cpus, 40.0)
    other_team = job(team="b")
    trials(other_team, 99.0)
    assert {first.task_id, smaller_batches.task_id, more_cpus.task_id} == {first.task_id}
    assert other_team.task_id != first.task_id

    new = job()
    assert wait(new) == {"cpu": (5.0, 1)}  # the first job's, at the same pace
    trials(new, 7.0)  # a dispatcher taking the new job over also reads its own trials
    assert wait(new) == {"cpu": (7.0, 2)}
    trials(first, 30.0, hardware="Tesla T4")  # another GPU model: apart
    assert wait(new) == {"cpu": (7.0, 2), "Tesla T4": (30.0, 1)}
    assert wait(smaller_batches) == {"cpu": (50.0, 1)} and wait(other_team) == {"cpu": (99.0, 1)}
    assert wait(job(resources={"cpus_per_trial": 4})) == {}  # a pace never run on this task


def test_a_configurations_first_run_out_of_memory_is_free_whatever_retried_it(
        migrated_url: str) -> None:
    """A configuration's first run out of memory in a job is the device's (packed trials share
    it): not counted, run again. That holds for a run that retried a lost worker's trial too
    (it was the first run out of memory, not the second); a later one counts and says which
    trial ran out first. Recorded through the recorder, on a real study in the database."""
    from optuna.trial import TrialState, create_trial

    from tuner.attrs import ATTR_CONFIG, ATTR_RECORD
    from tuner.store.trials import counted_failures
    from tuner.trial import OUT_OF_MEMORY, WORKER_LOST

    (job_id,) = _queue(migrated_url)
    study = optuna.create_study(storage=migrated_url, study_name=f"oom-{job_id}")
    recorder = TrialRecorder(migrated_url, job_id)

    def failed(lr: float, reason: str, retry_of: int | None = None) -> optuna.trial.FrozenTrial:
        study.add_trial(create_trial(
            state=TrialState.FAIL, user_attrs={
                ATTR_CONFIG: {"optimizer": "adam", "schedule": "constant",
                              "params": {"adam.lr": lr}},
                ATTR_RECORD: {"stop_reason": reason, "detail": f"{reason} here"}},
            system_attrs={} if retry_of is None else {"failed_trial": retry_of}))
        return study.trials[-1]

    def waiting() -> int:
        return len(study.get_trials(states=(TrialState.WAITING,)))

    lost = failed(1e-3, WORKER_LOST)
    assert recorder.write(lost, reason=WORKER_LOST, study=study) and waiting() == 1  # retried
    first = failed(1e-3, OUT_OF_MEMORY, retry_of=lost.number)  # (as the lost trial's retry)
    assert recorder.write(first, study=study) and waiting() == 2  # run again
    second = failed(1e-3, OUT_OF_MEMORY, retry_of=first.number)
    assert recorder.write(second, study=study) and waiting() == 2  # not a third time
    other = failed(1e-2, OUT_OF_MEMORY)  # another configuration's first
    assert recorder.write(other, study=study) and waiting() == 3
    with session_factory(migrated_url)() as s:
        rows = {r.number: r for r in s.scalars(select(TrialRow).where(TrialRow.job_id == job_id))}
        assert counted_failures(s, job_id) == 1  # the second alone
    assert "again" not in rows[first.number].detail and rows[first.number].retry_of == 0
    assert f"out of memory again (trial {first.number} of this job, the same configuration, " \
        "ran out of memory before)" in rows[second.number].detail
    assert "again" not in rows[other.number].detail


def test_a_trial_stopped_after_it_found_the_data_unreadable_keeps_that_reason(
        migrated_url: str) -> None:
    """When a trial cannot read the task's data the dispatcher stops the job and records the
    trials beside it `cancelled`. One that had found the data unreadable itself, its worker
    stopped after writing that but before Optuna was told (the test suite saw it once), was
    recorded `cancelled` with the data error's detail; it keeps `data_error`, while one stopped
    mid-run is `cancelled` saying why. So with a job of trials failing the same way: a trial
    that failed so itself just before the job stopped keeps `failed` (it was `cancelled` with
    its own error as the detail, in 1 of 12 runs of test_jobs' same-failure test), and so does
    one out of memory."""
    from optuna.trial import TrialState, create_trial

    from tuner.attrs import ATTR_CONFIG, ATTR_RECORD
    from tuner.store.recorder import STOPPED_FOR_DATA, STOPPED_FOR_SAME_FAILURE
    from tuner.trial import DATA_ERROR, OUT_OF_MEMORY

    (job_id,) = _queue(migrated_url)
    study = optuna.create_study(storage=migrated_url, study_name=f"data-{job_id}")
    recorder = TrialRecorder(migrated_url, job_id)
    config = {ATTR_CONFIG: {"optimizer": "adam", "schedule": "constant",
                            "params": {"adam.lr": 1e-3}}}
    found = {ATTR_RECORD: {"stop_reason": DATA_ERROR, "detail": "task.dataset: 'a.png' ..."}}
    for attrs in ({**config, **found}, config):
        study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=attrs))
        assert recorder.write(study.trials[-1], reason="cancelled", detail=STOPPED_FOR_DATA)
    with session_factory(migrated_url)() as s:
        rows = s.scalars(select(TrialRow).where(TrialRow.job_id == job_id)
                         .order_by(TrialRow.number)).all()
    assert [(r.stop_reason, r.detail) for r in rows] == [
        (DATA_ERROR, "task.dataset: 'a.png' ..."), ("cancelled", STOPPED_FOR_DATA)]
    shard = "ValueError: the team's loader lost its shard"
    for own in ("failed", OUT_OF_MEMORY, None):
        attrs = {**config, ATTR_RECORD: {"stop_reason": own, "detail": shard}} if own else config
        study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=attrs))
        assert recorder.write(study.trials[-1], reason="cancelled",
                              detail=STOPPED_FOR_SAME_FAILURE)
    with session_factory(migrated_url)() as s:
        rows = s.scalars(select(TrialRow).where(TrialRow.job_id == job_id, TrialRow.number >= 2)
                         .order_by(TrialRow.number)).all()
    assert [(r.stop_reason, r.detail) for r in rows] == [
        ("failed", shard), (OUT_OF_MEMORY, shard), ("cancelled", STOPPED_FOR_SAME_FAILURE)]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")  # ask(), here
def test_a_retry_runs_the_configuration_again_with_nothing_of_the_run_it_repeats(
        migrated_url: str) -> None:
    """A trial run again (out of memory the first time, a lost worker, a database error) keeps
    what was asked of it: its configuration, its seed, why it was enqueued. Optuna's retry
    copied every user attribute, the failed run's own too, so the retry started with that
    run's record (its steps, stop reason and detail: a retry killed before writing its own was
    recorded at once as the earlier run, its settling window skipped), its worker (a retry
    whose worker died before the objective was never seen as an orphan) and its count of batch
    heartbeats (the stall check saw no progress until the retry had beaten as often)."""
    from optuna.trial import TrialState, create_trial

    from tuner.attrs import ATTR_BEATS, ATTR_CONFIG, ATTR_RECORD, ATTR_SEED, ATTR_SWEEP, ATTR_WORKER
    from tuner.store.recorder import StaleTrialHandler
    from tuner.trial import OUT_OF_MEMORY

    (job_id,) = _queue(migrated_url)
    study = optuna.create_study(storage=migrated_url, study_name=f"retry-{job_id}")
    recorder = TrialRecorder(migrated_url, job_id)
    asked = {ATTR_CONFIG: {"optimizer": "adam", "schedule": "constant",
                           "params": {"adam.lr": 1e-3}}, ATTR_SEED: 7, ATTR_SWEEP: True}
    ran = {ATTR_RECORD: {"stop_reason": OUT_OF_MEMORY, "detail": "out of memory here",
                         "steps": [{"step": 1, "value": 0.5}], "epochs_run": 1},
           ATTR_WORKER: {"pid": 1, "task": "a-ray-task", "hardware": "cpu"}, ATTR_BEATS: 57}
    lost = study.ask()  # a worker lost under its trial, failed by the heartbeat check ...
    for key, value in {**asked, **ran}.items():
        lost.set_user_attr(key, value)
    study._storage.set_trial_state_values(lost._trial_id, TrialState.FAIL)
    StaleTrialHandler(recorder)(study, study._storage.get_trial(lost._trial_id))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={**asked, **ran}))
    assert recorder.write(study.trials[-1], study=study)  # ... and a first run out of memory
    retries = study.get_trials(states=(TrialState.WAITING,))
    assert len(retries) == 2
    for again in retries:
        assert again.user_attrs == asked, again.user_attrs

    # A retry killed before its objective wrote anything is its own trial, with no record:
    # left to its handler within the settling window, and never recorded as the run it repeats.
    killed = study.ask()  # takes the first waiting retry
    assert killed.number == retries[0].number
    study._storage.set_trial_state_values(killed._trial_id, TrialState.FAIL)
    assert recorder.sync(study, settle_s=10) == 0
    assert recorder.sync(study) == 1
    with session_factory(migrated_url)() as s:
        row = s.scalars(select(TrialRow).where(TrialRow.job_id == job_id,
                                               TrialRow.number == killed.number)).one()
    assert (row.state, row.stop_reason, row.epochs_run) == ("failed", "worker_lost", 0)
    assert "out of memory here" not in row.detail and row.retry_of == 0, row.detail


@pytest.mark.parametrize("limit", [3, 500])
def test_the_figures_from_the_stores_summaries_are_the_figures_of_every_step(
        migrated_url: str, limit: int) -> None:
    """The job page's figures as the API computes them (a summary of each trial's epochs, and
    the steps of only the trials drawn and those that moved the best so far) are the figures
    of every step read whole, NaN and infinite values included, on both databases."""
    import math

    from tuner.figures import figures_of, job_figures
    from tuner.store.trials import record_trial, step_summary, steps_of, trial_page
    from tuner.trial import StepRecord, TrialRecord

    (job_id,) = _queue(migrated_url)
    curves = [("adam", "complete", [0.2, 0.5, 0.6]), ("sgd", "pruned", [0.1, math.nan]),
              ("adam", "diverged", [0.3, math.inf]), ("rmsprop", "complete", [0.55, 0.7]),
              ("sgd", "complete", [0.65, 0.66, 0.64]), ("adam", "failed", []),
              ("rmsprop", "pruned", [0.4]), ("adam", "complete", [0.71, 0.69])]
    with session_factory(migrated_url)() as s:
        for n, (opt, state, values) in enumerate(curves):
            finite = [v for v in values if math.isfinite(v)]
            assert record_trial(s, job_id, TrialRecord(
                number=n, state=state, optimizer=opt, stop_step=len(values),
                value=max(finite) if state == "complete" else None,
                steps=[StepRecord(step=i + 1, value=v) for i, v in enumerate(values)]))
        whole = job_figures(trial_page(s, job_id, limit=100), "val_accuracy", "maximize",
                            curves_limit=limit)
        summarised = figures_of(trial_page(s, job_id, limit=100, with_steps=False),
                                step_summary(s, job_id), lambda ns: steps_of(s, job_id, ns),
                                "val_accuracy", "maximize", curves_limit=limit)
    assert summarised == whole
    # NaN and infinity are no epochs of the figures; 0.71 at epoch 12, then the last, 13
    assert whole["best_so_far"] == [[1, 0.2], [2, 0.5], [3, 0.6], [7, 0.7], [12, 0.71],
                                    [13, 0.71]]
    assert whole["epochs_consumed"] == 13 and whole["n_trials"] == 8
    assert len(whole["curves"]) == min(limit, 8)


def test_the_teams_tasks_are_paged_latest_job_first_with_counts_from_the_jobs(
        migrated_url: str) -> None:
    """`team_tasks` pages the team's tasks, the task of the latest job first (a new job moves
    its task to the top), with job counts and trial counts read from the jobs' counters; another
    team's tasks are not counted."""
    from tuner.store.queries import count_tasks, team_tasks

    def queue(hidden: int, team: str = "a") -> str:
        spec = JobSpec.model_validate({**SPEC, "task": {**SPEC["task"], "model": {
            "name": "mlp", "params": {"hidden": [hidden]}}}})
        with session_factory(migrated_url)() as s:
            job = create_job(s, get_or_create_team(s, team).id, spec, inspect_task(spec))[0]
            s.commit()
            return job.id

    jobs = [queue(h) for h in (4, 8, 16)]
    queue(32, team="b")
    again = queue(4)  # the first task's second job: it is the latest again
    with session_factory(migrated_url)() as s:
        for job_id, done, failed in ((jobs[0], 3, 1), (again, 2, 0), (jobs[2], 5, 0)):
            job = s.get(Job, job_id)
            assert job is not None
            job.n_done, job.n_failed = done, failed
        s.commit()
        team = get_or_create_team(s, "a").id
        task_of = {j: s.get(Job, j).task_id for j in jobs}  # type: ignore[union-attr]
        rows = team_tasks(s, team)
        assert [t["id"] for t in rows] == [task_of[jobs[0]], task_of[jobs[2]], task_of[jobs[1]]]
        assert [(t["n_jobs"], t["n_trials"]) for t in rows] == [(2, 6), (1, 5), (1, 0)]
        assert [t["id"] for t in team_tasks(s, team, offset=1, limit=1)] == [task_of[jobs[2]]]
        assert count_tasks(s, team) == 3


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")  # ask(), here
def test_a_trial_failed_with_no_record_is_lost_and_run_again_once_whoever_records_it(
        migrated_url: str) -> None:
    """Optuna's heartbeat check fails a stale trial, then calls its handler, which records it
    `worker_lost` (an infrastructure failure, run again). The tick's sync leaves such a trial
    to its handler for a few seconds (the handler may be another process's, writing). A trial
    whose handler met a database outage is never handed to it again (the check skips a failed
    trial): it was recorded a plain `failed` and counted against the job (seen in CI, with
    PostgreSQL's connections killed every 0.5 s). Now the sync records it lost and runs it
    again, once: a handler coming late enqueues nothing more. A trial the dispatcher failed on
    purpose says why (its mark, written before its state), and is not run again."""
    from optuna.trial import TrialState

    from tuner.attrs import ATTR_ENDED_BY
    from tuner.store.recorder import StaleTrialHandler, optuna_storage

    (job_id,) = _queue(migrated_url)
    study = optuna.create_study(storage=optuna_storage(migrated_url), study_name="race")
    recorder = TrialRecorder(migrated_url, job_id)
    handled, unhandled, cancelled = study.ask(), study.ask(), study.ask()
    study._storage.set_trial_system_attr(cancelled._trial_id, ATTR_ENDED_BY,
                                         {"reason": "cancelled", "detail": None})
    for t in (handled, unhandled, cancelled):
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # the check's write
    assert recorder.sync(study, settle_s=10) == 1  # the other process's handler may be writing
    StaleTrialHandler(recorder)(study, study._storage.get_trial(handled._trial_id))  # ... it was
    assert recorder.sync(study) == 1  # the one whose handler met an outage
    StaleTrialHandler(recorder)(study, study._storage.get_trial(unhandled._trial_id))  # late
    with session_factory(migrated_url)() as s:
        rows = {r.number: (r.state, r.stop_reason, r.detail.split(":")[0])
                for r in s.scalars(select(TrialRow).where(TrialRow.job_id == job_id))}
    assert rows == {handled.number: ("failed", "worker_lost", "worker lost"),
                    unhandled.number: ("failed", "worker_lost", "worker lost"),
                    cancelled.number: ("failed", "cancelled", "cancelled")}
    retried = sorted(optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t)
                     for t in study.get_trials(states=(TrialState.WAITING,)))
    assert retried == [handled.number, unhandled.number]  # each once; the cancelled one not


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")  # ask(), here
def test_a_failed_trial_is_run_again_once_however_often_asked(migrated_url: str) -> None:
    """`run_again` retried after its enqueue landed with the reply lost (a dropped connection)
    enqueues nothing more; a retry that fails is run again in its turn, its history growing by
    one each time (Optuna's callback appended to the failed trial's own list, so a trial read
    from the cache grew there on every call), up to the limit of three."""
    from optuna.trial import TrialState

    from tuner.store.recorder import optuna_storage, run_again

    study = optuna.create_study(storage=optuna_storage(migrated_url), study_name="again")
    first = study.ask()
    study._storage.set_trial_state_values(first._trial_id, TrialState.FAIL)
    failed = study._storage.get_trial(first._trial_id)
    run_again(study, failed)
    run_again(study, failed)  # the reply of the first was lost: asked again
    (retry,) = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert retry.system_attrs["retry_history"] == [first.number]
    assert failed.system_attrs.get("retry_history") is None  # the failed trial's own untouched
    chain = [first.number]
    for _ in range(3):
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting:
            break
        run = study.ask()  # takes the waiting retry
        assert run.number == waiting[0].number
        study._storage.set_trial_state_values(run._trial_id, TrialState.FAIL)
        again = study._storage.get_trial(run._trial_id)
        run_again(study, again)
        run_again(study, again)
        chain.append(run.number)
        assert again.system_attrs["retry_history"] == chain[:-1]
    assert len(chain) == 4 and not study.get_trials(states=(TrialState.WAITING,))  # 3 retries


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")  # ask(), here
def test_a_lost_trial_whose_records_reply_was_lost_is_still_run_again(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit of a lost trial's record lands and its reply is lost (the connection drops):
    the write is retried, finds the row and took it for another recorder's, so the trial was
    never run again (its ticket given back, a fresh sample ran instead). Now the recorder
    knows the row for its own and enqueues the retry, once."""
    from optuna.trial import TrialState
    from sqlalchemy.exc import OperationalError

    import tuner.store.recorder as recorder_module
    from tuner.store.recorder import optuna_storage

    (job_id,) = _queue(migrated_url)
    study = optuna.create_study(storage=optuna_storage(migrated_url), study_name="lost-reply")
    lost = study.ask()
    study._storage.set_trial_state_values(lost._trial_id, TrialState.FAIL)  # no record: lost
    real, replies = recorder_module.record_trial, []

    def reply_lost_once(s: Any, job: str, rec: Any) -> bool:
        wrote = real(s, job, rec)  # committed
        if not replies:
            replies.append("lost")
            raise OperationalError("COMMIT", {}, Exception(
                "terminating connection due to administrator command"))
        return wrote

    monkeypatch.setattr(recorder_module, "record_trial", reply_lost_once)
    recorded: list[int] = []
    rec = TrialRecorder(migrated_url, job_id, on_recorded=lambda r: recorded.append(r.number))
    assert rec.write(study._storage.get_trial(lost._trial_id), study=study) is True
    assert replies == ["lost"] and recorded == [lost.number]
    (retry,) = study.get_trials(states=(TrialState.WAITING,))
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == \
        lost.number
    with session_factory(migrated_url)() as s:
        assert [(r.number, r.stop_reason) for r in s.scalars(select(TrialRow))] == \
            [(lost.number, "worker_lost")]
    # Another recorder coming later (the heartbeat check's handler) does nothing more.
    assert TrialRecorder(migrated_url, job_id).write(
        study._storage.get_trial(lost._trial_id), study=study) is False
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1


def test_a_trial_heartbeat_outlives_a_dropped_connection(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Optuna's heartbeat thread writes in a bare loop: a beat that met a dropped connection
    ended it, and a trial still training went stale a grace period later, was failed as lost
    and run again from scratch. The service's storage skips such a beat and beats on."""
    from optuna.storages._heartbeat import get_heartbeat_thread
    from sqlalchemy.exc import OperationalError

    from tuner.store.recorder import optuna_storage

    beats: list[str] = []
    real = optuna.storages.RDBStorage.record_heartbeat

    def dropped_once(self: optuna.storages.RDBStorage, trial_id: int) -> None:
        if not beats:
            beats.append("dropped")
            raise OperationalError("UPDATE trial_heartbeats", {},
                                   Exception("terminating connection due to administrator "
                                             "command"))
        beats.append("written")
        real(self, trial_id)

    storage = optuna_storage(migrated_url, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage, study_name="beats")
    trial = study.ask()
    monkeypatch.setattr(optuna.storages.RDBStorage, "record_heartbeat", dropped_once)
    with get_heartbeat_thread(trial._trial_id, storage):
        time.sleep(3.5)
    assert beats[0] == "dropped" and beats.count("written") >= 2, beats
    assert storage._get_stale_trial_ids(study._study_id) == []  # alive: not failed as lost


def test_a_trials_error_with_a_nul_character_is_stored(migrated_url: str) -> None:
    """A team's error whose message holds a NUL character (bytes decoded as text): PostgreSQL's
    text cannot store one, and the trial's record could not be written (its job never
    finished counting it). Stored with the NUL shown as \\x00, on both databases."""
    from tuner.store.trials import record_trial, trial_page
    from tuner.trial import TrialRecord

    (job_id,) = _queue(migrated_url)
    with session_factory(migrated_url)() as s:
        assert record_trial(s, job_id, TrialRecord(
            number=0, state="failed", stop_reason="failed", optimizer="adam",
            detail="ValueError: bad\x00byte",
            traceback="Traceback (most recent call last):\nValueError: bad\x00byte\n"))
        (t,) = trial_page(s, job_id)
    assert t["detail"] == "ValueError: bad\\x00byte"
    assert t["traceback"].endswith("ValueError: bad\\x00byte\n")
    # and the job's error, which says its trials' (`all 1 trials failed: ValueError: bad...`)
    from sqlalchemy import update

    from tuner.store.models import Job

    with session_factory(migrated_url)() as s:
        s.execute(update(Job).where(Job.id == job_id).values(error="all failed: bad\x00byte"))
        s.commit()
        assert s.get(Job, job_id).error == "all failed: bad\\x00byte"  # type: ignore[union-attr]


def test_a_trial_that_never_ran_does_not_make_its_family_tried(migrated_url: str) -> None:
    """A cancelled job fails its defaults-sweep trials that never started, and a lost worker's
    trial may end before its first epoch: neither ran, and its family is not "tried, 1 failed"
    in the answer (`unfinished_families`). A trial that failed by its own error before its
    first epoch is evidence, and one cancelled after an epoch ran, so both count."""
    from tuner.store import history as h
    from tuner.store.models import Job as JobRow
    from tuner.store.trials import record_trial
    from tuner.trial import TrialRecord

    (job_id,) = _queue(migrated_url)
    ended = [("nadam", "cancelled", 0), ("nesterov", "worker_lost", 0), ("sgd", "failed", 0),
             ("adam", "cancelled", 2), ("rmsprop", "db_error", 0), ("radam", None, 0)]
    with session_factory(migrated_url)() as s:
        for n, (opt, reason, epochs) in enumerate(ended):
            assert record_trial(s, job_id, TrialRecord(
                number=n, state="failed", stop_reason=reason, optimizer=opt, schedule="constant",
                epochs_run=epochs, stop_step=epochs))
        s.commit()
        task_id = s.get(JobRow, job_id).task_id
        tried = h.unfinished_families(s, [task_id], "maximize")
    assert set(tried) == {"sgd", "adam", "radam"}, tried  # (a row with no stop reason counts)
    # ... and adam's, cancelled with its job after 2 epochs, is said to be interrupted, not
    # failed (it read "1 failed (stopped by epoch 26)" of a trial the team cancelled)
    from tuner.recommend import how_ended

    assert (tried["adam"]["n_failed"], tried["adam"]["n_interrupted"]) == (1, 1)
    assert (how_ended(tried["adam"]), how_ended(tried["sgd"])) == ("1 interrupted", "1 failed")
