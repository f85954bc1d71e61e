"""Every family builds and optimizes a small convex problem; family-specific exactness checks."""

from __future__ import annotations

import pytest
import torch

from tuner.datasets import load_dataset
from tuner.optimizers import ProximalSGD, build_optimizer, state_bytes_per_param
from tuner.sampling import SearchSpace
from tuner.space import FAMILIES, TrialConfig, optuna_name


def _defaults_config(family: str) -> TrialConfig:
    """The family's defaults-sweep configuration, converted back from Optuna's names."""
    space = SearchSpace()
    entry = next(p for p in space.defaults() if p["optimizer"] == family)
    params = {}
    for full, r in (space.family_ranges("lookahead") + space.family_ranges(
            "adam", "lookahead.adam") if family == "lookahead" else space.family_ranges(family)):
        name = optuna_name(full, r.param)
        if name in entry:
            params[full] = 1 - entry[name] if r.param.one_minus else entry[name]
    if family == "lookahead":
        params["lookahead.base"] = entry["lookahead.base"]
    return TrialConfig(family, "constant", params)


@pytest.fixture(scope="module")
def convex() -> tuple[torch.Tensor, torch.Tensor]:
    d = load_dataset("quadratic", {"condition": 10.0}, seed=0)
    return d.X_train, d.y_train


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_reduces_convex_loss(family: str, convex: tuple[torch.Tensor, torch.Tensor]) -> None:
    X, y = convex
    torch.manual_seed(0)
    model = torch.nn.Linear(X.shape[1], 1)
    opt = build_optimizer(_defaults_config(family), model.parameters())

    def loss() -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(X).squeeze(-1), y)

    start = float(loss().detach())
    for _ in range(30):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert float(loss().detach()) < 0.9 * start, family


def test_momentum_is_exactly_heavy_ball() -> None:
    torch.manual_seed(0)
    w = torch.randn(5, requires_grad=True)
    A = torch.randn(8, 5)
    lr, mu = 0.05, 0.9
    opt = build_optimizer(TrialConfig("momentum", "constant",
                                      {"momentum.lr": lr, "momentum.momentum": mu}), [w])
    assert opt.param_groups[0]["dampening"] == 0 and not opt.param_groups[0]["nesterov"]
    ref = w.detach().clone()
    v = torch.zeros_like(ref)
    for _ in range(5):
        opt.zero_grad()
        (A @ w).pow(2).sum().backward()
        opt.step()
        g = 2 * A.T @ (A @ ref)
        v = mu * v + g  # heavy ball: v <- mu v + g ; w <- w - lr v
        ref = ref - lr * v
    torch.testing.assert_close(w.detach(), ref)


def test_proximal_step_produces_exact_zeros() -> None:
    w = torch.nn.Parameter(torch.tensor([0.003, -0.002, 0.5, -0.8]))
    opt = ProximalSGD([w], lr=0.1, l1=0.05)  # threshold 0.005
    w.grad = torch.zeros_like(w)
    opt.step()
    assert w[0].item() == 0.0 and w[1].item() == 0.0
    torch.testing.assert_close(w[2:].detach(), torch.tensor([0.495, -0.795]))


def test_state_bytes_per_param_matches_the_family() -> None:
    model = torch.nn.Linear(100, 10)
    n = sum(p.numel() for p in model.parameters())
    sizes = {}
    for family in ("sgd", "momentum", "adam"):
        opt = build_optimizer(_defaults_config(family), model.parameters())
        model(torch.randn(4, 100)).sum().backward()
        opt.step()
        sizes[family] = state_bytes_per_param(opt, n)
    assert sizes["sgd"] == 0
    assert sizes["momentum"] == pytest.approx(4.0)  # one fp32 buffer
    assert 8.0 <= sizes["adam"] < 8.5  # two fp32 moments (+ step counters)


def test_lookahead_wraps_its_base_family() -> None:
    cfg = TrialConfig("lookahead", "constant", {"lookahead.base": "sgd", "lookahead.k": 3,
                                                "lookahead.alpha": 0.5, "lookahead.sgd.lr": 0.5})
    opt = build_optimizer(cfg, torch.nn.Linear(2, 1).parameters())
    assert type(opt).__name__ == "Lookahead"
    assert isinstance(opt.optimizer, torch.optim.SGD)  # type: ignore[attr-defined]
    assert opt.param_groups[0]["lr"] == 0.5
