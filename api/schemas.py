"""Response schemas (`XPublic`, list wrappers `XsPublic(data, count)`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tuner.trial import StepRecord, TrialRecord


class JobLinks(BaseModel):
    self: str
    trials: str
    events: str
    cancel: str


class Progress(BaseModel):
    n_trials: int
    n_confirm: int
    done: int
    running: int
    complete: int
    pruned: int
    diverged: int
    failed: int
    best_value: float | None


class JobBrief(BaseModel):
    id: str
    status: str
    error: str | None
    task: dict[str, Any]
    progress: Progress
    confirmation: dict[str, Any]
    budget: dict[str, Any]
    notes: list[str] = Field(default_factory=list, description=(
        "what the service decided that the spec does not say: the defaults sweep's families "
        "and their order, and the families the budget leaves to the sampler"))
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    links: JobLinks


class JobPublic(JobBrief):
    study_name: str
    best: dict[str, Any] | None
    by_optimizer: list[dict[str, Any]]
    spec: dict[str, Any]


class JobsPublic(BaseModel):
    data: list[JobBrief]
    count: int


class TrialPublic(TrialRecord):
    """The trial contract (tuner.trial) as the API answers it."""

    steps: list[StepRecord] | None = None  # type: ignore[assignment]  # None with steps=false


class TrialsPublic(BaseModel):
    data: list[TrialPublic]
    count: int


class TasksPublic(BaseModel):
    data: list[dict[str, Any]]
    count: int


class RecommendationPublic(BaseModel):
    model_config = ConfigDict(extra="allow")

    method: str
    ranking: list[dict[str, Any]]
    tasks: list[dict[str, Any]]


class RegistryEntry(BaseModel):
    name: str
    source: str
    help: str
