"""The default search space: optimizer families and LR schedules, each with its own parameters.

Every parameter belongs to a family (`adam.lr`, `sgd.lr`) or a schedule (`step.gamma`): there is
never one `lr` shared across families, and `momentum` is never sampled for Adam. Moment decay
rates near 1 (β1, β2, rho, alpha, momentum) are sampled log-uniformly in `1 − x`, the scale on which
they matter; their names and ranges are still given in `x` itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from tuner.trial import config_key

ParamKind = Literal["float", "int", "bool"]


@dataclass(frozen=True)
class ParamDef:
    """One tunable parameter: its range, scale and literature default."""

    name: str
    kind: ParamKind
    default: float | int | bool
    low: float | None = None
    high: float | None = None
    log: bool = False
    # Sample log-uniformly in 1 − x (x itself stays in [low, high]).
    one_minus: bool = False
    # Parameter only exists when this boolean sibling is true (e.g. `l2` needs `l2_on`).
    requires: str | None = None
    help: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "default": self.default}
        if self.kind != "bool":
            out.update(low=self.low, high=self.high, log=self.log)
        if self.one_minus:
            out["scale"] = "log(1-x)"
        if self.requires:
            out["requires"] = self.requires
        if self.help:
            out["help"] = self.help
        return out

    def contains(self, value: float | int | bool) -> bool:
        if self.kind == "bool":
            return isinstance(value, bool)
        assert self.low is not None and self.high is not None
        return self.low <= float(value) <= self.high


def _f(name: str, low: float, high: float, default: float, *, log: bool = False,
       one_minus: bool = False, requires: str | None = None, help: str = "") -> ParamDef:
    return ParamDef(name, "float", default, low, high, log, one_minus, requires, help)


def _i(name: str, low: int, high: int, default: int, help: str = "") -> ParamDef:
    return ParamDef(name, "int", default, low, high, help=help)


def _b(name: str, default: bool, help: str = "") -> ParamDef:
    return ParamDef(name, "bool", default, help=help)


def _l2(default: float = 5e-4) -> tuple[ParamDef, ...]:
    """Coupled L2 weight decay (added to the gradient), on/off, for families without decoupled decay."""
    return (
        _b("l2_on", False, "coupled L2 weight decay on/off"),
        _f("l2", 1e-7, 1e-2, default, log=True, requires="l2_on",
           help="coupled L2 weight decay (added to the gradient)"),
    )


def _adam_like(lr: float = 1e-3) -> tuple[ParamDef, ...]:
    return (
        _f("lr", 1e-5, 1e-1, lr, log=True),
        _f("beta1", 0.5, 0.99, 0.9, log=True, one_minus=True, help="first-moment decay rate"),
        _f("beta2", 0.9, 0.9999, 0.999, log=True, one_minus=True, help="second-moment decay rate"),
        _f("eps", 1e-10, 1e-6, 1e-8, log=True),
    )


class _HasParams:
    params: tuple[ParamDef, ...]

    def param(self, name: str) -> ParamDef:
        """The parameter called `name` (short name, e.g. `lr`); KeyError if absent."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)


@dataclass(frozen=True)
class FamilyDef(_HasParams):
    """An optimizer family: the torch class behind it and its parameters."""

    name: str
    torch_name: str
    params: tuple[ParamDef, ...]
    help: str
    wrapper: bool = False  # lookahead: wraps a base family


_LR_SGD = _f("lr", 1e-4, 1.0, 1e-2, log=True)
_MOMENTUM = _f("momentum", 0.5, 0.999, 0.9, log=True, one_minus=True, help="heavy-ball momentum")

FAMILIES: dict[str, FamilyDef] = {
    f.name: f
    for f in (
        FamilyDef("sgd", "SGD", (_LR_SGD, *_l2()), "plain stochastic gradient descent"),
        FamilyDef("momentum", "SGD(momentum, dampening=0)", (_LR_SGD, _MOMENTUM, *_l2()),
                  "heavy-ball momentum (Polyak)"),
        FamilyDef("nesterov", "SGD(nesterov=True)", (_LR_SGD, _MOMENTUM, *_l2()),
                  "Nesterov accelerated gradient"),
        FamilyDef("adam", "Adam", (*_adam_like(), *_l2()), "Adam (Kingma & Ba)"),
        FamilyDef("adamw", "AdamW", (*_adam_like(),
                                     _f("weight_decay", 1e-4, 1.0, 1e-2, log=True,
                                        help="decoupled weight decay")),
                  "Adam with decoupled weight decay (Loshchilov & Hutter)"),
        FamilyDef("nadam", "NAdam", (*_adam_like(2e-3), *_l2()), "Adam with Nesterov momentum"),
        FamilyDef("radam", "RAdam", (*_adam_like(), *_l2()), "rectified Adam"),
        FamilyDef("adamax", "Adamax", (*_adam_like(2e-3), *_l2()), "Adam with the infinity norm"),
        FamilyDef("rmsprop", "RMSprop", (
            _f("lr", 1e-5, 1e-1, 1e-2, log=True),
            _f("alpha", 0.9, 0.999, 0.99, log=True, one_minus=True,
               help="squared-gradient decay rate"),
            _f("momentum", 0.0, 0.9, 0.0),
            *_l2()), "RMSprop (Hinton)"),
        FamilyDef("adagrad", "Adagrad", (
            _f("lr", 1e-4, 1.0, 1e-2, log=True),
            _f("lr_decay", 0.0, 1e-2, 0.0),
            *_l2()), "Adagrad (Duchi et al.)"),
        FamilyDef("adadelta", "Adadelta", (
            _f("lr", 1e-2, 10.0, 1.0, log=True),
            _f("rho", 0.8, 0.99, 0.9, log=True, one_minus=True, help="running-average decay rate"),
            *_l2()), "Adadelta (Zeiler)"),
        FamilyDef("adafactor", "Adafactor", (
            _f("lr", 1e-4, 1e-1, 1e-2, log=True),
            _f("weight_decay", 1e-4, 1.0, 1e-4, log=True, help="decoupled weight decay"),
        ), "Adafactor (Shazeer & Stern), factored second moments"),
        FamilyDef("lookahead", "pytorch_optimizer.Lookahead", (
            _i("k", 3, 10, 5, help="fast steps per slow update"),
            _f("alpha", 0.3, 0.8, 0.5, help="slow-weight step size"),
        ), "Lookahead (Zhang et al.) around a base family; the base's parameters are "
           "named lookahead.<base>.<param>", wrapper=True),
        FamilyDef("proximal", "SGD step + L1 soft-threshold", (
            _LR_SGD,
            _f("l1", 1e-6, 1e-2, 1e-4, log=True, help="L1 penalty (soft-threshold lr*l1)"),
        ), "proximal gradient descent for an L1 penalty"),
    )
}

# Families Lookahead may wrap (not itself, not proximal: its prox step is its own loop).
LOOKAHEAD_BASES: tuple[str, ...] = tuple(
    n for n in FAMILIES if n not in ("lookahead", "proximal")
)
DEFAULT_LOOKAHEAD_BASE = "adam"


@dataclass(frozen=True)
class ScheduleDef(_HasParams):
    """An LR schedule: its parameters, and whether the optional linear warmup applies."""

    name: str
    params: tuple[ParamDef, ...]
    help: str
    warmup: bool = True  # accepts the optional linear warmup
    per_epoch: bool = False  # steps on the validation metric once per epoch


SCHEDULES: dict[str, ScheduleDef] = {
    s.name: s
    for s in (
        ScheduleDef("constant", (), "constant learning rate"),
        ScheduleDef("step", (
            _f("step_fraction", 0.1, 0.5, 0.33, help="decay every this fraction of the run"),
            _f("gamma", 0.1, 0.9, 0.1, help="decay factor per step"),
        ), "step decay"),
        ScheduleDef("multistep", (
            _f("gamma", 0.05, 0.5, 0.1, log=True, help="decay factor at 50% and 75% of the run"),
        ), "multi-step decay at 50% and 75% of the run"),
        ScheduleDef("exponential", (
            _f("final_fraction", 1e-3, 0.5, 0.01, log=True,
               help="lr at the end of the run / initial lr"),
        ), "exponential decay"),
        ScheduleDef("cosine", (
            _f("min_fraction", 0.0, 0.1, 0.0, help="final lr / initial lr"),
        ), "cosine annealing over the run"),
        ScheduleDef("cosine_restarts", (
            _i("cycles", 1, 4, 2, help="number of cosine cycles over the run"),
        ), "cosine annealing with warm restarts (SGDR)"),
        ScheduleDef("warmup_cosine", (
            _f("warmup_fraction", 0.01, 0.1, 0.05, help="linear warmup, fraction of the run"),
        ), "linear warmup then cosine decay", warmup=False),
        ScheduleDef("one_cycle", (
            _f("pct_start", 0.1, 0.4, 0.3, help="fraction of the run spent increasing lr"),
            _f("div_factor", 5.0, 100.0, 25.0, log=True, help="initial lr = lr / div_factor"),
        ), "one-cycle policy (Smith); the family's lr is the peak", warmup=False),
        ScheduleDef("polynomial", (
            _f("power", 0.5, 3.0, 1.0, help="1 = linear decay to zero"),
        ), "polynomial decay to zero (power 1: linear)"),
        ScheduleDef("plateau", (
            _f("factor", 0.1, 0.5, 0.1, help="lr multiplier when the metric stalls"),
            _i("patience", 0, 3, 1, help="epochs without improvement before decaying"),
        ), "reduce on plateau of the validation metric", warmup=False, per_epoch=True),
    )
}

WARMUP = _f("warmup_fraction", 0.0, 0.1, 0.0, help="optional linear warmup, fraction of the run")


# What most teams train with untuned, the bar an answer must clear to be worth following: AdamW
# at its literature defaults (lr 1e-3, betas 0.9 / 0.999, eps 1e-8, weight decay 0.01) with
# cosine decay to 0 and no warmup. `search.baseline` runs it in a job; the answer compares its
# leader with it.
BASELINE = ("adamw", "cosine")
BASELINE_LABEL = "AdamW at lr 1e-3 with cosine decay (its defaults, no tuning)"


def baseline_values() -> dict[str, float]:
    """The baseline's parameters under their full names (`adamw.lr`: 1e-3, ...)."""
    fam, sched = FAMILIES[BASELINE[0]], SCHEDULES[BASELINE[1]]
    out = {f"{fam.name}.{p.name}": float(p.default) for p in fam.params}
    out.update({f"{sched.name}.{p.name}": float(p.default) for p in (*sched.params, WARMUP)})
    return out


def baseline_keys() -> list[str]:
    """The configuration keys (`tuner.trial.config_key`) the baseline is recorded under: its
    parameters, with the warmup where the space turned it on (at 0) and without. What the
    store looks its runs up by (an index), before `is_baseline` checks each."""
    values = baseline_values()
    without = {k: v for k, v in values.items() if not k.endswith(".warmup_fraction")}
    return [k for p in (values, without) if (k := config_key(*BASELINE, p)) is not None]


def is_baseline(optimizer: str, schedule: str | None, params: dict[str, Any]) -> bool:
    """Is this configuration the baseline? Its family and schedule, and every parameter it
    recorded at the baseline's value (a parameter the space pinned is recorded too; the warmup
    is recorded only where the space turned it on)."""
    if (optimizer, schedule) != BASELINE or f"{BASELINE[0]}.lr" not in params:
        return False
    want = baseline_values()
    return all(k in want and isinstance(v, int | float) and not isinstance(v, bool)
               and math.isclose(float(v), want[k], rel_tol=1e-9, abs_tol=1e-12)
               for k, v in params.items())


def optuna_name(full_name: str, p: ParamDef) -> str:
    """The name Optuna sees: `adam.one_minus_beta1` for parameters sampled in 1 − x."""
    if not p.one_minus:
        return full_name
    prefix, _, last = full_name.rpartition(".")
    return f"{prefix}.one_minus_{last}"


def from_optuna_params(params: dict[str, Any]) -> TrialConfig | None:
    """The configuration a trial sampled, from Optuna's parameters (`optimizer`, `schedule`,
    `adam.one_minus_beta1` -> `adam.beta1 = 1 - value`); None without an optimizer. For a trial
    whose worker was lost before it stored its configuration (parameters pinned by the space
    were never sampled, so they are absent)."""
    if "optimizer" not in params:
        return None
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name in ("optimizer", "schedule"):
            continue
        prefix, _, last = name.rpartition(".")
        if last.startswith("one_minus_"):
            out[f"{prefix}.{last.removeprefix('one_minus_')}"] = 1.0 - float(value)
        else:
            out[name] = value
    return TrialConfig(str(params["optimizer"]), str(params.get("schedule", "constant")), out)


def to_optuna_value(p: ParamDef, value: float | int | bool) -> float | int | bool:
    return 1.0 - float(value) if p.one_minus else value


def optuna_range(p: ParamDef, low: float, high: float) -> tuple[float, float]:
    return (1.0 - high, 1.0 - low) if p.one_minus else (low, high)


@dataclass
class ParamRange:
    """A parameter's effective range after spec overrides; `pinned` fixes it."""

    param: ParamDef
    low: float | None
    high: float | None
    log: bool
    pinned: float | int | bool | None = None

    def to_json(self) -> dict[str, Any]:
        d = self.param.to_json()
        if self.param.kind != "bool":
            d.update(low=self.low, high=self.high, log=self.log)
        if self.pinned is not None:
            d["pinned"] = self.pinned
        return d


@dataclass
class TrialConfig:
    """A sampled configuration: what the optimizer/schedule factories build from."""

    optimizer: str
    schedule: str
    # Full names -> values, e.g. {"adam.lr": 1e-3, "step.gamma": 0.1, "warmup_fraction": 0.0}
    params: dict[str, Any] = field(default_factory=dict)

    def family_params(self, family: str, prefix: str | None = None) -> dict[str, Any]:
        pre = (prefix or family) + "."
        return {k[len(pre):]: v for k, v in self.params.items()
                if k.startswith(pre) and "." not in k[len(pre):]}

    def schedule_params(self) -> dict[str, Any]:
        return self.family_params(self.schedule)

    @property
    def base_family(self) -> str | None:
        base = self.params.get("lookahead.base")
        return str(base) if self.optimizer == "lookahead" and base is not None else None

    def to_json(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "schedule": self.schedule, "params": dict(self.params)}


def default_space_json() -> dict[str, Any]:
    """The default search space as JSON (what `tuner space --json` prints)."""
    return {
        "optimizers": {
            name: {
                "torch": f.torch_name,
                "help": f.help,
                "params": {f"{name}.{p.name}": p.to_json() for p in f.params},
                **({"bases": list(LOOKAHEAD_BASES), "default_base": DEFAULT_LOOKAHEAD_BASE}
                   if f.wrapper else {}),
            }
            for name, f in FAMILIES.items()
        },
        "schedules": {
            name: {
                "help": s.help,
                "per_epoch": s.per_epoch,
                "warmup": s.warmup,
                "params": {f"{name}.{p.name}": p.to_json() for p in s.params},
            }
            for name, s in SCHEDULES.items()
        },
        "warmup": {"param": "<schedule>.warmup_fraction", **WARMUP.to_json(),
                   "enabled_by": "space.warmup=true"},
    }


def check_log_range(low: float, high: float) -> bool:
    return low > 0 and high > 0 and math.isfinite(low) and math.isfinite(high)
