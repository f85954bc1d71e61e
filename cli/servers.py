"""Long-running processes: `dispatcher`, `api`, and `serve` (all in one)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from cli.common import DbUrl, err, esc, resolve_db_url, user_errors

if TYPE_CHECKING:
    from workers.dispatcher import Dispatcher


def start_again(why: BaseException) -> NoReturn:
    """The local Ray of this command lost a process (`workers.dispatcher.LocalRayLost`; its
    jobs are handed back): end what is left of that Ray, and run this same command again in
    this process (exec: the same pid, arguments and environment), with a new Ray. Ray cannot
    be started again in place: shutting down a driver whose raylet died may end the process."""
    import sys

    from workers.dispatcher import local_ray_node

    err.print(f"{esc(str(why))}: starting this command again, with a new Ray (its jobs were "
              "handed back and resume)", highlight=False)
    try:  # plain kills of its processes: no word to the dead raylet
        if (node := local_ray_node()) is not None:
            node.kill_all_processes(check_alive=False, allow_graceful=False, wait=True)
    except Exception as exc:
        err.print(f"could not end the local Ray's processes: {esc(str(exc))}", highlight=False)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def dispatcher(
    once: Annotated[bool, typer.Option("--once", help="Drain the queue, then exit.")] = False,
    database_url: DbUrl = None,
    ray_address: Annotated[str | None, typer.Option(
        help="Join this Ray cluster (default: $RAY_ADDRESS, else a local Ray).")] = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs for a local Ray.")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Serve this dispatcher's Prometheus metrics on this port (/metrics): jobs "
             "claimed, trial workers started and running, database retries.")] = None,
) -> None:
    """Claim queued jobs and run their trials on Ray (until stopped, or --once)."""
    import logging
    import signal

    from tuner.store.migrate import require_migrated
    from workers.dispatcher import Dispatcher, DispatcherConfig, ensure_ray

    url = resolve_db_url(database_url)
    with user_errors():  # before Ray starts: a database without our tables is a one-line error
        require_migrated(url)
    if metrics_port is not None:  # after the import: it registers the metrics
        from prometheus_client import start_http_server

        start_http_server(metrics_port)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    d = Dispatcher(DispatcherConfig.from_settings(url, ray_address=ray_address, num_cpus=num_cpus))
    # Ray's driver installs its own SIGTERM handler (it logs and kills the process): start Ray
    # first, then ours, so a stop hands the jobs back and lets trials in flight finish.
    with user_errors():
        ensure_ray(d.config.ray_address, d.config.num_cpus)

    def stop(signum: int, _frame: object) -> None:
        err.print(f"{signal.Signals(signum).name}: handing jobs back, trials in flight get "
                  f"{d.config.stop_grace_s:.0f} s")
        d.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    from workers.dispatcher import LocalRayLost

    try:
        ran = d.run(once=once)
    except LocalRayLost as exc:
        start_again(exc)
    err.print(f"dispatcher {d.config.owner} ran {len(ran)} job(s)")


def api_server(host: Annotated[str, typer.Option()] = "127.0.0.1",
               port: Annotated[int, typer.Option()] = 8000, database_url: DbUrl = None,
               workers: Annotated[int, typer.Option(
                   min=1, help="API processes (about one per core the API may use)")] = 1,
               ) -> None:
    """Serve the HTTP API only (deployments run the dispatcher separately)."""
    import uvicorn
    from sqlalchemy.exc import DBAPIError

    from api.app import create_app
    from tuner.store.db import first_line, transient
    from tuner.store.migrate import require_migrated

    url = resolve_db_url(database_url)
    _require_free_port(host, port)
    with user_errors():  # a deploy that skipped its migrate step is told so, not served 503s
        try:
            require_migrated(url)
        except DBAPIError as exc:  # not reachable yet: serve, answering 503 until it is
            if not transient(exc):
                raise
            err.print(f"warning: the database cannot be reached yet ({first_line(exc)}); "
                      "serving, with 503 until it can", highlight=False)
    if workers == 1:
        # Open event streams get 5 s to end on SIGTERM, so a deploy never waits on a watcher.
        uvicorn.run(create_app(url), host=host, port=port, log_level="info",
                    timeout_graceful_shutdown=5)
        return
    # Several processes: uvicorn imports the app factory in each; they read the URL from the
    # environment they inherit. Their metrics go to one folder, summed by any of them.
    os.environ["TUNER_DATABASE_URL"] = url
    own = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    if own:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tuner-metrics-")
    try:
        uvicorn.run("api.app:create_app", factory=True, workers=workers, host=host, port=port,
                    log_level="info", timeout_graceful_shutdown=5)
    finally:
        if own:
            shutil.rmtree(os.environ.pop("PROMETHEUS_MULTIPROC_DIR"), ignore_errors=True)


LOCAL_TEAM = "local"


def _require_free_port(host: str, port: int) -> None:
    """Stop in one line (exit 2) when `host:port` is taken, before anything starts: `tuner serve`
    would otherwise start Ray and a dispatcher, replace the saved key of the server already
    there with one of its own database, and end when its API could not bind."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn picks it
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host, port))
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot serve on {esc(host)}:{port}: "
                  f"{esc(str(exc.strerror or exc))} (another tuner serve or tuner api?): stop "
                  "it, or choose another --port", highlight=False, markup=True)
        raise typer.Exit(2) from None


def _local_key(db_url: str, server_url: str) -> tuple[str, Path, bool]:
    """The saved key for this server if the database knows it; else a new one for team `local`."""
    from tuner.client import credentials_path, save_credentials, saved_key
    from tuner.store.auth import create_api_key, get_or_create_team, team_for_key
    from tuner.store.db import session_factory, transaction

    with transaction(session_factory(db_url)) as s:
        key = saved_key(server_url)
        if key and team_for_key(s, key) is not None:
            return key, credentials_path(), False
        key = create_api_key(s, get_or_create_team(s, LOCAL_TEAM), "tuner serve")
    return key, save_credentials(server_url, key), True


# `tuner serve`'s dispatcher, ended by an error, starts again after this long, doubling to a
# minute while it keeps ending.
RESTART_WAIT_S = (5.0, 60.0)


def _supervised(d: Dispatcher) -> None:
    """Run `tuner serve`'s dispatcher `d` until it is stopped, starting it again whenever it
    ends on an error: its thread died silently before, while the API went on taking jobs that
    nothing would run. (Each end is logged with its traceback, and said in the database, so a
    queued job's page says why it waits; `tuner dispatcher` exits instead, for whatever
    supervises it to start again.)"""
    import logging

    log = logging.getLogger("tuner.serve")
    wait, most = RESTART_WAIT_S
    from workers.dispatcher import LocalRayLost

    while not d.stop_event.is_set():
        try:
            d.run()
            return
        except LocalRayLost as exc:
            start_again(exc)
        except Exception:
            log.exception("the dispatcher ended on an error; it starts again in %.0f s (the API "
                          "goes on taking jobs meanwhile)", wait)
        d.stop_event.wait(wait)
        wait = min(wait * 2, most)


def serve(host: Annotated[str, typer.Option()] = "127.0.0.1",
          port: Annotated[int, typer.Option()] = 8000, database_url: DbUrl = None,
          num_cpus: Annotated[int | None, typer.Option(help="CPUs for the local Ray.")] = None,
          ) -> None:
    """Everything in one process: migrate, then API + dispatcher + local Ray on the database
    (SQLite file by default). Ctrl-C stops cleanly; running jobs resume at the next start."""
    import logging
    import threading

    import uvicorn

    from api.app import create_app
    from tuner.store.migrate import upgrade
    from workers.dispatcher import Dispatcher, DispatcherConfig, ensure_ray

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    url = resolve_db_url(database_url)
    server_url = f"http://{host}:{port}"
    _require_free_port(host, port)
    with user_errors():
        upgrade(url)
        _key, path, new = _local_key(url, server_url)
    err.print(f"database: {url}")
    err.print(f"API key for team '{LOCAL_TEAM}' {'created and ' if new else ''}saved in {path} "
              f"(the tuner CLI reads it; or export TUNER_API_KEY)")
    ensure_ray(None, num_cpus)
    d = Dispatcher(DispatcherConfig.from_settings(url, num_cpus=num_cpus))
    thread = threading.Thread(target=_supervised, args=(d,), name="dispatcher", daemon=True)
    thread.start()
    err.print(f"serving {server_url}: the pages at {server_url}/ui (they ask for the API key), "
              f"the API's docs at {server_url}/docs; Ctrl-C to stop", highlight=False)
    try:
        # Open event streams get 5 s to end, so Ctrl-C never hangs on a watching client.
        uvicorn.run(create_app(url), host=host, port=port, log_level="warning",
                    timeout_graceful_shutdown=5)
    finally:
        d.stop_event.set()
        thread.join(60)
        import ray

        ray.shutdown()
        err.print("stopped; running jobs will resume at the next start")


