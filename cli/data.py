"""`tuner data`: fill the cache that trials read standard references from (they never
download)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from cli.common import err, esc, out, user_errors

data_app = typer.Typer(no_args_is_help=True, help="Fetch datasets and weights for references.")


@data_app.command()
def fetch(
    kind: Annotated[Literal["model", "dataset"], typer.Argument(
        help="model (its pretrained weights) or dataset")],
    ref: Annotated[str, typer.Argument(
        help="torchvision:<name>, timm:<name> or hf:<hub id> (models); torchvision:<Name> or "
             "hf:<hub id> (datasets)")],
) -> None:
    """Download REF into the cache (TUNER_CACHE_ROOT, default <TUNER_DATA_ROOT>/.tuner-cache).
    Run it on a machine with network access that shares the data root with the workers."""
    from tuner.errors import TunerError
    from tuner.references import cache_root
    from tuner.references import fetch as fetch_ref

    with user_errors():
        err.print(f"fetching {kind} {ref} into {cache_root()} ...")
        try:
            where = fetch_ref(kind, ref)
        except TunerError:
            raise
        except Exception as exc:  # no network, no space, a hub error: the library's reason
            err.print(f"[red]could not fetch {esc(ref)}[/red]: {type(exc).__name__}: "
                      f"{esc(str(exc).splitlines()[0][:300])}", highlight=False, markup=True)
            raise typer.Exit(1) from None
    out.print(f"{kind} {ref}: in {where}")
    from tuner.references import hub_revision

    fetched = hub_revision(kind, ref, {"pretrained": True})
    if fetched:  # what the next task on it holds: another fetch of a changed repo is new
        out.print(f"{kind} {ref}: its tasks will hold {'model' if kind == 'model' else 'data'}"
                  f"_digest {fetched} (the copy fetched now)", highlight=False)


@data_app.command()
def digest(
    path: Annotated[Path, typer.Argument(exists=True, help="a data file or folder")],
) -> None:
    """Print the digest a task on PATH holds (`data_digest`, or `model_digest` for an hf:
    model folder, in the task and job views): the same digest means the same bytes, so you
    can tell whether your copy is the data a task was measured on. A file's is the first 16
    hex digits of what `sha256sum` prints."""
    from tuner.digests import path_digest

    with user_errors():
        out.print(path_digest(path), highlight=False)
