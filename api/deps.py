"""Request dependencies: a database session and the caller's team (from its API key)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import ApiProblem
from tuner.errors import choices
from tuner.store.auth import TeamRef, hash_key, team_ref_for_key
from tuner.store.db import transient
from tuner.store.jobs import get_job
from tuner.store.models import Job


def get_session(request: Request) -> Iterator[Session]:
    session = request.app.state.sessions()
    try:
        yield session
    finally:
        try:
            session.close()
        except Exception as exc:
            # The database dropped the connection after the answer was sent (closing rolls
            # back on it): nothing is lost, and the client keeps its answer and connection.
            if not transient(exc):
                raise


SessionDep = Annotated[Session, Depends(get_session)]


def _query_names(route: APIRoute) -> frozenset[str]:
    """The query parameters the route and its dependencies declare (a walk of a few objects:
    a route is not hashable, so not cached)."""
    names: set[str] = set()
    todo = [route.dependant]
    while todo:
        dependant = todo.pop()
        names.update(p.alias for p in dependant.query_params)
        todo.extend(dependant.dependencies)
    return frozenset(names)


def known_query(request: Request) -> None:
    """A query parameter the route does not read is refused (422), named, with those it reads:
    a typo was ignored, so `?task=1&epoch=5` answered at the task's default budget, not at 5
    epochs, and said nothing of it."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _query_names(route)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        valid = f"valid choices: {choices(allowed)}" if allowed else "this endpoint takes none"
        errors = [{"field": name, "message": f"unknown query parameter; {valid}"}
                  for name in unknown]
        raise ApiProblem(422, "Invalid request",
                         "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors)


_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer tk_...`")


class KeyCache:
    """Teams of the API keys this process has seen, each kept `ttl` seconds: most requests skip
    the key's database round trip. Unknown keys are never cached (a key created a moment ago
    works at once); a revoked one is refused within `ttl`. Bounded: cleared when full."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl, self.size = ttl, size
        self._teams: dict[str, tuple[TeamRef, float]] = {}

    def team(self, session: Session, key: str) -> TeamRef | None:
        if self.ttl <= 0:
            return team_ref_for_key(session, key)
        now = time.monotonic()
        digest = hash_key(key)  # no plaintext key kept in memory
        hit = self._teams.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        team = team_ref_for_key(session, key)
        if team is None:
            self._teams.pop(digest, None)
            return None
        if len(self._teams) >= self.size:
            self._teams.clear()
        self._teams[digest] = (team, now + self.ttl)
        return team


def current_team(request: Request, session: SessionDep,
                 creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
                 ) -> TeamRef:
    """The team of the API key; 401 when it is missing, unknown or revoked."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise ApiProblem(401, "Unauthorized", "missing API key: send Authorization: Bearer <key>",
                         headers=challenge)
    keys: KeyCache = request.app.state.keys
    team = keys.team(session, creds.credentials)
    if team is None:
        raise ApiProblem(401, "Unauthorized", "invalid or revoked API key", headers=challenge)
    return team


CurrentTeam = Annotated[TeamRef, Depends(current_team)]


def team_job(job_id: Annotated[str, Path(
        max_length=64, description="the job's id, or its first 6 characters or more where they "
                                   "start one of your team's job ids and no other")],
        team: CurrentTeam, session: SessionDep) -> Job:
    """The job if it is the caller's team's; otherwise 404, exactly like a missing one."""
    return get_job(session, job_id, team.id)


TeamJob = Annotated[Job, Depends(team_job)]
