"""Request dependencies: a database session and the caller's team (from its API key)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import ApiProblem
from tuner.store.auth import team_for_key
from tuner.store.db import transient
from tuner.store.jobs import get_job
from tuner.store.models import Job, Team


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
_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer tk_...`")


def current_team(session: SessionDep, creds: Annotated[HTTPAuthorizationCredentials | None,
                                                      Depends(_bearer)]) -> Team:
    """The team of the API key; 401 when it is missing, unknown or revoked."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise ApiProblem(401, "Unauthorized", "missing API key: send Authorization: Bearer <key>",
                         headers=challenge)
    team = team_for_key(session, creds.credentials)
    if team is None:
        raise ApiProblem(401, "Unauthorized", "invalid or revoked API key", headers=challenge)
    return team


CurrentTeam = Annotated[Team, Depends(current_team)]


def team_job(job_id: str, team: CurrentTeam, session: SessionDep) -> Job:
    """The job if it is the caller's team's; otherwise 404, exactly like a missing one."""
    return get_job(session, job_id, team.id)


TeamJob = Annotated[Job, Depends(team_job)]
