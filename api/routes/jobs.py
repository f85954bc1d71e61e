"""Jobs: submit, list, read, cancel, trials (the pruning history), events (SSE)."""

from __future__ import annotations

import asyncio
import json
import logging
import zlib
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.deps import CurrentTeam, SessionDep, TeamJob, known_query
from api.errors import ApiProblem
from api.schemas import JobFigures, JobPublic, JobsPublic, TrialPublic, TrialsPublic
from tuner.digests import waiting_at_most
from tuner.exports import TABLE_LIMIT, trials_table
from tuner.figures import figures_of
from tuner.spec import INT64_MAX, JobSpec
from tuner.store.db import transient
from tuner.store.dispatchers import job_waiting
from tuner.store.jobs import create_job, get_job, job_brief, job_for_key, job_summary, request_cancel
from tuner.store.models import FINAL_STATUSES, ID_MAX, JOB_STATUSES, TRIAL_STATES, Job
from tuner.store.queries import count_trials, list_jobs
from tuner.store.trials import step_summary, steps_of, trial_page
from tuner.tasks import inspect_task

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(known_query)])
log = logging.getLogger(__name__)


def links(job_id: str) -> dict[str, str]:
    base = f"/v1/jobs/{job_id}"
    return {"self": base, "trials": f"{base}/trials", "events": f"{base}/events",
            "cancel": f"{base}/cancel"}


def job_public(session: Any, job: Job) -> dict[str, Any]:
    return {**job_summary(session, job), "links": links(job.id)}


@router.post("/jobs", status_code=201, response_model=JobPublic)
def create_job_route(spec: JobSpec, team: CurrentTeam, session: SessionDep, request: Request,
                     response: Response,
                     idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                     ) -> dict[str, Any]:
    """Queue a tuning job; a retried submit with the same Idempotency-Key returns that job.
    A job on team data prepared for the first time (read for its digest, then loaded) waits
    for each up to `TUNER_DIGEST_WAIT_S`, then answers 503 with `progress` while the work goes
    on: send it again (with the same Idempotency-Key) after `Retry-After` seconds."""
    payload = spec.model_dump(mode="json")
    if idempotency_key:
        existing = job_for_key(session, team.id, idempotency_key)
        if existing is not None:
            if existing.spec != payload:
                raise ApiProblem(409, "Conflict", "Idempotency-Key was already used for a "
                                                  "different job spec")
            response.status_code = 200
            return job_public(session, existing)
    # A spec that cannot train is refused here, with nothing created; files: the team's own.
    # Preparing the team's data may wait up to twice the digest wait: the read above gives
    # its pooled connection back first, so waiting submissions never starve the pool.
    session.rollback()
    with waiting_at_most(request.app.state.settings.digest_wait_s):
        features = inspect_task(spec, scope=team.name)
    job, created = create_job(session, team.id, spec, features, idempotency_key)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job_public(session, job)


@router.get("/jobs", response_model=JobsPublic)
def read_jobs(team: CurrentTeam, session: SessionDep,
              status: Annotated[str | None, Query(description=" | ".join(JOB_STATUSES))] = None,
              task: Annotated[int | None, Query(ge=1, le=ID_MAX, description="task id")] = None,
              model: str | None = None, dataset: str | None = None,
              offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """The team's jobs, newest first, with filters and pagination."""
    if status is not None and status not in JOB_STATUSES:
        raise ApiProblem(422, "Invalid request",
                         f"status: unknown {status!r}; valid choices: {', '.join(JOB_STATUSES)}",
                         [{"field": "status", "message": "unknown status"}])
    jobs, total = list_jobs(session, team.id, status=status, task_id=task, model=model,
                            dataset=dataset, offset=offset, limit=limit)
    return {"data": [job_brief(j) | {"links": links(j.id)} for j in jobs], "count": total}


@router.get("/jobs/{job_id}", response_model=JobPublic)
def read_job(job: TeamJob, session: SessionDep) -> dict[str, Any]:
    """Status, progress, best trial and best per optimizer family."""
    return job_public(session, job)


@router.post("/jobs/{job_id}/cancel", status_code=202, response_model=JobPublic)
def cancel_job(job: TeamJob, team: CurrentTeam, session: SessionDep) -> dict[str, Any]:
    """Cancel: a queued job ends at once; a running one stops its workers promptly."""
    return job_public(session, request_cancel(session, job.id, team.id))


TABLE_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def _table_format(fmt: str | None, accept: str | None) -> str | None:
    """`?format=` first, else the Accept header; None: JSON."""
    if fmt is not None:
        if fmt not in (*TABLE_TYPES, "json"):
            raise ApiProblem(422, "Invalid request",
                             f"format: unknown {fmt!r}; valid choices: json, csv, parquet",
                             [{"field": "format", "message": "unknown format"}])
        return None if fmt == "json" else fmt
    for name, media in TABLE_TYPES.items():
        if accept and media in accept:
            return name
    return None


@router.get("/jobs/{job_id}/trials", response_model=TrialsPublic,
            response_model_exclude_unset=True,  # steps=false: no `steps` key at all
            responses={200: {"content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string",
                                                              "format": "binary"}}}}})
def read_trials(job: TeamJob, session: SessionDep,
                offset: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                steps: bool = True,
                state: Annotated[str | None, Query(description=" | ".join(TRIAL_STATES))] = None,
                format: Annotated[str | None, Query(
                    description="json (default) | csv | parquet: one row per trial, the "
                                "parameters as `param.<name>` columns, every trial (no "
                                "paging)")] = None,
                accept: Annotated[str | None, Header(include_in_schema=False)] = None,
                ) -> Any:
    """Every finished trial (or those in `state`): params, state, stop reason and step, its
    steps, and a failed trial's `traceback`. As a table with `?format=csv|parquet` (or
    `Accept: text/csv`; every trial, or every one in `state`, without tracebacks)."""
    if state is not None and state not in TRIAL_STATES:
        raise ApiProblem(422, "Invalid request",
                         f"state: unknown {state!r}; valid choices: {', '.join(TRIAL_STATES)}",
                         [{"field": "state", "message": "unknown state"}])
    table = _table_format(format, accept)
    if table is not None:
        rows = trial_page(session, job.id, offset=0, limit=TABLE_LIMIT, with_steps=False,
                          state=state)
        body = trials_table(rows, table)
        return Response(body, media_type=TABLE_TYPES[table], headers={
            "Content-Disposition": f'attachment; filename="{job.id}-trials.{table}"'})
    return {"data": trial_page(session, job.id, offset=offset, limit=limit, with_steps=steps,
                               state=state),
            "count": count_trials(session, job.id, state)}


@router.get("/jobs/{job_id}/trials/{number}", response_model=TrialPublic)
def read_trial(job: TeamJob, session: SessionDep,
               number: Annotated[int, Path(ge=0, le=INT64_MAX)]) -> dict[str, Any]:
    """One finished trial, with its steps and, if it failed, its traceback."""
    # (Trial numbers are 32-bit columns: a larger one is no trial, never a database error.)
    page = trial_page(session, job.id, number=number) if number <= ID_MAX else []
    if not page:
        raise ApiProblem(404, "Not found", f"job {job.id} has no finished trial {number} "
                                           f"({count_trials(session, job.id)} finished so far)")
    return page[0]


@router.get("/jobs/{job_id}/figures", response_model=JobFigures)
def read_figures(job: TeamJob, session: SessionDep) -> dict[str, Any]:
    """The job's figures as data (what /ui and `tuner plot` draw): best-so-far against epochs
    consumed, the trials' curves with where they were stopped (at most 500: each family's best,
    then the latest), the best trial per family."""
    # Trials without their steps, a summary of each trial's epochs, and the steps of only the
    # trials drawn and those that moved the best so far: bounded for a job of any size.
    rows = trial_page(session, job.id, offset=0, limit=TABLE_LIMIT, with_steps=False)
    return {"job_id": job.id, **figures_of(
        rows, step_summary(session, job.id), partial(steps_of, session, job.id),
        job.task.metric, job.task.direction)}


def _event_id(status: str, progress: dict[str, Any], notes: list[str],
              waiting: dict[str, Any] | None = None) -> str:
    """What a progress event says, as its SSE id: a client that reconnects with this id as
    `Last-Event-ID` is sent nothing until the job has moved on. The notes count too (by a
    checksum): the job's start rewrites them, and a follower hears it then. So do failed
    trials, which are not `done` (their tickets go back to the budget): a trial that failed
    was heard of only with the next one to finish, and a job page drew it no sooner. And so
    does why a waiting job waits (`waiting`'s note: a dispatcher started, or crashed)."""
    said = zlib.crc32(json.dumps([notes, (waiting or {}).get("note")]).encode())
    return (f"{status}.{progress['done']}.{progress['running']}.{progress['n_trials']}."
            f"{progress['failed']}.{said:x}")


@router.get("/jobs/{job_id}/events", response_class=EventSourceResponse)
async def job_events(job: TeamJob, request: Request,
                     last_event_id: Annotated[str | None, Header(max_length=200)] = None,
                     ) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: `progress` as trials finish or fail (with the job's `notes`, which the job's
    start rewrites when it orders the sweep), then `end` with the final job. Every
    event has an `id`; reconnect with `Last-Event-ID` to resume without repeats (the `end`
    event is always sent, so a client that missed it gets it)."""
    sessions = request.app.state.sessions
    poll = request.app.state.settings.poll_s
    job_id = job.id

    def brief() -> dict[str, Any]:  # the job row (and, while it waits, why): cheap to poll
        with sessions() as s:
            job = get_job(s, job_id)
            return {**job_brief(job), "waiting": job_waiting(s, job)}

    def full() -> dict[str, Any]:
        with sessions() as s:
            return job_public(s, get_job(s, job_id))

    last: str | None = last_event_id
    while True:
        try:
            current = await run_in_threadpool(brief)
        except Exception as exc:
            if not transient(exc):
                raise
            # The database restarting or failing over: the stream stays open and the next
            # poll tries again, so a follower sees a pause, not a broken stream.
            log.warning("job %s events: database unavailable, polling again: %s", job_id,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            if await request.is_disconnected():
                return
            await asyncio.sleep(poll)
            continue
        event_id = _event_id(current["status"], current["progress"], current["notes"],
                             current["waiting"])
        if event_id != last:
            last = event_id
            yield ServerSentEvent(event="progress", id=event_id, data={
                "id": job_id, "status": current["status"], "progress": current["progress"],
                "notes": current["notes"], "waiting": current["waiting"]})
        if current["status"] in FINAL_STATUSES:
            final = await run_in_threadpool(full)
            yield ServerSentEvent(event="end", id=f"end.{event_id}",
                                  data=json.loads(json.dumps(final, default=str)))
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(poll)
