"""Each schedule produces the expected lr curve (closed forms, per optimizer step)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from tuner.schedules import build_schedule
from tuner.space import SCHEDULES, TrialConfig

T = 100
LR = 0.1


def _curve(schedule: str, params: dict[str, float], steps: int = T) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = build_schedule(TrialConfig("sgd", schedule,
                                       {f"{schedule}.{k}": v for k, v in params.items()}), opt, T)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.after_batch()
    return lrs


def _cos(t: int, n: int, lo: float = 0.0) -> float:
    return lo + (LR - lo) * (1 + math.cos(math.pi * t / n)) / 2


EXPECTED: dict[str, tuple[dict[str, float], Callable[[int], float]]] = {
    "constant": ({}, lambda t: LR),
    "step": ({"step_fraction": 0.25, "gamma": 0.5}, lambda t: LR * 0.5 ** (t // 25)),
    "multistep": ({"gamma": 0.1}, lambda t: LR * 0.1 ** ((t >= 50) + (t >= 75))),
    "exponential": ({"final_fraction": 0.01}, lambda t: LR * 0.01 ** (t / T)),
    "cosine": ({"min_fraction": 0.1}, lambda t: _cos(t, T, 0.1 * LR)),
    "cosine_restarts": ({"cycles": 2}, lambda t: _cos(t % 50, 50)),
    "polynomial": ({"power": 1.0}, lambda t: LR * (1 - t / T)),
    "warmup_cosine": ({"warmup_fraction": 0.1},
                      lambda t: LR * (0.01 + 0.99 * t / 10) if t < 10 else _cos(t - 10, 90)),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_schedule_curve(name: str) -> None:
    params, f = EXPECTED[name]
    got = _curve(name, params)
    want = [f(t) for t in range(T)]
    assert got == pytest.approx(want, rel=1e-5, abs=1e-9)


def test_optional_linear_warmup_in_front_of_step() -> None:
    got = _curve("step", {"step_fraction": 0.5, "gamma": 0.1, "warmup_fraction": 0.1})
    assert got[0] == pytest.approx(LR * 0.01)
    assert got[5] == pytest.approx(LR * (0.01 + 0.99 * 0.5))
    assert got[10] == pytest.approx(LR)  # warmup done, step schedule starts
    assert got[10 + 45] == pytest.approx(LR * 0.1)  # 45 = round(0.5 * 90) main steps


def test_one_cycle_peaks_at_the_family_lr() -> None:
    got = _curve("one_cycle", {"pct_start": 0.3, "div_factor": 25.0})
    assert got[0] == pytest.approx(LR / 25)
    assert max(got) == pytest.approx(LR, rel=1e-3)
    assert got.index(max(got)) in (29, 30)
    assert got[-1] < LR / 25


def test_plateau_decays_after_patience() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = build_schedule(TrialConfig("sgd", "plateau", {"plateau.factor": 0.5,
                                                          "plateau.patience": 1}), opt, T, "max")
    seen = []
    for metric in (0.5, 0.6, 0.6, 0.6, 0.6, 0.6):
        sched.after_batch()  # no effect per batch
        sched.after_epoch(metric)
        seen.append(opt.param_groups[0]["lr"])
    assert seen == pytest.approx([LR, LR, LR, LR / 2, LR / 2, LR / 4])


def test_every_schedule_is_covered() -> None:
    assert set(EXPECTED) | {"one_cycle", "plateau"} == set(SCHEDULES)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_defaults_apply_when_params_absent(name: str) -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    sched = build_schedule(TrialConfig("sgd", name, {}), opt, T)
    for _ in range(T):
        opt.step()
        sched.after_batch()
        sched.after_epoch(1.0)
    assert 0 <= opt.param_groups[0]["lr"] <= LR
