"""The `tuner` command: one typer app wired from the command modules.

- `cli.local`: run, space, models, datasets (in this process, no server);
- `cli.remote`: submit, status, cancel, trials, jobs, recommend (over HTTP);
- `cli.servers`: dispatcher, api, serve (long-running processes);
- `cli.admin`: db, job, admin (the database directly);
- `cli.corpus`: corpus (the reference corpus);
- `cli.data`: data fetch (datasets and weights for references);
- `cli.render` prints results; `cli.common` holds what they share.
"""

from __future__ import annotations

import inspect
import warnings

import typer

from cli import admin, local, remote, servers
from cli.corpus import corpus_app
from cli.data import data_app

warnings.filterwarnings("ignore", module="optuna")  # experimental-feature notices
app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Find the best optimizer, LR schedule and decay rates for a model.")

@app.callback()
def _check_settings() -> None:
    # The TUNER_* environment, read once before any command: a wrong value is one line naming
    # the variable, not a traceback from wherever it is first read.
    from cli.common import user_errors
    from tuner.config import get_settings

    with user_errors():
        get_settings()


app.command()(local.run)
app.command()(local.space)
app.command("models")(local.registry_command("models"))
app.command("datasets")(local.registry_command("datasets"))
for command in (remote.submit, remote.status, remote.cancel, remote.trials, remote.rerun,
                remote.jobs, remote.recommend, remote.tasks, remote.plot):
    app.command()(command)
app.command()(servers.dispatcher)
app.command("api")(servers.api_server)
app.command()(servers.serve)
app.add_typer(admin.db_app, name="db")
app.add_typer(admin.job_app, name="job")
app.add_typer(admin.admin_app, name="admin")
app.add_typer(corpus_app, name="corpus")
app.add_typer(data_app, name="data")


def _one_line_summaries(t: typer.Typer) -> None:
    """Each command's first paragraph, as one line, for the command lists of `--help`: typer's
    rich lists keep a docstring's single line breaks, so `tuner --help` printed "... with the
    answer each one's history gives" and "today (over HTTP)." on two lines, broken where the
    source wraps (its own `--help` joins them)."""
    for c in t.registered_commands:
        doc = c.help or (c.callback.__doc__ if c.callback else None)
        if c.short_help is None and doc:
            c.short_help = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    for g in t.registered_groups:
        if g.typer_instance is not None:
            _one_line_summaries(g.typer_instance)


_one_line_summaries(app)
