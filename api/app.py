"""The FastAPI application: thin routes over the store; it never trains."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

from api import errors, metrics
from api.deps import KeyCache
from api.routes import jobs, meta, tasks, ui
from api.schemas import Problem
from tuner import __version__
from tuner.config import Settings, get_settings
from tuner.store.db import session_factory

MAX_BODY_BYTES = 256 * 1024

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                   Awaitable[None]]


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, before anything is parsed."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            size = headers.get(b"content-length")
            if size is not None and size.isdigit() and int(size) > self.limit:
                await _too_large(scope, send, self.limit)
                return
            seen = 0

            async def limited() -> Any:
                nonlocal seen
                msg = await receive()
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
                return msg

            try:
                await self.app(scope, limited, send)
            except _BodyTooLarge:
                await _too_large(scope, send, self.limit)
            return
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class RejectNul:
    """NUL characters in a path or query string never reach a route (PostgreSQL cannot compare
    them): a path with one names nothing (404), a query with one is invalid (422)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] == "http":
            raw = (scope.get("raw_path") or b"").lower()
            query = (scope.get("query_string") or b"").lower()
            if "\x00" in scope.get("path", "") or b"%00" in raw:
                await _problem(scope, send, 404, "Not found", "no such resource")
                return
            if b"%00" in query or b"\x00" in query:
                await _problem(scope, send, 422, "Invalid request",
                               "query: NUL characters are not allowed")
                return
        await self.app(scope, receive, send)


async def _too_large(scope: Scope, send: Callable[[Any], Awaitable[None]], limit: int) -> None:
    await _problem(scope, send, 413, "Payload too large", f"request body over {limit} bytes")


async def _problem(scope: Scope, send: Callable[[Any], Awaitable[None]], status: int, title: str,
                   detail: str) -> None:
    """A problem document sent from an ASGI middleware (before any route runs)."""
    import json

    body = json.dumps({"type": "about:blank", "title": title, "status": status,
                       "detail": detail,
                       "instance": scope.get("path", "").replace("\x00", "")}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


PROBLEM_STATUSES = {400: "the body is not JSON", 401: "missing or unknown API key",
                    404: "no such job or task in your team",
                    409: "Idempotency-Key reused with another spec",
                    413: "request body over 256 KiB",
                    422: "invalid input: `errors` names each field and its valid choices",
                    503: "database unavailable, or its tables not yet migrated to this "
                         "version: retry after `Retry-After` seconds"}
NAMES_A_TASK = {"/v1/recommendations"}  # `task=` in the query: 404 when not the team's
SUBMIT_503 = ("database unavailable, or the team's data still being prepared for the first time "
              "(`progress`): send it again, with the same Idempotency-Key, after `Retry-After` "
              "seconds")


def _problem_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document with every error answer as what the service sends: a problem
    document under `application/problem+json` (FastAPI documents only its own 422 shape, as
    application/json)."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version,
                              description=app.description, routes=app.routes)
            problem = {"$ref": "#/components/schemas/Problem"}
            for path, item in doc.get("paths", {}).items():
                if not path.startswith("/v1/"):
                    continue
                for op in item.values():
                    responses = op.setdefault("responses", {})
                    for status, what in PROBLEM_STATUSES.items():
                        if status == 409 and "Idempotency-Key" not in str(op.get("parameters")):
                            continue
                        if status in (400, 413) and "requestBody" not in op:
                            continue
                        if status == 404 and "{" not in path and path not in NAMES_A_TASK:
                            continue
                        submit = status == 503 and path == "/v1/jobs" and "requestBody" in op
                        responses[str(status)] = {
                            "description": SUBMIT_503 if submit else what,
                            "content": {"application/problem+json": {"schema": problem}}}
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            app.openapi_schema = doc
        return app.openapi_schema

    return openapi


def create_app(database_url: str | None = None, settings: Settings | None = None) -> FastAPI:
    """The API over the database at `database_url` (default: TUNER_DATABASE_URL)."""
    settings = settings or get_settings()
    app = FastAPI(title="Optimizer tuning service", version=__version__,
                  description="Submit tuning jobs, follow them, read every trial's pruning "
                              "history, and ask which optimizer is best for a task. Pages "
                              "for people: /ui.",
                  docs_url=None, redoc_url=None)  # /docs: api.routes.ui, with bundled assets
    app.state.settings = settings
    app.state.keys = KeyCache(settings.key_cache_s)
    app.state.database_url = database_url or settings.database_url
    app.state.sessions = session_factory(app.state.database_url)
    errors.install(app)
    metrics.install(app)
    app.include_router(jobs.router)
    app.include_router(tasks.router)
    app.include_router(meta.router)
    ui.install(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(RejectNul)
    app.openapi = _problem_openapi(app)  # type: ignore[method-assign]
    return app
