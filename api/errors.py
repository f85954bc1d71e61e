"""One error shape for every failure: RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from optuna.exceptions import StorageInternalError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuner.digests import DataPending
from tuner.errors import DataError, ModelError, NotFound, SpecError, TunerError
from tuner.spec import error_message
from tuner.store.db import schema_missing, transient

PROBLEM = "application/problem+json"
RETRY_AFTER_S = 2
DIGEST_RETRY_AFTER_S = 1  # the request itself has waited `digest_wait_s`
log = logging.getLogger(__name__)


class ApiProblem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str,
                 errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.errors, self.headers = errors, headers


def problem(request: Request, status: int, title: str, detail: str,
            errors: list[dict[str, str]] | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status,
                            "detail": detail, "instance": request.url.path, **extra}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _unexpected_answer(request: Request, exc: Exception) -> JSONResponse:
    if schema_missing(exc):  # a deploy whose migrate step has not run (yet): /readyz says more
        log.error("the database lacks a table or column on %s %s (run `tuner db upgrade`): %s",
                  request.method, request.url.path, str(exc).splitlines()[0])
        return problem(request, 503, "Service unavailable",
                       "the database has no service tables, or older ones than this version of "
                       "the service reads: its operator must run `tuner db upgrade`",
                       headers={"Retry-After": str(RETRY_AFTER_S)})
    if transient(exc):  # the database is down or restarting: come back shortly
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return problem(request, 503, "Service unavailable",
                       "the database is unavailable; retry shortly",
                       headers={"Retry-After": str(RETRY_AFTER_S)})
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "Internal server error", "an unexpected error; it has been logged")


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem(request, exc.status, exc.title, exc.detail, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(tuple(e["loc"])), "message": error_message(e)}
                  for e in exc.errors()]
        sent = request.headers.get("content-type", "").split(";")[0].strip()
        if any(e["field"] == "body" for e in errors) and not sent.endswith("json"):
            # FastAPI reads only JSON bodies: YAML or a form arrives as a string
            errors = [{"field": "body", "message": "a job spec is a JSON object sent as "
                                                  "Content-Type: application/json, not "
                                                  f"{sent or 'no content type'}"}]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(request, 422, "Invalid request", detail, errors)

    @app.exception_handler(SpecError)
    async def _spec(request: Request, exc: SpecError) -> JSONResponse:
        return problem(request, 422, "Invalid job spec", str(exc),
                       [{"field": exc.field, "message": exc.message}])

    @app.exception_handler(DataPending)
    async def _reading(request: Request, exc: DataPending) -> JSONResponse:
        # The team's data is being read or loaded for the first time (`tuner.digests`):
        # nothing was created; the same submission sent again finds it further on, or done.
        return problem(request, 503, "Still preparing your data", str(exc),
                       headers={"Retry-After": str(DIGEST_RETRY_AFTER_S)},
                       progress=exc.progress())

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return problem(request, 404, "Not found", str(exc))

    @app.exception_handler(TunerError)
    async def _tuner(request: Request, exc: TunerError) -> JSONResponse:
        status = 422 if isinstance(exc, DataError | ModelError) else 400
        return problem(request, status, "Bad request", str(exc))

    @app.exception_handler(ValidationError)
    async def _model_validation(request: Request, exc: ValidationError) -> JSONResponse:
        # A spec built inside a route (e.g. a recommendation's task) that does not validate.
        errors = [{"field": ".".join(str(p) for p in e["loc"]) or "query",
                   "message": str(e["msg"]).removeprefix("Value error, ")} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem(request, 422, "Invalid request", detail, errors)

    # Database errors are handled like the library's (the connection stays open); anything else
    # reaches the catch-all below, whose answer Starlette sends before re-raising it to the
    # server's log.
    @app.exception_handler(DBAPIError)
    @app.exception_handler(StorageInternalError)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        return _unexpected_answer(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _unexpected_answer(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(request, exc.status_code, str(exc.detail), str(exc.detail),
                       headers=getattr(exc, "headers", None))
