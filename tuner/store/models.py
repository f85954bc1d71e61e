"""Service tables (SQLAlchemy 2.0 typed). Optuna's own tables live in the same database; ours are
prefixed `tuner_` so the two never collide (Optuna owns `trials`, `studies`, `alembic_version`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

PREFIX = "tuner_"


class NulFreeText(TypeDecorator[str]):
    """Text written from errors (a trial's detail and traceback, a job's error): a NUL
    character, which PostgreSQL's text type refuses ("cannot contain NUL (0x00) bytes", and
    the trial's record was never written), is stored as the four characters `\\x00`. The
    column is plain TEXT."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return value.replace("\x00", "\\x00") if value is not None else None

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


# Ids are 32-bit integer columns: the API refuses larger ones as invalid, never as a 500.
ID_MAX = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class Team(Base):
    __tablename__ = "tuner_teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key, stored as its SHA-256 (keys are random 256-bit tokens, so a fast hash is
    safe); `prefix` is shown to people to tell keys apart."""

    __tablename__ = "tuner_api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("tuner_teams.id", ondelete="CASCADE"),
                                         index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Task(Base):
    """(model ref, dataset ref, metric) of a team, with the features used to find similar tasks."""

    __tablename__ = "tuner_tasks"
    __table_args__ = (UniqueConstraint("team_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("tuner_teams.id", ondelete="CASCADE"),
                                         index=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    model_name: Mapped[str] = mapped_column(String(100))
    model_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dataset_name: Mapped[str] = mapped_column(String(100))
    dataset_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metric: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))  # classification | regression
    n_params: Mapped[int] = mapped_column(Integer)
    depth: Mapped[int] = mapped_column(Integer)
    input_shape: Mapped[list[Any]] = mapped_column(default=list)
    n_train: Mapped[int] = mapped_column(Integer)
    n_classes: Mapped[int | None] = mapped_column(Integer, default=None)
    batch_size: Mapped[int] = mapped_column(Integer)
    epochs: Mapped[int] = mapped_column(Integer)
    # The team's own data (a file or folder) and `hf:` model folder: the digests of their bytes
    # (`tuner.datasets.data_digest`); the team's plugins (model, dataset, trainable): the digest
    # of their code (`tuner.registry`). All part of the fingerprint. None: built-in data or
    # models, a trainable's own data, or a task stored before digests were kept (migration 0010).
    data_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    model_digest: Mapped[str | None] = mapped_column(String(64), default=None)  # an hf: folder's
    code_digest: Mapped[str | None] = mapped_column(String(64), default=None)  # plugins, libraries
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bumped in the transaction that records a trial of the task: what a cached recommendation
    # was computed from (see RecommendationCache).
    history_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class RecommendationCache(Base):
    """A computed recommendation, valid while `version` still describes the history it was
    computed from (the matched tasks' history_version, and for answers from other tasks, the
    team's). Written on the first read after a change, so many readers cost one computation."""

    __tablename__ = "tuner_recommendation_cache"

    key: Mapped[str] = mapped_column(String(600), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("tuner_teams.id", ondelete="CASCADE"),
                                         index=True)
    version: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]] = mapped_column()
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


JOB_STATUSES = ("queued", "running", "completed", "failed", "cancelled")
FINAL_STATUSES = ("completed", "failed", "cancelled")


class Job(Base):
    __tablename__ = "tuner_jobs"
    __table_args__ = (
        UniqueConstraint("team_id", "idempotency_key"),
        Index("ix_tuner_jobs_status_created", "status", "created_at"),
        Index("ix_tuner_jobs_task_budget", "task_id", "epochs", "batch_size"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("tuner_teams.id", ondelete="CASCADE"),
                                         index=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tuner_tasks.id"), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column()
    # The training budget its trials ran under: a configuration is only a repeat of another
    # trained for the same epochs and batch size, with the same early stopping patience (a run
    # stopped early is cut short; recommendations are per budget) and precision.
    epochs: Mapped[int | None] = mapped_column(Integer, default=None)
    batch_size: Mapped[int | None] = mapped_column(Integer, default=None)
    early_stopping_patience: Mapped[int | None] = mapped_column(Integer, default=None)
    # The precision its spec asked for (fp32, bf16): a bf16 run is not a repeat of an fp32 one.
    precision: Mapped[str] = mapped_column(String(8), default="fp32", server_default="fp32")
    # Its spec's training.seed, which draws the data split: runs under another seed are
    # measured on another validation set, so they are neither repeats nor comparable.
    training_seed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The service's training code it ran (tuner.spec.TRAINING_FORMAT): runs of another release's
    # loop, models or data preparation are not repeats of this one's.
    training_format: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # What a model that ignores its inputs scores on this job's validation set (its data
    # split): the bar an answer's best family must clear to have learned anything (null where
    # not known: a team's own loop, jobs before revision 0015).
    no_skill: Mapped[float | None] = mapped_column(Float, default=None)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(NulFreeText, default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    study_name: Mapped[str] = mapped_column(String(512))  # Optuna's own limit
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Which dispatcher holds the job, until when (a dead dispatcher's lease runs out).
    claimed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Trial budget tickets taken by workers (returned when a trial fails, so it is retried).
    trials_claimed: Mapped[int] = mapped_column(Integer, default=0)
    # The confirmation race after the search (tuner.confirm): runs reserved out of the spec's
    # n_trials (n_trials above is the search's share), runs added so far, and how it ended.
    confirm_budget: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    n_confirm: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    confirm_note: Mapped[str | None] = mapped_column(NulFreeText, default=None)
    # What the service decided that the spec does not say (tuner.search.SweepPlan.notes): set at
    # submit, and again by the dispatcher when it orders the sweep from the team's history.
    notes: Mapped[list[Any] | None] = mapped_column(default=None)
    # Progress counters, recomputed from tuner_trials in the transaction that writes a trial.
    n_trials: Mapped[int] = mapped_column(Integer)
    n_done: Mapped[int] = mapped_column(Integer, default=0)
    n_running: Mapped[int] = mapped_column(Integer, default=0)
    n_complete: Mapped[int] = mapped_column(Integer, default=0)
    n_pruned: Mapped[int] = mapped_column(Integer, default=0)
    n_diverged: Mapped[int] = mapped_column(Integer, default=0)
    n_failed: Mapped[int] = mapped_column(Integer, default=0)
    best_value: Mapped[float | None] = mapped_column(Float, default=None)
    best_trial_number: Mapped[int | None] = mapped_column(Integer, default=None)

    task: Mapped[Task] = relationship(lazy="joined")


TRIAL_STATES = ("complete", "pruned", "diverged", "failed")


class TrialRow(Base):
    __tablename__ = "tuner_trials"
    __table_args__ = (
        UniqueConstraint("job_id", "number"),
        Index("ix_tuner_trials_job_state", "job_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("tuner_jobs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    optimizer: Mapped[str | None] = mapped_column(String(32), default=None)
    schedule: Mapped[str | None] = mapped_column(String(32), default=None)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float, default=None)
    stop_step: Mapped[int] = mapped_column(Integer, default=0)
    stop_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    epochs_run: Mapped[int] = mapped_column(Integer, default=0)
    seconds_per_epoch: Mapped[float] = mapped_column(Float, default=0.0)
    longest_wait_s: Mapped[float | None] = mapped_column(Float, default=None)
    state_bytes_per_param: Mapped[float] = mapped_column(Float, default=0.0)
    device: Mapped[str | None] = mapped_column(String(32), default=None)
    hardware: Mapped[str | None] = mapped_column(String(100), default=None)
    detail: Mapped[str] = mapped_column(NulFreeText, default="")
    traceback: Mapped[str | None] = mapped_column(NulFreeText, default=None)
    defaults_sweep: Mapped[bool] = mapped_column(Boolean, default=False)
    warm_start: Mapped[bool] = mapped_column(Boolean, default=False)
    baseline: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    retry_of: Mapped[int | None] = mapped_column(Integer, default=None)
    # The training seed, and for a confirmation run the trial whose configuration it repeats.
    seed: Mapped[int | None] = mapped_column(Integer, default=None)
    confirm_of: Mapped[int | None] = mapped_column(Integer, default=None)
    # Same optimizer, schedule and params <=> same key (groups a configuration's seeds).
    config_key: Mapped[str | None] = mapped_column(String(16), default=None, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    steps: Mapped[list[TrialStep]] = relationship(
        order_by="TrialStep.step", cascade="all, delete-orphan", lazy="selectin")


class TrialStep(Base):
    """One epoch of a trial: the pruning history."""

    __tablename__ = "tuner_trial_steps"
    __table_args__ = (UniqueConstraint("trial_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("tuner_trials.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float, default=None)
    best_value: Mapped[float | None] = mapped_column(Float, default=None)
    train_loss: Mapped[float | None] = mapped_column(Float, default=None)
    val_loss: Mapped[float | None] = mapped_column(Float, default=None)
    lr: Mapped[float | None] = mapped_column(Float, default=None)
    elapsed_s: Mapped[float | None] = mapped_column(Float, default=None)


class DispatcherRecord(Base):
    """A dispatcher process, as it last said of itself: what tells a queued job's submitter
    whether anything will run it (`tuner.store.dispatchers`). `seen_at` moves on while it runs
    (claiming, or watching a job); a stop or a crash is written as it ends. One row per process
    (`owner`, as its job leases name it); ended rows are pruned after a week."""

    __tablename__ = "tuner_dispatchers"

    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # running | stopped | crashed
    state: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str | None] = mapped_column(NulFreeText, default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
