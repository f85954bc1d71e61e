"""Build the LR schedule of a configuration from `torch.optim.lr_scheduler`.

Schedules step per mini-batch over the whole run (`total_steps`), except reduce-on-plateau, which
steps once per epoch on the validation metric. The optional linear warmup is a `LinearLR` chained
in front with `SequentialLR`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch.optim import lr_scheduler as lrs

from tuner.errors import UnknownName
from tuner.space import SCHEDULES, TrialConfig

WARMUP_START_FACTOR = 0.01


@dataclass
class LRSchedule:
    """Drives one torch scheduler: `after_batch()` each optimizer step, `after_epoch(metric)`."""

    scheduler: Any
    per_epoch: bool

    def after_batch(self) -> None:
        if not self.per_epoch:
            self.scheduler.step()

    def after_epoch(self, metric: float) -> None:
        if self.per_epoch and math.isfinite(metric):
            self.scheduler.step(metric)


def _param(config: TrialConfig, name: str) -> Any:
    p = config.schedule_params()
    return p[name] if name in p else SCHEDULES[config.schedule].param(name).default


def build_schedule(config: TrialConfig, optimizer: torch.optim.Optimizer, total_steps: int,
                   mode: Literal["min", "max"] = "min") -> LRSchedule:
    """The schedule for `total_steps` optimizer steps; `mode` is the metric's direction."""
    name = config.schedule
    if name not in SCHEDULES:
        raise UnknownName("schedule", "schedule", name, SCHEDULES)
    total = max(int(total_steps), 1)
    lr = float(optimizer.param_groups[0]["lr"])

    if name == "plateau":
        return LRSchedule(lrs.ReduceLROnPlateau(
            optimizer, mode=mode, factor=float(_param(config, "factor")),
            patience=int(_param(config, "patience"))), per_epoch=True)

    if name == "warmup_cosine":
        warm_frac = float(_param(config, "warmup_fraction"))
    elif SCHEDULES[name].warmup:
        warm_frac = float(config.schedule_params().get("warmup_fraction", 0.0))
    else:
        warm_frac = 0.0
    warm = min(round(warm_frac * total), total - 1)
    main = total - warm

    sched: Any
    match name:
        case "constant":
            sched = lrs.LambdaLR(optimizer, lambda _step: 1.0)
        case "step":
            size = max(1, round(float(_param(config, "step_fraction")) * main))
            sched = lrs.StepLR(optimizer, step_size=size, gamma=float(_param(config, "gamma")))
        case "multistep":
            milestones = sorted({max(1, int(main * 0.5)), max(1, int(main * 0.75))})
            sched = lrs.MultiStepLR(optimizer, milestones=milestones,
                                    gamma=float(_param(config, "gamma")))
        case "exponential":
            gamma = float(_param(config, "final_fraction")) ** (1.0 / main)
            sched = lrs.ExponentialLR(optimizer, gamma=gamma)
        case "cosine" | "warmup_cosine":
            eta_min = lr * float(_param(config, "min_fraction")) if name == "cosine" else 0.0
            sched = lrs.CosineAnnealingLR(optimizer, T_max=main, eta_min=eta_min)
        case "cosine_restarts":
            cycles = int(_param(config, "cycles"))
            sched = lrs.CosineAnnealingWarmRestarts(optimizer, T_0=max(1, main // cycles))
        case "one_cycle":
            sched = lrs.OneCycleLR(optimizer, max_lr=lr, total_steps=total,
                                   pct_start=float(_param(config, "pct_start")),
                                   div_factor=float(_param(config, "div_factor")),
                                   cycle_momentum=False)
        case "polynomial":
            sched = lrs.PolynomialLR(optimizer, total_iters=main,
                                     power=float(_param(config, "power")))
        case _:  # pragma: no cover
            raise AssertionError(name)

    if warm > 0:
        warmup = lrs.LinearLR(optimizer, start_factor=WARMUP_START_FACTOR, end_factor=1.0,
                              total_iters=warm)
        sched = lrs.SequentialLR(optimizer, [warmup, sched], milestones=[warm])
    return LRSchedule(sched, per_epoch=False)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
