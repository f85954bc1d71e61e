"""Registry, default space, health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import CurrentTeam
from api.schemas import RegistryEntry
from tuner.registry import DATASETS, MODELS, Registry
from tuner.space import default_space_json
from tuner.store.migrate import schema_problem

router = APIRouter(tags=["meta"])


def _entries(reg: Registry) -> list[dict[str, str]]:
    return [{"name": e.name, "source": e.source, "help": e.help}
            for e in sorted(reg.entries().values(), key=lambda e: e.name)]


@router.get("/v1/models", response_model=list[RegistryEntry])
def read_models(team: CurrentTeam) -> list[dict[str, str]]:
    """Registered models (built-ins and installed plugins)."""
    return _entries(MODELS)


@router.get("/v1/datasets", response_model=list[RegistryEntry])
def read_datasets(team: CurrentTeam) -> list[dict[str, str]]:
    """Registered datasets (built-ins and installed plugins)."""
    return _entries(DATASETS)


@router.get("/v1/space")
def read_space(team: CurrentTeam) -> dict[str, Any]:
    """The default search space: families and schedules with their parameters."""
    return default_space_json()


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and has this version's tables (a deploy whose migrate
    step has not run is not ready, and says what to run)."""
    try:
        with request.app.state.sessions() as s:
            problem = schema_problem(s.connection(), request.app.state.database_url)
    except Exception as exc:
        problem = str(exc).splitlines()[0]
    if problem:
        return JSONResponse({"status": "unavailable", "detail": problem}, status_code=503)
    return JSONResponse({"status": "ok"})
