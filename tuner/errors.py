"""Error types of the core library. The API and the CLI map them to HTTP / exit codes, once."""

from __future__ import annotations

from collections.abc import Iterable


class TunerError(Exception):
    """Base class: every error the library raises on purpose."""


class SpecError(TunerError, ValueError):
    """A job spec (or part of it) is invalid. `field` is a dotted path into the spec."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def choices(names: Iterable[str]) -> str:
    """Format valid choices for an error message."""
    return ", ".join(sorted(names))


def count(n: int, noun: str) -> str:
    """"1 job", "2 jobs": a count in a message or an answer's words."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def unknown(kind: str, name: object, valid: Iterable[str]) -> str:
    """The one wording of "that name is not one of ours": `unknown <kind> <name>; valid
    choices: a, b, c`."""
    return f"unknown {kind} {name!r}; valid choices: {choices(valid)}"


class UnknownName(SpecError):
    """A name (optimizer, schedule, model, dataset, sampler...) that is not registered."""

    def __init__(self, field: str, kind: str, name: str, valid: Iterable[str]) -> None:
        self.valid = sorted(valid)
        super().__init__(field, unknown(kind, name, self.valid))


class DataError(TunerError):
    """A dataset could not be loaded (bad file, path outside the data root, bad shape...)."""


class DataChanged(DataError):
    """Team data (or a model folder's weights, or a fetched hub copy) whose digest is no longer
    its task's: `field` (task.dataset or task.model), `what` changed, `expected` and `now`."""

    def __init__(self, message: str, field: str, what: str, expected: str, now: str) -> None:
        super().__init__(message)
        self.field, self.what, self.expected, self.now = field, what, expected, now


class TrialsFailed(TunerError):
    """Trials of a search failed the same way and none got further (tuner.trial.same_failure):
    the search stopped rather than fail the rest of its budget."""


class ModelError(TunerError):
    """A model cannot be built for the given data (e.g. a CNN on non-image input)."""


class NotFound(TunerError):
    """Something a caller named does not exist (or belongs to another team: the same answer)."""


class JobNotFound(NotFound):
    def __init__(self, job_id: str, hint: str = "") -> None:
        super().__init__(f"job {job_id!r} not found{hint}")
        self.job_id = job_id


class JobIdAmbiguous(JobNotFound):
    """The start of a job's id that starts several of the team's jobs' ids."""

    def __init__(self, prefix: str, ids: list[str]) -> None:
        super().__init__(prefix)
        many = "more than 3" if len(ids) > 3 else str(len(ids))
        self.args = (f"{prefix!r} is the start of {many} of your team's job ids ("
                     + ", ".join(i[:12] + "…" for i in ids[:3]) + "): give more of the id",)
        self.ids = ids


class TaskNotFound(NotFound):
    def __init__(self, task_id: int) -> None:
        super().__init__(f"task {task_id} not found in your team")
        self.task_id = task_id


class TeamNotFound(NotFound):
    def __init__(self, team: str) -> None:
        super().__init__(f"team {team!r} not found")
