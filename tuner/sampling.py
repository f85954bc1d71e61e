"""The resolved search space of a spec: sample a configuration from an Optuna trial, and build
the defaults sweep (every chosen family once at its literature defaults)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuner.space import (
    DEFAULT_LOOKAHEAD_BASE,
    FAMILIES,
    SCHEDULES,
    WARMUP,
    ParamDef,
    ParamRange,
    TrialConfig,
    optuna_name,
    optuna_range,
    to_optuna_value,
)
from tuner.spec import RangeOverride, SpaceSpec

if TYPE_CHECKING:
    import optuna

DEFAULT_SWEEP_SCHEDULE = "constant"


class SearchSpace:
    """A `SpaceSpec` resolved against the default tables."""

    def __init__(self, spec: SpaceSpec | None = None) -> None:
        self.spec = spec or SpaceSpec()
        self.families = self.spec.families
        self.schedules = self.spec.schedule_names
        self.bases = self.spec.bases

    # ranges ---------------------------------------------------------------------------------
    def range(self, full_name: str, p: ParamDef) -> ParamRange:
        ov = self.spec.overrides.get(full_name)
        if isinstance(ov, RangeOverride):
            return ParamRange(p, ov.low, ov.high, p.log if ov.log is None else ov.log)
        r = ParamRange(p, p.low, p.high, p.log)
        if ov is not None:
            r.pinned = bool(ov) if p.kind == "bool" else (int(ov) if p.kind == "int" else float(ov))
        return r

    def _owner_params(self, prefix: str, params: tuple[ParamDef, ...]) -> list[tuple[str, ParamRange]]:
        return [(f"{prefix}.{p.name}", self.range(f"{prefix}.{p.name}", p)) for p in params]

    def family_ranges(self, family: str, prefix: str | None = None) -> list[tuple[str, ParamRange]]:
        return self._owner_params(prefix or family, FAMILIES[family].params)

    def schedule_ranges(self, schedule: str) -> list[tuple[str, ParamRange]]:
        s = SCHEDULES[schedule]
        params = s.params + ((WARMUP,) if self.spec.warmup and s.warmup else ())
        return self._owner_params(schedule, params)

    def optuna_names(self) -> dict[str, str]:
        """Optuna's name of each parameter sampled under another name -> how the public value
        follows from it (`adam.one_minus_beta1` -> `adam.beta1 = 1 - value`): the mapping
        tools that read the study directly (optuna-dashboard) need. Every other parameter is
        stored under its public name."""
        groups = [self.family_ranges(f) for f in self.families if f != "lookahead"]
        if "lookahead" in self.families:
            groups += [self.family_ranges("lookahead")]
            groups += [self.family_ranges(b, f"lookahead.{b}") for b in self.bases]
        groups += [self.schedule_ranges(s) for s in self.schedules]
        return {optuna_name(full, r.param): f"{full} = 1 - value"
                for group in groups for full, r in group if r.param.one_minus}

    # sampling -------------------------------------------------------------------------------
    def sample(self, trial: optuna.Trial) -> TrialConfig:
        """Sample one configuration; parameters are conditional on family and schedule."""
        optimizer = str(trial.suggest_categorical("optimizer", self.families))
        schedule = str(trial.suggest_categorical("schedule", self.schedules))
        params: dict[str, Any] = {}
        if optimizer == "lookahead":
            base = str(trial.suggest_categorical("lookahead.base", self.bases))
            params["lookahead.base"] = base
            self._sample_group(trial, self.family_ranges("lookahead"), params)
            self._sample_group(trial, self.family_ranges(base, f"lookahead.{base}"), params)
        else:
            self._sample_group(trial, self.family_ranges(optimizer), params)
        self._sample_group(trial, self.schedule_ranges(schedule), params)
        return TrialConfig(optimizer, schedule, params)

    def _sample_group(self, trial: optuna.Trial, group: list[tuple[str, ParamRange]],
                      out: dict[str, Any]) -> None:
        for full, r in group:
            p = r.param
            if p.requires:
                sibling = full.rsplit(".", 1)[0] + "." + p.requires
                if not out.get(sibling):
                    continue
            if r.pinned is not None:
                out[full] = r.pinned
                continue
            name = optuna_name(full, p)
            if p.kind == "bool":
                out[full] = bool(trial.suggest_categorical(name, [False, True]))
            elif p.kind == "int":
                assert r.low is not None and r.high is not None
                out[full] = trial.suggest_int(name, int(r.low), int(r.high), log=r.log)
            else:
                assert r.low is not None and r.high is not None
                lo, hi = optuna_range(p, r.low, r.high)
                v = trial.suggest_float(name, lo, hi, log=r.log)
                out[full] = 1.0 - v if p.one_minus else v

    # defaults sweep -------------------------------------------------------------------------
    def sweep_schedule(self) -> str:
        return DEFAULT_SWEEP_SCHEDULE if DEFAULT_SWEEP_SCHEDULE in self.schedules else self.schedules[0]

    def defaults(self) -> list[dict[str, Any]]:
        """Optuna parameter dicts, one per chosen family at its literature defaults."""
        schedule = self.sweep_schedule()
        out = []
        for family in self.families:
            params: dict[str, Any] = {"optimizer": family, "schedule": schedule}
            if family == "lookahead":
                base = DEFAULT_LOOKAHEAD_BASE if DEFAULT_LOOKAHEAD_BASE in self.bases else self.bases[0]
                params["lookahead.base"] = base
                self._defaults_group(self.family_ranges("lookahead"), params)
                self._defaults_group(self.family_ranges(base, f"lookahead.{base}"), params)
            else:
                self._defaults_group(self.family_ranges(family), params)
            self._defaults_group(self.schedule_ranges(schedule), params)
            out.append(params)
        return out

    def _defaults_group(self, group: list[tuple[str, ParamRange]], out: dict[str, Any]) -> None:
        active: dict[str, Any] = {}
        for full, r in group:
            p = r.param
            value = r.pinned if r.pinned is not None else p.default
            active[full] = value
            if p.requires and not active.get(full.rsplit(".", 1)[0] + "." + p.requires):
                continue
            if r.pinned is not None:
                continue  # not part of Optuna's space
            if p.kind != "bool":
                assert r.low is not None and r.high is not None
                value = min(max(float(value), r.low), r.high)  # keep inside overridden ranges
                if p.kind == "int":
                    value = round(value)
            out[optuna_name(full, p)] = to_optuna_value(p, value)

    def optuna_params(self, config: TrialConfig) -> dict[str, Any] | None:
        """A known configuration as Optuna parameters of this space (to enqueue it), values
        clamped into this space's ranges; None when its family or schedule is not searched."""
        if config.optimizer not in self.families or config.schedule not in self.schedules:
            return None
        out: dict[str, Any] = {"optimizer": config.optimizer, "schedule": config.schedule}
        groups = []
        if config.optimizer == "lookahead":
            base = config.base_family
            if base not in self.bases:
                return None
            out["lookahead.base"] = base
            groups += [self.family_ranges("lookahead"),
                       self.family_ranges(base, f"lookahead.{base}")]
        else:
            groups.append(self.family_ranges(config.optimizer))
        groups.append(self.schedule_ranges(config.schedule))
        for group in groups:
            for full, r in group:
                p = r.param
                if r.pinned is not None:
                    continue
                if p.requires:
                    sibling = full.rsplit(".", 1)[0] + "." + p.requires
                    if not config.params.get(sibling, r.pinned):
                        continue
                value = config.params.get(full, p.default)
                if p.kind == "bool":
                    out[optuna_name(full, p)] = bool(value)
                    continue
                assert r.low is not None and r.high is not None
                value = min(max(float(value), r.low), r.high)
                if p.kind == "int":
                    value = round(value)
                out[optuna_name(full, p)] = to_optuna_value(p, value)
        return out

    def to_json(self) -> dict[str, Any]:
        """The effective space (families, schedules, ranges after overrides)."""
        fams: dict[str, Any] = {}
        for f in self.families:
            entry: dict[str, Any] = {"params": {n: r.to_json() for n, r in self.family_ranges(f)}}
            if f == "lookahead":
                entry["bases"] = {
                    b: {n: r.to_json() for n, r in self.family_ranges(b, f"lookahead.{b}")}
                    for b in self.bases
                }
            fams[f] = entry
        return {
            "optimizers": fams,
            "schedules": {s: {"params": {n: r.to_json() for n, r in self.schedule_ranges(s)}}
                          for s in self.schedules},
            "spec": self.spec.model_dump(mode="json"),
        }
