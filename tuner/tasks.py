"""Check a job spec against real data before it is queued, and describe its task."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import torch

from tuner.datasets import Split, data_digest, load_dataset, model_digest, no_skill, team_scope
from tuner.digests import awaited
from tuner.errors import DataError, ModelError, SpecError
from tuner.models import build_model, depth
from tuner.recommend import TaskProfile
from tuner.spec import METRICS, JobSpec

MAX_TOTAL_EPOCHS = 1_000_000


@dataclass(frozen=True)
class TaskFeatures:
    """What identifies a task and what makes two tasks similar."""

    fingerprint: str
    metric: str
    direction: str
    kind: str
    n_params: int
    depth: int
    input_shape: list[int]
    n_train: int
    n_classes: int | None
    batch_size: int
    epochs: int
    dataset: str | None = None  # a trainable's declared dataset name
    # The team's own data and hf: model folder: the digests of their bytes; its plugins: the
    # digest of their code (all in the fingerprint).
    data_digest: str | None = None
    model_digest: str | None = None
    code_digest: str | None = None
    # The fingerprint with the params as written (the same where none equals its default):
    # tasks stored before 2026-12-06 were keyed so, and `tuner.store.jobs.upsert_task` finds them.
    written_fingerprint: str | None = None
    # What a model that ignores its inputs scores on the job's validation set (its data split:
    # `training.seed`), `tuner.datasets.no_skill`; kept on the job, not the task.
    no_skill: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()
                if k not in ("dataset", "data_digest", "model_digest", "code_digest",
                             "written_fingerprint", "no_skill")}

    def profile(self, model: str) -> TaskProfile:
        """The features the similarity of tasks compares, for a task not stored yet."""
        return TaskProfile(task_id=None, model=model, kind=self.kind, n_params=self.n_params,
                           depth=self.depth, input_shape=tuple(self.input_shape),
                           n_train=self.n_train, n_classes=self.n_classes,
                           batch_size=self.batch_size, epochs=self.epochs)


def check_service_device(spec: JobSpec) -> None:
    """A job for the service that demands a GPU must ask for one: Ray gives a trial's worker a
    GPU only for its `resources.gpus_per_trial`, so every trial of such a job failed (`cuda
    requested but no GPU is assigned`) and the job with them. So must a job in bf16, which
    applies on a GPU only."""
    if spec.training.device == "cuda" and not spec.resources.gpus_per_trial:
        raise SpecError("training.device",
                        "cuda, but resources.gpus_per_trial is 0: a trial's worker is given a "
                        "GPU only when the trial asks for one (set resources.gpus_per_trial: 1, "
                        "or 0.25 to pack 4 trials on a GPU), or use device auto")
    # bf16 is part of the budget an answer is about, and applies on a GPU only: such a job's
    # trials would train in fp32 on the CPU, and a later job on GPUs would pool its bf16 runs
    # with them as one budget (until 2026-12-07 it was taken).
    if spec.training.precision == "bf16" and (not spec.resources.gpus_per_trial
                                              or spec.training.device == "cpu"):
        where = "training.device is cpu" if spec.training.device == "cpu" else \
            "resources.gpus_per_trial is 0"
        raise SpecError("training.precision",
                        f"bf16 applies on a GPU only (autocast), and {where}: the trials would "
                        f"train in fp32 on the CPU and be kept as bf16's runs; ask for a GPU "
                        f"(resources.gpus_per_trial: 1, or 0.25 to pack 4 trials on one) or use "
                        f"fp32")


def check_local_device(spec: JobSpec) -> None:
    """`tuner run` trains here: a spec that demands a GPU needs one that torch can use (every
    trial failed instead)."""
    import torch

    if spec.training.device == "cuda" and not torch.cuda.is_available():
        raise SpecError("training.device",
                        "cuda, but this machine has no CUDA GPU that torch can use; use auto "
                        "(cuda where there is one) or cpu")


def local_precision_note(spec: JobSpec) -> list[str]:
    """`tuner run` with `training.precision: bf16` where its trials run on the CPU: bf16 autocast
    applies on a GPU only, so they train in fp32, which the job says rather than leave a user
    to believe the figures are bf16's."""
    import torch

    on_cpu = spec.training.device == "cpu" or not torch.cuda.is_available()
    if spec.training.precision != "bf16" or not on_cpu:
        return []
    return ["training.precision bf16 applies on a GPU (autocast): these trials run on the CPU, "
            "so they train in fp32"]


def check_budget(spec: JobSpec) -> None:
    """Refuse budgets that cannot be what the user meant."""
    b = spec.budget
    if b.parallelism > b.n_trials:
        raise SpecError("budget.parallelism",
                        f"{b.parallelism} concurrent trials for only {b.n_trials} trials; "
                        f"use at most {b.n_trials}")
    total = b.n_trials * spec.training.epochs
    if total > MAX_TOTAL_EPOCHS:
        raise SpecError("budget.n_trials",
                        f"{b.n_trials} trials x {spec.training.epochs} epochs = {total} epochs "
                        f"exceeds the limit of {MAX_TOTAL_EPOCHS}")
    s = spec.search
    if s.confirm_top_k > 0 and s.confirm_seeds == 0:
        raise SpecError("search.confirm_seeds",
                        "must be at least 1 while confirm_top_k > 0 (confirm_top_k: 0 turns "
                        "confirmation off)")
    if s.baseline:
        from tuner.confirm import job_confirm_reserve
        from tuner.search import baseline_params

        baseline_params(spec)  # a space that cannot run it as it is: said at submit
        room = b.n_trials - job_confirm_reserve(spec)
        if s.baseline_runs > room:
            raise SpecError("search.baseline_runs",
                            f"{s.baseline_runs} runs of the baseline do not fit in the "
                            f"search's {room} trials (budget.n_trials less the confirmation "
                            f"race's reserve); raise budget.n_trials or lower it")


def inspect_task(spec: JobSpec, *, scope: str | None = None) -> TaskFeatures:
    """Load the data and build the model once; a spec that cannot train fails here, before any
    job is queued, with the field at fault. Results are cached per process (a service checks
    the same few tasks over and over), for the team's data and `hf:` model folder per team and
    digest of their bytes, so a resubmitted job never loads its data in the request again.
    `scope`: the team whose data folder a file dataset reads (`tuner.datasets.load_dataset`)."""
    check_budget(spec)
    check_service_device(spec)
    t = spec.task
    if t.trainable is not None:
        return _declared(spec)
    assert t.model is not None and t.dataset is not None
    try:
        digest = data_digest(t.dataset.name, t.dataset.params, scope)
    except DataError as exc:
        raise _spec_error("task.dataset", exc) from exc
    team_model = t.model.name.startswith("hf:")  # may be a folder in the team's data
    try:
        weights = model_digest(t.model.name, t.model.params, scope)
    except DataError as exc:
        raise _spec_error("task.model", exc) from exc
    args = (t.model.key(), t.dataset.key(), t.metric, spec.training.seed,
            scope if digest or team_model else None, digest, weights)
    # The team's own data may take minutes to load the first time (a large `hf:` folder
    # builds its Arrow cache): under the API's `waiting_at_most`, in the background.
    features = awaited(("inspect", *args), lambda: _inspect_cached(*args), "task.dataset") \
        if digest or weights else _inspect_cached(*args)
    code = t.code_digest()
    return replace(features, batch_size=spec.training.batch_size, epochs=spec.training.epochs,
                   data_digest=digest, model_digest=weights, code_digest=code,
                   fingerprint=t.fingerprint(features.kind, digest, weights, code),
                   written_fingerprint=t.fingerprint(features.kind, digest, weights, code,
                                                     as_written=True))


def _declared(spec: JobSpec) -> TaskFeatures:
    """A trainable's task, from what it declares (`features`): nothing is loaded or built, so
    the check costs nothing in a request. Undeclared features are unknown (0 / empty)."""
    from tuner.registry import TRAINABLES
    from tuner.trainable import check_params, declared_features

    t = spec.task
    assert t.trainable is not None
    check_params(t.trainable)
    try:
        f = declared_features(TRAINABLES.get(t.trainable.name), t.trainable.params)
    except Exception as exc:
        raise SpecError("task.trainable.params",
                        f"{t.trainable.name} cannot describe itself with these params: "
                        f"{type(exc).__name__}: {exc}") from exc
    kind = str(f.get("kind", "classification"))
    if kind not in ("classification", "regression"):
        raise SpecError("task.trainable", f"{t.trainable.name} declares kind {kind!r}; "
                                          "valid choices: classification, regression")
    try:
        metric = t.resolved_metric(kind)
    except ValueError as exc:
        raise _spec_error("task.metric", exc) from exc
    code = t.code_digest()
    return TaskFeatures(
        fingerprint=t.fingerprint(kind, code_digest=code), code_digest=code, metric=metric,
        written_fingerprint=t.fingerprint(kind, code_digest=code, as_written=True),
        direction=METRICS[metric], kind=kind,
        n_params=int(f.get("n_params") or 0), depth=int(f.get("depth") or 0),
        input_shape=[int(d) for d in f.get("input_shape") or []],
        n_train=int(f.get("n_train") or 0),
        n_classes=int(f["n_classes"]) if f.get("n_classes") else None,
        batch_size=spec.training.batch_size, epochs=spec.training.epochs,
        dataset=str(f["dataset"]) if f.get("dataset") else None)


def _spec_error(field: str, exc: Exception) -> SpecError:
    """A library error as a spec error on the most precise field its message names."""
    message = str(exc)
    named, sep, rest = message.partition(": ")
    if sep and named.startswith(field) and " " not in named:
        return SpecError(named, rest)
    return SpecError(field, message)


def _check_model_size(name: str, params: dict[str, Any], data: Split) -> torch.nn.Module | None:
    """Build the model on the meta device (no memory, no init: reference models without
    their weights, which `check_available` looked for) and refuse one above
    `TUNER_MAX_MODEL_PARAMS`. The meta model when its forward pass should run there, None when
    the meta device cannot build it or the model is small enough to check for real (left to the
    real build's own checks)."""
    from tuner.config import get_settings
    from tuner.references import check_available

    try:
        if ":" in name:
            params = check_available("model", name, params)
        with torch.device("meta"):
            model = build_model(name, params, data.info)
            n = sum(p.numel() for p in model.parameters())
    except ModelError as exc:
        raise _spec_error("task.model", exc) from exc
    except Exception:
        return None
    limit = get_settings().max_model_params
    if n > limit:
        raise SpecError("task.model", f"{name} with these params has {n:,} parameters, more "
                                      f"than the limit of {limit:,} (TUNER_MAX_MODEL_PARAMS)")
    return model if n > REAL_CHECK_MAX_PARAMS or ":" in name else None


# A model up to this size is checked with a real forward pass: building it costs milliseconds,
# while a process's first forward pass on the meta device costs about a second (torch loads its
# meta kernels), which every `tuner job create` paid.
REAL_CHECK_MAX_PARAMS = 2_000_000


@lru_cache(maxsize=256)
def _inspect_cached(model: str, dataset: str, metric: str | None, seed: int,
                    scope: str | None = None, digest: str | None = None,
                    weights: str | None = None) -> TaskFeatures:
    spec = JobSpec.model_validate({"task": {"model": json.loads(model),
                                            "dataset": json.loads(dataset), "metric": metric},
                                   "training": {"seed": seed}})
    return _inspect(spec, scope)


def _inspect(spec: JobSpec, scope: str | None = None) -> TaskFeatures:
    ds, m = spec.task.dataset, spec.task.model
    assert ds is not None and m is not None
    try:
        data = load_dataset(ds.name, ds.params, spec.training.seed, scope=scope)
    except DataError as exc:
        raise _spec_error("task.dataset", exc) from exc
    with team_scope(scope):
        return check_model(spec, data)


def _forward(model: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        model.eval()
        model(x)


def _runs(model: torch.nn.Module, x: torch.Tensor) -> bool:
    try:
        _forward(model, x)
    except Exception:
        return False
    return True


def check_model(spec: JobSpec, data: Split) -> TaskFeatures:
    """The model against data already loaded (`inspect_task`'s, and `tuner run`'s on the data
    it loads once for its trials): a model that does not fit is a SpecError on its field. One
    forward pass of two validation examples: on the meta device when the model builds
    there (nothing allocated in a request), else for real."""
    ds, m = spec.task.dataset, spec.task.model
    assert ds is not None and m is not None
    meta = _check_model_size(m.name, m.params, data)
    try:
        metric = spec.task.resolved_metric(data.info.kind)
    except ValueError as exc:
        raise _spec_error("task.metric", exc) from exc
    try:
        x = data.val_sample(2)
        model = meta if meta is not None and _runs(meta, x.to("meta")) else None
        if model is None:  # no meta model, or an op without a meta kernel: check it for real
            torch.manual_seed(0)
            model = build_model(m.name, m.params, data.info)
            _forward(model, x)
    except ModelError as exc:
        raise _spec_error("task.model", exc) from exc
    except Exception as exc:  # a model that cannot run a forward pass on this data
        raise SpecError("task.model",
                        f"{m.name} fails on {ds.name} input {tuple(data.info.input_shape)}: "
                        f"{type(exc).__name__}: {exc}") from exc
    return TaskFeatures(
        fingerprint=spec.task.fingerprint(data.info.kind), metric=metric,
        direction=METRICS[metric], kind=data.info.kind,
        n_params=sum(p.numel() for p in model.parameters()), depth=depth(model),
        input_shape=list(data.info.input_shape), n_train=data.info.n_train,
        n_classes=data.info.n_classes, batch_size=spec.training.batch_size,
        epochs=spec.training.epochs, no_skill=no_skill(data, metric),
    )
