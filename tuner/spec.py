"""The job spec: one pydantic model shared by the core, the API and the CLI.

Validation errors name the field (a dotted path) and the valid choices.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from typing import Any, ClassVar, Final, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tuner.errors import UnknownName, choices, unknown
from tuner.space import FAMILIES, LOOKAHEAD_BASES, SCHEDULES, WARMUP, ParamDef

DEFAULT_VAL_FRACTION = 0.2  # task.dataset.params.val_fraction: the share held out for validation
MAX_CONFIRM_SEEDS = 20  # search.confirm_seeds: a job re-runs a configuration at most this often
MAX_BASELINE_RUNS = 20  # search.baseline_runs

METRICS: dict[str, Literal["maximize", "minimize"]] = {
    "val_accuracy": "maximize",
    "val_loss": "minimize",
    "val_r2": "maximize",
}
# What a metric can be: an interval of expected values is never shown past these.
METRIC_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "val_accuracy": (0.0, 1.0),
    "val_loss": (0.0, None),
    "val_r2": (None, 1.0),
}
CLASSIFICATION_METRICS = ("val_accuracy", "val_loss")
REGRESSION_METRICS = ("val_loss", "val_r2")
# Names only: the factories are tables in tuner.search (a test checks they match).
SamplerName = Literal["tpe", "random", "cmaes", "gp", "qmc"]
PrunerName = Literal["hyperband", "asha", "median", "percentile", "wilcoxon", "none"]
SAMPLERS: tuple[str, ...] = get_args(SamplerName)
PRUNERS: tuple[str, ...] = get_args(PrunerName)
SweepPruning = Literal["apart", "pruner"]
SWEEP_PRUNINGS: tuple[str, ...] = get_args(SweepPruning)


INT64_MAX = 2**63 - 1
# Ray counts resources in steps of 1/10000.
RESOURCE_STEP = 1e-4


def check_values(v: Any, path: str, depth: int = 0) -> None:
    """Refuse what no field may hold and the database cannot store: NUL characters, numbers that
    are not finite or beyond 64 bits, and nesting deeper than `TUNER_MAX_SPEC_DEPTH`."""
    from tuner.config import get_settings

    limit = get_settings().max_spec_depth
    if depth > limit:
        raise ValueError(f"{path}: nested deeper than {limit} levels (TUNER_MAX_SPEC_DEPTH)")
    if isinstance(v, str):
        if "\x00" in v:
            raise ValueError(f"{path}: NUL characters are not allowed")
    elif isinstance(v, bool):
        return
    elif isinstance(v, int):
        if abs(v) > INT64_MAX:
            raise ValueError(f"{path}: {v} is beyond a 64-bit integer")
    elif isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{path}: must be a finite number, got {v}")
    elif isinstance(v, dict):
        for k, x in v.items():
            check_values(k, f"{path} (a key)", depth + 1)
            check_values(x, f"{path}.{k}" if path else str(k), depth + 1)
    elif isinstance(v, list | tuple):
        for i, x in enumerate(v):
            check_values(x, f"{path}[{i}]", depth + 1)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_true_for_a_number(cls, v: Any, info: ValidationInfo) -> Any:
        """JSON's true and false (YAML's yes and no) are not numbers: pydantic's lax mode took
        `training.epochs: true` as 1 epoch and `budget.n_trials: false` as 0."""
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(v, bool) and field is not None and _numeric(field.annotation):
            raise ValueError(f"a number, not {str(v).lower()}")
        return v


def _numeric(annotation: Any) -> bool:
    """An int or float field (`int | None` too), not one that also takes a bool."""
    kinds = set(get_args(annotation)) or {annotation}
    return bool(kinds & {int, float}) and bool not in kinds


class ComponentRef(_Strict):
    """A registry name plus keyword arguments for its factory. `kind`: the registry a subclass
    names into (its name is checked there, and its params lose their defaults in its key); None
    for a name as listed (`trainable:<name>`), checked nowhere."""

    kind: ClassVar[str | None] = None
    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return v if cls.kind is None else _registered(cls.kind, v)

    def key(self, as_written: bool = False) -> str:
        """What makes it this component in a task's identity: its name and its params, less
        those equal to its factory's own defaults, with a whole number one number however it
        was written (`canonical_params`), unless `as_written`."""
        params = self.params if as_written else self.canonical_params()
        return json.dumps({"name": self.name, "params": params}, sort_keys=True, default=str)

    def canonical_params(self) -> dict[str, Any]:
        params = self.params if self.kind is None else without_defaults(self.kind, self.name,
                                                                        self.params)
        return {k: _one_number(v) for k, v in params.items()}


def _one_number(value: Any) -> Any:
    """`value` with each whole float written as the integer (1.0 as 1): JSON has one kind of
    number, and a JavaScript client or `jq` writes the 1.0 a Python client sends as 1, so a
    `smoothing` of 1 and of 1.0 were two tasks whose runs never met (until 2026-12-07). A
    param that must be an integer refuses 1.0 before this (`tuner.params`,
    `tuner.trainable.check_params`)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list | tuple):
        return [_one_number(v) for v in value]
    if isinstance(value, dict):
        return {k: _one_number(v) for k, v in value.items()}
    return value


def _registry(kind: str) -> Any:
    from tuner.registry import DATASETS, MODELS, TRAINABLES

    return {"model": MODELS, "dataset": DATASETS, "trainable": TRAINABLES}[kind]


def _same_value(a: Any, b: Any) -> bool:
    """Equal as a spec means them: a tuple default and a JSON list, 0 and 0.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def without_defaults(kind: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
    """`params` less those its factory would use anyway (`mlp` with `hidden: [128]` is `mlp`),
    read from the factory's signature (a trainable's from the `params` it declares, if it does);
    the arguments the service passes itself (a model's data info, a dataset's seed) are never
    dropped. A factory without a readable signature keeps them all. A dataset's
    `val_fraction` defaults to the service's 0.2."""
    import inspect

    try:
        factory = _registry(kind).get(name)
        if kind == "trainable":
            from tuner.trainable import declared_params

            defaults = declared_params(factory) or {}
        else:
            signature = inspect.signature(factory)
            defaults = {k: p.default for k, p in signature.parameters.items()
                        if p.default is not inspect.Parameter.empty
                        and k not in ("info", "seed")}
    except (TypeError, ValueError, ImportError, AttributeError, UnknownName):
        return params
    if kind == "dataset":
        defaults["val_fraction"] = DEFAULT_VAL_FRACTION
    return {k: v for k, v in params.items() if not (k in defaults and _same_value(v, defaults[k]))}


def _registered(kind: str, name: str) -> str:
    try:
        _registry(kind).check(name)
    except UnknownName as exc:
        raise ValueError(exc.message) from None
    return name


class ModelRef(ComponentRef):
    kind: ClassVar[str | None] = "model"


class DatasetRef(ComponentRef):
    kind: ClassVar[str | None] = "dataset"


class TrainableRef(ComponentRef):
    """A team's own training loop (an installed `tuner.trainables` entry point), with params."""

    kind: ClassVar[str | None] = "trainable"


class TaskSpec(_Strict):
    """What is trained: a model on a dataset, or a trainable that brings both."""

    model: ModelRef | None = None
    dataset: DatasetRef | None = None
    trainable: TrainableRef | None = None
    metric: str | None = Field(
        default=None,
        description="val_accuracy | val_loss | val_r2; default: val_accuracy for "
        "classification, val_loss for regression",
    )
    direction: Literal["maximize", "minimize"] | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str | None) -> str | None:
        if v is not None and v not in METRICS:
            raise ValueError(unknown("metric", v, METRICS))
        return v

    @model_validator(mode="after")
    def _one_workload(self) -> TaskSpec:
        if self.trainable is not None:
            if self.model is not None or self.dataset is not None:
                raise ValueError("task.trainable brings its own model and data: leave out "
                                 "task.model and task.dataset")
        elif self.model is None or self.dataset is None:
            missing = "task.model" if self.model is None else "task.dataset"
            raise ValueError(f"{missing}: required (or name a task.trainable instead)")
        return self

    @model_validator(mode="after")
    def _direction_matches(self) -> TaskSpec:
        if self.metric and self.direction and self.direction != METRICS[self.metric]:
            raise ValueError(
                f"direction {self.direction!r} contradicts metric {self.metric!r} "
                f"(which is {METRICS[self.metric]}d)"
            )
        return self

    def resolved_metric(self, kind: str) -> str:
        """The metric for a dataset of this kind (classification | regression)."""
        valid = CLASSIFICATION_METRICS if kind == "classification" else REGRESSION_METRICS
        metric = self.metric or valid[0]
        if metric not in valid:
            raise ValueError(
                f"task.metric: {metric!r} does not apply to a {kind} dataset; "
                f"valid choices: {choices(valid)}"
            )
        return metric

    def fingerprint(self, kind: str, data_digest: str | None = None,
                    model_digest: str | None = None, code_digest: str | None = None,
                    as_written: bool = False) -> str:
        """Identity of the task: model ref + dataset ref (or the trainable ref) + metric, and
        for the team's own data and `hf:` model folder the digests of their bytes, for a hub
        reference the fetched copy it reads (`tuner.datasets.data_digest`, `model_digest`),
        for its plugins the digest of their code (`code_digest`): the same file name with
        other contents, the same hub id fetched again, or the same plugin name with other
        code, is another task. Params equal to a factory's defaults are left out (`mlp` and `mlp`
        with `hidden: [128]` are one task); `as_written` keeps them, as tasks stored before
        2026-12-06 were keyed (`tuner.store.jobs.upsert_task` finds those too)."""
        raw = f"{self.workload_key(as_written)}|{self.resolved_metric(kind)}" + (
            f"|data:{data_digest}" if data_digest else "") + (
            f"|model:{model_digest}" if model_digest else "") + (
            f"|code:{code_digest}" if code_digest else "")
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def code_digest(self) -> str | None:
        """The digest of the code this task runs beyond the service's own: the team's plugins
        and the libraries of standard references (`tuner.registry.plugins_digest`); None when
        it runs only the service's own models and datasets."""
        from tuner.registry import plugins_digest

        return plugins_digest(self.model.name if self.model else None,
                              self.dataset.name if self.dataset else None,
                              self.trainable.name if self.trainable else None)

    def workload_key(self, as_written: bool = False) -> str:
        if self.trainable is not None:
            return f"trainable:{self.trainable.key(as_written)}"
        assert self.model is not None and self.dataset is not None
        return f"{self.model.key(as_written)}|{self.dataset.key(as_written)}"

    def names(self, dataset: str | None = None) -> tuple[ComponentRef, ComponentRef]:
        """(model, dataset) as stored and listed: a trainable is `trainable:<name>` on the
        dataset it declares (or `own data`)."""
        if self.trainable is not None:
            return (ComponentRef(name=f"trainable:{self.trainable.name}",
                                 params=self.trainable.params),
                    ComponentRef(name=dataset or "own data"))
        assert self.model is not None and self.dataset is not None
        return self.model, self.dataset


class RangeOverride(_Strict):
    low: float
    high: float
    log: bool | None = None


Override = RangeOverride | bool | int | float


class SpaceSpec(_Strict):
    optimizers: list[str] | None = Field(default=None, description="default: every family")
    schedules: list[str] | None = Field(default=None, description="default: every schedule")
    lookahead_bases: list[str] | None = Field(
        default=None, description="families Lookahead may wrap; default: all but proximal"
    )
    overrides: dict[str, Override] = Field(
        default_factory=dict,
        description='per-parameter: {"adam.lr": {"low": 1e-4, "high": 1e-2}} or a pinned value',
    )
    warmup: bool = Field(default=False, description="sample an optional linear warmup (0-10%)")

    @field_validator("optimizers", "lookahead_bases")
    @classmethod
    def _known_families(cls, v: list[str] | None) -> list[str] | None:
        return _check_names(v, FAMILIES, "optimizer family")

    @field_validator("schedules")
    @classmethod
    def _known_schedules(cls, v: list[str] | None) -> list[str] | None:
        return _check_names(v, SCHEDULES, "schedule")

    @field_validator("lookahead_bases")
    @classmethod
    def _valid_bases(cls, v: list[str] | None) -> list[str] | None:
        for name in v or ():
            if name not in LOOKAHEAD_BASES:
                raise ValueError(
                    f"{name!r} cannot be a Lookahead base; valid choices: "
                    f"{choices(LOOKAHEAD_BASES)}"
                )
        return v

    @property
    def families(self) -> list[str]:
        return list(self.optimizers or FAMILIES)

    @property
    def schedule_names(self) -> list[str]:
        return list(self.schedules or SCHEDULES)

    @property
    def bases(self) -> list[str]:
        return list(self.lookahead_bases or LOOKAHEAD_BASES)

    @field_validator("overrides", mode="before")
    @classmethod
    def _override_shapes(cls, v: Any) -> Any:
        """Each override a pinned value or a range, said so: a string got pydantic's account of
        the union it missed (`overrides.adam.lr.RangeOverride: Input should be a valid
        dictionary ...; overrides.adam.lr.bool: ...`, four lines naming our types)."""
        if not isinstance(v, dict):
            return v
        out = {}
        for key, given in v.items():
            where = f"overrides[{key!r}]"
            ov = given
            if isinstance(ov, dict):
                try:
                    ov = RangeOverride.model_validate(given)
                except ValidationError as exc:
                    e = exc.errors()[0]
                    raise ValueError(
                        f"{where}: a range is {{\"low\": ..., \"high\": ...}} (\"log\": true or "
                        f"false optional); {'.'.join(str(x) for x in e['loc'])}: "
                        f"{e['msg'][0].lower()}{e['msg'][1:]}") from None
            elif ov is None or not isinstance(ov, bool | int | float):
                raise ValueError(f"{where}: a pinned value (a number, or true or false) or a "
                                 f"range {{\"low\": ..., \"high\": ...}}, got {ov!r}")
            out[key] = ov
        return out

    @model_validator(mode="after")
    def _check_overrides(self) -> SpaceSpec:
        for key, ov in self.overrides.items():
            pdef = self.param_def(key)
            _check_override(key, pdef, ov)
        return self

    def valid_param_names(self) -> list[str]:
        names: list[str] = []
        for fam in self.families:
            names += [f"{fam}.{p.name}" for p in FAMILIES[fam].params]
            if fam == "lookahead":
                for base in self.bases:
                    names += [f"lookahead.{base}.{p.name}" for p in FAMILIES[base].params]
        for s in self.schedule_names:
            names += [f"{s}.{p.name}" for p in SCHEDULES[s].params]
            if SCHEDULES[s].warmup:
                names.append(f"{s}.{WARMUP.name}")
        return names

    def param_def(self, key: str) -> ParamDef:
        """The definition behind an override key such as `adam.lr` or `lookahead.adam.lr`."""
        parts = key.split(".")
        owner = parts[0]
        if owner in FAMILIES and owner not in self.families:
            raise ValueError(
                f"overrides[{key!r}]: family {owner!r} is not in space.optimizers "
                f"({choices(self.families)})"
            )
        if owner in SCHEDULES and owner not in self.schedule_names:
            raise ValueError(
                f"overrides[{key!r}]: schedule {owner!r} is not in space.schedules "
                f"({choices(self.schedule_names)})"
            )
        try:
            if owner == "lookahead" and len(parts) == 3:
                if parts[1] not in self.bases:
                    raise KeyError(key)
                return FAMILIES[parts[1]].param(parts[2])
            if len(parts) == 2 and owner in FAMILIES:
                return FAMILIES[owner].param(parts[1])
            if len(parts) == 2 and owner in SCHEDULES:
                if parts[1] == WARMUP.name and SCHEDULES[owner].warmup:
                    return WARMUP
                return SCHEDULES[owner].param(parts[1])
        except KeyError:
            pass
        # The choices of the family or schedule named (a job's space has a hundred keys or more:
        # listed whole, the message buried what was wrong), and the nearest keys.
        valid = self.valid_param_names()
        prefix = ".".join(parts[:2]) if owner == "lookahead" and len(parts) == 3 else owner
        own = [n for n in valid if n.startswith(prefix + ".") and n.count(".") == key.count(".")]
        near = difflib.get_close_matches(key, own or valid, n=3, cutoff=0.75)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        if own:
            raise ValueError(f"overrides: unknown parameter {key!r}; {prefix}'s parameters: "
                             f"{choices(own)}{hint}")
        raise ValueError(
            f"overrides: unknown parameter {key!r}: a key is <family>.<parameter>, "
            f"<schedule>.<parameter> or lookahead.<base>.<parameter>, of this space's families "
            f"({choices(self.families)}) and schedules ({choices(self.schedule_names)}){hint}")


def _check_names(v: list[str] | None, table: dict[str, Any], kind: str) -> list[str] | None:
    if v is None:
        return None
    if not v:
        raise ValueError(f"must name at least one {kind}; valid choices: {choices(table)}")
    for name in v:
        if name not in table:
            raise ValueError(unknown(kind, name, table))
    return list(dict.fromkeys(v))


def _check_override(key: str, pdef: ParamDef, ov: Override) -> None:
    where = f"overrides[{key!r}]"
    if isinstance(ov, RangeOverride):
        if pdef.kind == "bool":
            raise ValueError(f"{where}: {key} is a boolean; pin it to true or false")
        if not (math.isfinite(ov.low) and math.isfinite(ov.high)):
            raise ValueError(f"{where}: low and high must be finite")
        if ov.low > ov.high:
            raise ValueError(f"{where}: low ({ov.low}) > high ({ov.high})")
        if pdef.one_minus and ov.high >= 1:
            raise ValueError(f"{where}: {key} must stay below 1 (got high={ov.high})")
        log = pdef.log if ov.log is None else ov.log
        lo = 1 - ov.high if pdef.one_minus else ov.low
        if log and lo <= 0:
            raise ValueError(f"{where}: a log range needs a positive low (got {lo:g})")
        return
    if pdef.kind == "bool":
        if not isinstance(ov, bool):
            raise ValueError(f"{where}: {key} is a boolean; pin it to true or false")
        return
    if isinstance(ov, bool):
        raise ValueError(f"{where}: {key} is a number; got a boolean")
    if pdef.kind == "int" and float(ov) != int(ov):
        raise ValueError(f"{where}: {key} is an integer; got {ov}")
    if not pdef.contains(ov):
        raise ValueError(
            f"{where}: pinned value {ov} is outside its range [{pdef.low}, {pdef.high}]; "
            f"override the range instead: {{\"low\": ..., \"high\": ...}}"
        )


Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
# The format of the service's own training code: bump it with any change to the built-in loop,
# models, data preparation, optimizers or schedules that changes a trial's value for the same
# configuration, data and seed. Every job records the format it trained under, and it is part
# of the training budget: runs of an earlier release's code are never pooled with this one's
# as repeats (they inform an answer as another budget of the task, by transfer).
TRAINING_FORMAT = 1


class TrainingSpec(_Strict):
    epochs: int = Field(default=10, ge=1, le=1000)
    batch_size: int = Field(default=64, ge=1, le=65536)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    early_stopping_patience: int | None = Field(default=None, ge=1, le=1000)
    precision: Precision = Field(
        default="fp32", description="bf16 autocast applies on GPU; CPU trials run fp32"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    divergence_factor: float = Field(
        default=20.0, gt=1, description="train loss above this × its first value = diverged"
    )
    loader: Literal["auto", "memory", "stream"] = Field(
        default="auto", description="memory: tensors indexed in place (moved to the GPU once "
        "when they fit); stream: a torch DataLoader (workers, pinned memory, per-epoch shuffle "
        "from the seed); auto: memory when the data fits the device, else stream")
    num_workers: int = Field(default=0, ge=0, le=32, description="DataLoader workers (stream)")


class BudgetSpec(_Strict):
    n_trials: int = Field(default=30, ge=1, le=10000)
    timeout_s: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    parallelism: int = Field(default=1, ge=1, le=256)
    # at least a second: the dispatcher looks once per TUNER_POLL_S (1 s)
    stall_s: float | None = Field(default=None, ge=1, le=7 * 24 * 3600, description=(
        "a running trial that reports no epoch for this long is stalled: its worker is "
        "stopped, the trial fails `stalled` and another worker takes its place; default: 5 x "
        "the longest wait for an epoch or a worker's next trial on the worker's GPU model (the "
        "job's, or its task's earlier jobs' at the same batch size, precision, device, loader "
        "and resources; 20 x the longest on other hardware when none was seen on it), at "
        "least 10 minutes; a day while there is none"))


class SearchSpec(_Strict):
    sampler: SamplerName = "tpe"
    # Hyperband, measured against ASHA in docs/benchmarks.md: ASHA reached the target a little
    # more often in a search from scratch, but its history seeds warm starts worse and it prunes
    # nearly every trial after warm-start seeds; `asha` stays one setting away.
    pruner: PrunerName = "hyperband"
    # `similar` beats the default at 50 epochs where the corpus has a similar task
    # (docs/benchmarks.md, search efficiency); it is not the default yet: see the README.
    warm_start: Literal["none", "task", "similar"] = Field(default="none", description=(
        "seed a new job with the best known configurations of the top families: `task` from "
        "this task's history only, `similar` also from the nearest tasks and the reference "
        "corpus, `none` for a search from scratch"))
    defaults_sweep: bool = Field(default=True, description=(
        "begin with one trial per chosen family, the most promising first (the team's history "
        "of the task or similar ones, else the reference corpus), at the configuration "
        "`sweep_start` names"))
    # `corpus` is ahead of literature defaults at 50 epochs on both digits tasks, but settles
    # sooner afterwards (docs/benchmarks.md, search efficiency).
    sweep_start: Literal["corpus", "portfolio", "literature"] = Field(
        default="corpus", description=(
            "the configuration each family's sweep trial runs, and the sweep's order: `corpus`, "
            "the family's configuration with the best mean score over the reference corpus's "
            "tasks, best first; `portfolio`, configurations chosen together, each the one that "
            "most raises the best score found so far over the corpus's tasks; `literature`, the "
            "family's literature defaults (`corpus` and `portfolio` also fall back to them "
            "where the corpus has no start that fits the space)"))
    # `apart` does a little better from scratch but worse for warm starts (docs/benchmarks.md,
    # search efficiency), so it is not the default.
    sweep_pruning: SweepPruning = Field(default="pruner", description=(
        "how the defaults sweep's trials are pruned: `apart`, only against each other, at the "
        "same epoch, from a third of the epochs on (below their median stops); `pruner`, by "
        "`pruner` like every other trial (Hyperband then judges each by the bracket its trial "
        "number falls in)"))
    sweep_share: float = Field(default=0.25, ge=0.0, le=1.0, description=(
        "the defaults sweep takes at most this share of budget.n_trials (at least one trial); "
        "families beyond it are left to the sampler and named in the job's notes"))
    baseline: bool = Field(default=False, description=(
        "run AdamW at its defaults (lr 1e-3) with cosine decay first, to the end (never "
        "pruned), so the answer can say whether following it beats what most teams train with "
        "untuned; needs adamw in space.optimizers and cosine in space.schedules, at ranges "
        "that hold their defaults"))
    baseline_runs: int = Field(default=1, ge=1, le=MAX_BASELINE_RUNS, description=(
        "that many runs of the baseline, each with its own seed (out of the search's trials); "
        "above 1 it implies baseline: true. One run is judged with the task's pooled noise; on "
        "a small validation set whose repeats all give the same value there is none, and only "
        "runs of the baseline itself measure a spread (5 or more: an interval over 2 runs is "
        "12.7 sd wide)"))
    # The confirmation race (tuner.confirm): on by default, so every job measures its noise.
    confirm_top_k: int = Field(default=3, ge=0, le=20, description=(
        "leading configurations (best of the top families) re-run with new seeds after the "
        "search; 0 turns confirmation off"))
    confirm_seeds: int = Field(default=3, ge=0, le=MAX_CONFIRM_SEEDS, description=(
        "at most this many extra seeds per configuration"))
    confirm_share: float = Field(default=0.25, ge=0.0, le=0.9, description=(
        "share of budget.n_trials reserved for confirmation runs (the search gets the rest); "
        "the race stops early once the leader is separated"))
    second_look: bool = Field(default=True, description=(
        "before the race, out of its reserved runs: one complete run of each family (at most "
        "confirm_top_k, and a third of the reserved runs) whose trials were all stopped early, "
        "one of them while level with the "
        "leader's runs at the same epoch (the pruner judged it against the trials beside it, "
        "not against the leader); it then races like a search run"))

    @model_validator(mode="before")
    @classmethod
    def _baseline_runs_imply_the_baseline(cls, data: Any) -> Any:
        """`baseline_runs: 3` alone asks for the baseline, as `--baseline-runs 3` does (it was
        refused with "needs search.baseline: true"); an explicit `baseline: false` beside it
        still is."""
        if isinstance(data, dict) and "baseline" not in data and \
                data.get("baseline_runs") not in (None, 1):
            return {**data, "baseline": True}
        return data

    @field_validator("baseline_runs")
    @classmethod
    def _baseline_runs_need_the_baseline(cls, v: int, info: ValidationInfo) -> int:
        if v != 1 and not info.data.get("baseline"):  # baseline is declared before it
            raise ValueError("needs search.baseline: true (it is false)")
        return v

    @field_validator("sampler", "pruner", mode="before")
    @classmethod
    def _known_name(cls, v: Any, info: ValidationInfo) -> Any:
        valid = SAMPLERS if info.field_name == "sampler" else PRUNERS
        if v not in valid:
            raise ValueError(unknown(str(info.field_name), v, valid))
        return v


class ResourcesSpec(_Strict):
    cpus_per_trial: float = Field(default=1.0, gt=0, le=256)
    gpus_per_trial: float = Field(default=0.0, ge=0, le=16)

    @field_validator("cpus_per_trial", "gpus_per_trial")
    @classmethod
    def _ray_precision(cls, v: float) -> float:
        steps = v / RESOURCE_STEP
        if v and (v < RESOURCE_STEP or abs(steps - round(steps)) > 1e-6):
            raise ValueError(f"Ray counts resources in steps of {RESOURCE_STEP:g}; got {v:g}")
        return v

    @field_validator("gpus_per_trial")
    @classmethod
    def _gpu_fraction(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError(f"more than one GPU must be a whole number (got {v})")
        return v


class JobSpec(_Strict):
    """Everything a tuning job needs: task, space, training, budget, search and resources."""

    task: TaskSpec
    space: SpaceSpec = Field(default_factory=SpaceSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        check_values(data, "")
        return data


# The settings beyond the task that set how long an epoch takes (the batch, the arithmetic, the
# device, how data is fed, the share of a machine): two jobs of one task with the same ones train
# at about the same pace, so one's waits for an epoch tell the other when a trial has stalled.
PACE_FIELDS: Final = (("training", "batch_size"), ("training", "precision"),
                      ("training", "device"), ("training", "loader"), ("training", "num_workers"),
                      ("resources", "cpus_per_trial"), ("resources", "gpus_per_trial"))


def epoch_pace(spec: dict[str, Any]) -> tuple[Any, ...]:
    """A job's PACE_FIELDS, from its spec as stored (`JobSpec.model_dump(mode="json")`)."""
    return tuple((spec.get(part) or {}).get(name) for part, name in PACE_FIELDS)


def format_validation_error(exc: Exception) -> str:
    """One readable line per problem: `field.path: message`."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "spec"
        lines.append(f"{loc}: {error_message(err)}")
    return "\n".join(lines)


def error_message(err: Any) -> str:
    """A pydantic error's message as a job spec's author should read it. A field the spec has
    no place for names the fields its section has, and where the field is meant to go:
    `search.n_trials` read "Extra inputs are not permitted", though `budget.n_trials` is the
    number of trials (a field put one section off is the likely slip). The error's path is read
    from the JobSpec (the API's body: its `body` part is skipped); an error of another model
    (only the spec forbids extra fields) keeps pydantic's message."""
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err.get("type") != "extra_forbidden":
        return msg
    *path, name = [p for p in err["loc"] if p != "body"]
    model: Any = JobSpec
    for part in path:  # the section the field was put in
        field = model.model_fields.get(str(part))
        kinds = (get_args(field.annotation) or (field.annotation,)) if field else ()
        model = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)),
                     None)
        if model is None:
            return msg
    own = list(model.model_fields)
    where = "a job spec" if not path else ".".join(map(str, path))
    # Another section's field of that name; else a near spelling of one of this section's;
    # else of another section's (`task.epoch` for training.epochs).
    elsewhere = [f"{s}.{name}" for s, cls in _SECTIONS.items()
                 if str(name) in cls.model_fields and s != where]
    near = [repr(n) for n in difflib.get_close_matches(str(name), own, n=2, cutoff=0.75)]
    if not elsewhere and not near:
        fields = {f: f"{s}.{f}" for s, cls in reversed(_SECTIONS.items()) for f in cls.model_fields
                  if s != where}
        elsewhere = [fields[f] for f in difflib.get_close_matches(str(name), list(fields), n=2,
                                                                   cutoff=0.8)]
    hint = f"; did you mean {' or '.join(elsewhere or near)}?" if elsewhere or near else ""
    # An optimizer's parameter (`lr`): each family has its own, set in space.overrides.
    owners = [f for f, fam in FAMILIES.items() if any(p.name == name for p in fam.params)]
    if not hint and owners:
        hint = (f"; an optimizer's {name} is its family's own, set in space.overrides: "
                f"'{owners[0]}.{name}': a value pins it, {{low: ..., high: ...}} sets its range")
    return f"no field {str(name)!r} in {where}; its fields: {', '.join(own)}{hint}"


# Where a field of each section lives (`error_message`'s hint for one put in the wrong place).
_SECTIONS: Final[dict[str, type[BaseModel]]] = {
    "task": TaskSpec, "space": SpaceSpec, "training": TrainingSpec, "budget": BudgetSpec,
    "search": SearchSpec, "resources": ResourcesSpec}
