"""Tasks and recommendations from the team's history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from api.deps import CurrentTeam, SessionDep, known_query
from api.errors import ApiProblem
from api.schemas import LearningRates, RecommendationPublic, TasksPublic
from tuner.recommendations import cached_json, learning_rates, recommend
from tuner.spec import INT64_MAX, METRICS, Precision
from tuner.store.models import ID_MAX
from tuner.store.queries import count_tasks, team_tasks

router = APIRouter(prefix="/v1", tags=["tasks"], dependencies=[Depends(known_query)])


@router.get("/tasks", response_model=TasksPublic)
def read_tasks(team: CurrentTeam, session: SessionDep,
               offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
               limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """A page of the team's tasks, the latest job's first, with their job and trial counts;
    `count`: all of the team's tasks."""
    return {"data": team_tasks(session, team.id, offset=offset, limit=limit),
            "count": count_tasks(session, team.id)}


@router.get("/recommendations", response_model=RecommendationPublic,
            response_model_exclude_unset=True)  # the answer as computed, as the cache serves it
def read_recommendations(
    team: CurrentTeam, session: SessionDep,
    task: Annotated[int | None, Query(ge=1, le=ID_MAX, description="task id")] = None,
    model: Annotated[str | None, Query(description="model name")] = None,
    dataset: Annotated[str | None, Query(description="dataset name")] = None,
    metric: Annotated[str | None, Query(description=" | ".join(METRICS))] = None,
    epochs: Annotated[int | None, Query(ge=1, le=1000, description=(
        "training budget asked about (default: the latest with trials)"))] = None,
    batch_size: Annotated[int | None, Query(ge=1, le=65536)] = None,
    early_stopping_patience: Annotated[int | None, Query(ge=0, le=1000, description=(
        "part of the training budget: 0 asks about training without early stopping"))] = None,
    precision: Annotated[Precision | None, Query(description=(
        "part of the training budget: the precision the jobs asked for"))] = None,
    training_seed: Annotated[int | None, Query(ge=0, le=2**31 - 1, description=(
        "part of the training budget: the jobs' training.seed, which draws the data split"))
    ] = None,
) -> dict[str, Any] | Response:
    """Optimizer families ranked for a task at one training budget: from the team's own
    history, else the read-only reference corpus, else literature defaults (`prior`)."""
    if task is None and not (model and dataset):
        raise ApiProblem(422, "Invalid request", "give task=<id>, or model and dataset",
                         [{"field": f, "message": "required without task"}
                          for f, v in (("model", model), ("dataset", dataset)) if not v])
    if metric is not None and metric not in METRICS:
        said = f"unknown {metric!r}; valid choices: {', '.join(METRICS)}"
        raise ApiProblem(422, "Invalid request", f"metric: {said}",
                         [{"field": "metric", "message": said}])
    if task is not None and model is None and dataset is None:
        # A current cached answer is served as stored: one query, no re-validation.
        raw = cached_json(session, team.id, task, metric=metric, epochs=epochs,
                          batch_size=batch_size, early_stopping_patience=early_stopping_patience,
                          precision=precision, training_seed=training_seed)
        if raw is not None:
            return Response(raw, media_type="application/json")
    return recommend(session, team.id, task_id=task, model=model, dataset=dataset, metric=metric,
                     epochs=epochs, batch_size=batch_size,
                     early_stopping_patience=early_stopping_patience, precision=precision,
                     training_seed=training_seed)


@router.get("/tasks/{task_id}/learning-rates", response_model=LearningRates)
def read_learning_rates(
    task_id: Annotated[int, Path(ge=1, le=ID_MAX)], team: CurrentTeam, session: SessionDep,
    epochs: Annotated[int | None, Query(ge=1, le=1000)] = None,
    batch_size: Annotated[int | None, Query(ge=1, le=65536)] = None,
    early_stopping_patience: Annotated[int | None, Query(ge=0, le=1000)] = None,
    precision: Annotated[Precision | None, Query()] = None,
    training_seed: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> dict[str, Any]:
    """Every complete trial of the task at one budget (the recommendation's by default) as
    [learning rate, value] per family: how robust each family is to its learning rate."""
    return learning_rates(session, team.id, task_id, epochs=epochs, batch_size=batch_size,
                          early_stopping_patience=early_stopping_patience, precision=precision,
                          training_seed=training_seed)
