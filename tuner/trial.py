"""The trial contract: one trial as the service records it, with its learning curve.

Everything else derives from these two models, so the fields are listed once:
- `tuner.results.trial_record` builds a `TrialRecord` from an Optuna trial;
- the store maps it to rows column by column (`TRIAL_FIELDS`, `STEP_FIELDS`) and reads pages back
  as the same fields;
- the API's `TrialPublic` is this model with `steps` optional (left out with `steps=false`);
- `tuner run` prints `to_json()`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field


class StepRecord(BaseModel):
    """One epoch of one trial: a row of the pruning history. Extra metrics the training loop
    reports (val_accuracy, val_r2) are kept in memory and printed by `tuner run`; the store keeps
    the fields listed here."""

    model_config = ConfigDict(extra="allow")

    step: int
    value: float | None = None  # the task's metric this epoch
    best_value: float | None = None  # best metric so far (what the pruner sees)
    train_loss: float | None = None
    val_loss: float | None = None
    lr: float | None = None
    elapsed_s: float | None = None


class TrialRecord(BaseModel):
    """The service's record of one finished trial."""

    number: int
    state: str  # complete | pruned | diverged | failed (running/waiting while in flight)
    stop_reason: str | None = None
    stop_step: int = 0
    optimizer: str | None = None
    schedule: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    value: float | None = None
    epochs_run: int = 0
    seconds_per_epoch: float = 0.0
    # The longest the trial went without progress: to its first epoch from its start (data and
    # model set-up included), between epochs, and from its last epoch (or its start) to its end.
    # What a later job of the task scales its stall limit from.
    longest_wait_s: float | None = None
    state_bytes_per_param: float = 0.0
    device: str | None = None
    hardware: str | None = None  # the GPU's model on cuda, else cpu (tuner.training)
    detail: str = ""
    # A failed trial's traceback: its innermost frames, each file under its import root
    # (tuner.objective.short_traceback); None for a trial that did not raise.
    traceback: str | None = None
    defaults_sweep: bool = False  # enqueued by the defaults sweep
    warm_start: bool = False  # enqueued as a warm-start seed
    baseline: bool = False  # a run of search.baseline (AdamW at its defaults with cosine)
    retry_of: int | None = None  # the trial whose worker died, run again
    seed: int | None = None
    confirm_of: int | None = None  # a confirmation run: the trial whose configuration it repeats
    steps: list[StepRecord] = Field(default_factory=list)

    def config_key(self) -> str | None:
        return config_key(self.optimizer, self.schedule, self.params)

    def to_json(self, with_steps: bool = True) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude=None if with_steps else {"steps"})


# Stop reasons of a failed trial that the infrastructure caused, not the configuration: its
# worker died (heartbeat stale) or the database failed under it. Such a trial is run again and
# does not count against the job's allowance of failures. So is a trial whose device ran out of
# memory (`out_of_memory`) for the first time its configuration did in the job (trials packed on
# one GPU share its memory: another trial may have held it); a configuration out of memory
# again (an earlier trial with its config_key did: tuner.store.trials.out_of_memory_before)
# counts: it needs more than the device has.
WORKER_LOST = "worker_lost"
DB_ERROR = "db_error"
# A trial that could not read the task's data or model files (a file that is not an image, a
# gap in a table, files changed since the job was submitted): every trial reads the same files,
# so the job stops at the first, rather than fail each of its trials the same way.
DATA_ERROR: Final = "data_error"
OUT_OF_MEMORY: Final = "out_of_memory"
INFRA_FAILURES: tuple[str, ...] = (WORKER_LOST, DB_ERROR)
# A job stops when this many of its trials failed the same way (the same error, after the same
# number of epochs), with at least two configurations among them, and no trial of the job got
# further or completed: a failure that does not depend on the configuration (a team model that
# raises when it is built, a loader that raises in epoch 2) would fail every trial, and a failed
# trial gives its ticket back (up to n_trials failures), so such a job ran twice its budget of
# the same failure.
SAME_FAILURE_TRIALS: Final = 3

# A failed trial's traceback is kept to this many characters (tuner.objective.short_traceback
# cuts a longer one's middle).
TRACEBACK_CHARS: Final = 8000

TRIAL_FIELDS: tuple[str, ...] = tuple(n for n in TrialRecord.model_fields if n != "steps")
STEP_FIELDS: tuple[str, ...] = tuple(StepRecord.model_fields)


def config_key(optimizer: str | None, schedule: str | None, params: dict[str, Any]) -> str | None:
    """Identity of a configuration (values to 8 significant digits, so a confirmation run's
    params, converted back from Optuna's 1 - x, match the original's)."""
    if optimizer is None:
        return None
    norm = {k: float(f"{v:.8g}") if isinstance(v, float) else v for k, v in params.items()}
    raw = json.dumps({"o": optimizer, "s": schedule, "p": norm}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SameFailure:
    """Trials of one job that failed the same way (`same_failure`)."""

    detail: str  # the error, as each of them recorded it
    epochs: int  # the epochs each ran before it
    trials: int
    configurations: int

    def message(self, what: str = "job") -> str:
        """Why the job (or `what`) stopped, in words."""
        where = "before their first epoch" if not self.epochs else \
            f"after {self.epochs} epoch{'s' if self.epochs != 1 else ''}"
        return (f"{self.trials} trials failed the same way {where}, with {self.configurations} "
                f"configurations, and no trial got further: {self.detail}; a failure that does "
                f"not depend on the configuration would fail every trial, so the {what} stopped "
                f"there")


def same_failure(records: Iterable[TrialRecord]) -> SameFailure | None:
    """The failure that `SAME_FAILURE_TRIALS` of the job's trials (`records`: ended or running)
    share, by their own error (stop reason `failed`: not a lost worker, a database error, a
    stall, memory or a cancel), with at least two configurations among them, when no other
    trial got past the epoch they failed at and none completed; else None."""
    seen = list(records)
    if any(r.state == "complete" for r in seen):
        return None
    own = [r for r in seen if r.state == "failed" and r.stop_reason == "failed"]
    groups = Counter((r.detail, r.epochs_run) for r in own)
    for (detail, epochs), n in groups.most_common():
        if n < SAME_FAILURE_TRIALS:
            break
        alike = [r for r in own if (r.detail, r.epochs_run) == (detail, epochs)]
        configurations = len({r.config_key() for r in alike})
        if configurations < 2:
            continue
        ids = {id(r) for r in alike}
        if all(max(r.epochs_run, r.stop_step) <= epochs for r in seen if id(r) not in ids):
            return SameFailure(detail, epochs, n, configurations)
    return None


# The notes `tuner.trainable.trainable_notes` writes about a team's loop, as they are read back:
# `<name> never read ctx.split_seed in its ...`, what it never did first.
_LOOP_GIST = re.compile(r" (never \w+ (?:ctx|training)\.\w+(?:\(\))?)")


def is_loop_note(note: str, name: str) -> bool:
    """Is this job note one of those `tuner.trainable.trainable_notes` writes about the team's
    loop `name`?"""
    return note.startswith(f"{name} never ")


def loop_note_gist(note: str) -> str | None:
    """What a loop note says the loop never did, in a few words (`never read ctx.split_seed`,
    `never entered ctx.autocast()`); None for another note."""
    m = _LOOP_GIST.search(note)
    return m.group(1) if m else None
