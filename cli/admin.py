"""Commands on the database directly (the operator's path): `db`, `job`, `admin`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import (
    DbUrl,
    JsonOpt,
    err,
    load_spec_file,
    out,
    print_json,
    resolve_db_url,
    sessions,
    user_errors,
)
from cli.render import print_job

db_app = typer.Typer(no_args_is_help=True, help="Database: migrations, and what older "
                                                  "releases did not record.")
job_app = typer.Typer(no_args_is_help=True, help="Jobs in the database (local/admin path).")
admin_app = typer.Typer(no_args_is_help=True, help="Teams and API keys (writes the database).")


@db_app.command("upgrade")
def db_upgrade(database_url: DbUrl = None) -> None:
    """Create or migrate the service tables (run once per deployment)."""
    from tuner.store.migrate import current, upgrade

    url = resolve_db_url(database_url)
    with user_errors():
        upgrade(url)
        out.print(f"database at revision {current(url)}")


@db_app.command("backfill")
def db_backfill(database_url: DbUrl = None) -> None:
    """Fill in each job's `no_skill` where a release before 2026-12-07 recorded none: what a
    model that ignores its inputs scores on the job's validation set, from its task's data
    (run it where the service reads its teams' data, TUNER_DATA_ROOT). Answers about those
    jobs' budgets then hold their best family against it. A job whose data is no longer what
    it ran on, or a team's own loop, is left, and said why."""
    from tuner.errors import TunerError
    from tuner.spec import JobSpec
    from tuner.store.auth import team_name
    from tuner.store.db import transaction
    from tuner.store.jobs import fill_no_skill, jobs_without_no_skill
    from tuner.tasks import inspect_task

    filled = left = 0
    with user_errors(), transaction(sessions(database_url)) as s:
        groups: dict[tuple[int, int, int], list[Any]] = {}
        for job in jobs_without_no_skill(s):  # one data split of a task is scored once
            groups.setdefault((job.team_id, job.task_id, job.training_seed), []).append(job)
        for (team_id, _, seed), jobs in groups.items():
            task, ids = jobs[0].task, [j.id for j in jobs]
            what = f"task {task.id} ({task.model_name} / {task.dataset_name}), training.seed {seed}"
            why, value = None, None
            try:
                spec = JobSpec.model_validate(jobs[0].spec)
                if spec.task.trainable is not None:
                    why = "a team's own loop: its data is its own"
                else:
                    features = inspect_task(spec, scope=team_name(s, team_id))
                    if task.fingerprint not in (features.fingerprint,
                                                features.written_fingerprint):
                        why = ("its data or model is not what the jobs ran on (the task's "
                               "fingerprint differs)")
                    elif (value := features.no_skill) is None:
                        why = f"no such figure for {task.metric}"
            except (TunerError, ValueError) as exc:
                why = f"its spec or data cannot be read now: {exc}"
            if why is None and value is not None:
                fill_no_skill(s, ids, value)
                filled += len(ids)
                out.print(f"{what}: no skill {value:.4g} for {len(ids)} job(s)", highlight=False)
            else:
                left += len(ids)
                out.print(f"{what}: left {len(ids)} job(s): {why}", highlight=False)
    out.print(f"filled {filled} job(s), left {left}" if filled or left else
              "every job keeps its no-skill figure: nothing to fill", highlight=False)


@job_app.command("create")
def job_create(
    spec_file: Annotated[Path, typer.Argument(help="Job spec (.yaml or .json).", exists=True)],
    team: Annotated[str, typer.Option(help="Team that owns the job (created if new).")] = "local",
    idempotency_key: Annotated[str | None, typer.Option(help="Same key, same job.")] = None,
    database_url: DbUrl = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a spec against real data and queue it; prints the job id."""
    from tuner.spec import JobSpec
    from tuner.store.auth import get_or_create_team
    from tuner.store.db import transaction
    from tuner.store.jobs import create_job
    from tuner.tasks import inspect_task

    with user_errors():
        spec = JobSpec.model_validate(load_spec_file(spec_file))
        features = inspect_task(spec, scope=team)
        with transaction(sessions(database_url)) as s:
            t = get_or_create_team(s, team)
            job, created = create_job(s, t.id, spec, features, idempotency_key)
    if as_json:
        print_json({"id": job.id, "created": created, "status": job.status})
    else:
        sys.stdout.write(job.id + "\n")


@job_app.command("show")
def job_show(job_id: str, database_url: DbUrl = None, as_json: JsonOpt = False) -> None:
    """Status, progress, best trial and best per optimizer of a job."""
    from tuner.store.db import transaction
    from tuner.store.jobs import get_job, job_summary

    with user_errors(), transaction(sessions(database_url)) as s:
        summary = job_summary(s, get_job(s, job_id))
    if as_json:
        print_json(summary)
    else:
        print_job(summary)


@admin_app.command("create-team")
def admin_create_team(name: str, database_url: DbUrl = None) -> None:
    """Create a team (no-op when it exists)."""
    from tuner.store.auth import get_or_create_team
    from tuner.store.db import transaction

    with user_errors(), transaction(sessions(database_url)) as s:
        team = get_or_create_team(s, name)
    out.print(f"team {team.name} (id {team.id})")


@admin_app.command("create-key")
def admin_create_key(team: str, name: Annotated[str, typer.Option(help="A label.")] = "",
                     database_url: DbUrl = None) -> None:
    """Print a new API key for TEAM (shown once; only its hash is stored)."""
    from tuner.store.auth import create_api_key, get_team
    from tuner.store.db import transaction

    with user_errors(), transaction(sessions(database_url)) as s:
        key = create_api_key(s, get_team(s, team), name)
    sys.stdout.write(key + "\n")


@admin_app.command("revoke-key")
def admin_revoke_key(prefix: Annotated[str, typer.Argument(help="The key, or its first 10+ "
                                                                 "characters.")],
                     database_url: DbUrl = None) -> None:
    """Revoke an API key."""
    from tuner.store.auth import revoke_key
    from tuner.store.db import transaction

    with user_errors(), transaction(sessions(database_url)) as s:
        n = revoke_key(s, prefix)
    if not n:
        err.print("[red]error:[/red] no active key with that prefix", markup=True)
        raise typer.Exit(1)
    out.print(f"revoked {n} key(s)")




def _when(at: object) -> str:
    return str(at or "-")[:19].replace("T", " ")


@admin_app.command("teams")
def admin_teams(database_url: DbUrl = None, as_json: JsonOpt = False) -> None:
    """The teams, with their active API keys, jobs and latest job."""
    from rich.table import Table

    from tuner.store.auth import list_teams
    from tuner.store.db import transaction

    with user_errors(), transaction(sessions(database_url)) as s:
        teams = list_teams(s)
    if as_json:
        print_json(teams)
        return
    table = Table(title=f"Teams ({len(teams)})")
    for col in ("team", "id", "active keys", "jobs", "latest job", "created"):
        table.add_column(col, no_wrap=col != "team")
    for t in teams:
        table.add_row(t["name"], str(t["id"]), str(t["active_keys"]), str(t["jobs"]),
                      _when(t["latest_job_at"]), _when(t["created_at"]))
    out.print(table)


@admin_app.command("keys")
def admin_keys(team: Annotated[str | None, typer.Option(help="That team's keys only.")] = None,
               revoked: Annotated[bool, typer.Option(
                   "--revoked", help="Revoked keys too.")] = False,
               database_url: DbUrl = None, as_json: JsonOpt = False) -> None:
    """The API keys by their first characters (what revoke-key takes), team, label and dates;
    never a key itself, which only its holder has."""
    from rich.table import Table

    from tuner.store.auth import list_keys
    from tuner.store.db import transaction

    with user_errors(), transaction(sessions(database_url)) as s:
        keys = list_keys(s, team, revoked=revoked)
    if as_json:
        print_json(keys)
        return
    table = Table(title=f"{'API keys' if revoked else 'Active API keys'} ({len(keys)})")
    for col in ("key starts", "team", "label", "created", *(["revoked"] if revoked else [])):
        table.add_column(col, no_wrap=col not in ("team", "label"))
    for k in keys:
        table.add_row(k["prefix"] + "…", k["team"], k["name"] or "-", _when(k["created_at"]),
                      *([_when(k["revoked_at"])] if revoked else []))
    out.print(table)
