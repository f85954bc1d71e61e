"""Build a torch optimizer from a sampled configuration.

Every family maps onto `torch.optim` (Lookahead comes from pytorch-optimizer); only the proximal
step for an L1 penalty is ours, because no library ships it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.nn import functional as F

from tuner.errors import UnknownName
from tuner.space import FAMILIES, TrialConfig


class ProximalSGD(torch.optim.SGD):
    """Proximal gradient descent for `loss + l1 * |w|_1`: an SGD step on the smooth loss, then
    the L1 proximal map (soft-threshold by lr * l1), which sets small weights exactly to zero."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, l1: float,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay)
        for group in self.param_groups:
            group["l1"] = l1

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = super().step(closure)
        for group in self.param_groups:
            threshold = float(group["lr"]) * float(group["l1"])
            if threshold <= 0:
                continue
            for p in group["params"]:
                if p.grad is not None:
                    p.copy_(F.softshrink(p, threshold))
        return loss


def _get(params: dict[str, Any], family: str, name: str) -> Any:
    """A parameter's sampled value, or its literature default when absent."""
    if name in params:
        return params[name]
    return FAMILIES[family].param(name).default


def build_family(family: str, params: dict[str, Any],
                 weights: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
    """One (non-wrapper) family with its short-named params (`lr`, `beta1`...)."""
    if family not in FAMILIES or FAMILIES[family].wrapper:
        raise UnknownName("optimizer", "optimizer family", family,
                          [n for n, f in FAMILIES.items() if not f.wrapper])

    def g(name: str) -> Any:
        return _get(params, family, name)

    lr = float(g("lr"))
    l2 = float(g("l2")) if params.get("l2_on") else 0.0
    if family in ("adam", "adamw", "nadam", "radam", "adamax"):
        betas = (float(g("beta1")), float(g("beta2")))
        eps = float(g("eps"))
        if family == "adamw":
            return torch.optim.AdamW(weights, lr=lr, betas=betas, eps=eps,
                                     weight_decay=float(g("weight_decay")))
        cls: type[torch.optim.Optimizer] = {
            "adam": torch.optim.Adam, "nadam": torch.optim.NAdam,
            "radam": torch.optim.RAdam, "adamax": torch.optim.Adamax,
        }[family]
        return cls(weights, lr=lr, betas=betas, eps=eps, weight_decay=l2)  # type: ignore[call-arg]
    match family:
        case "sgd":
            return torch.optim.SGD(weights, lr=lr, weight_decay=l2)
        case "momentum" | "nesterov":
            # dampening=0: exactly heavy ball v <- mu v + g; w <- w - lr v
            return torch.optim.SGD(weights, lr=lr, momentum=float(g("momentum")), dampening=0.0,
                                   nesterov=family == "nesterov", weight_decay=l2)
        case "rmsprop":
            return torch.optim.RMSprop(weights, lr=lr, alpha=float(g("alpha")),
                                       momentum=float(g("momentum")), weight_decay=l2)
        case "adagrad":
            return torch.optim.Adagrad(weights, lr=lr, lr_decay=float(g("lr_decay")),
                                       weight_decay=l2)
        case "adadelta":
            return torch.optim.Adadelta(weights, lr=lr, rho=float(g("rho")), weight_decay=l2)
        case "adafactor":
            # torch's Adafactor applies weight decay decoupled, like AdamW.
            return torch.optim.Adafactor(weights, lr=lr, weight_decay=float(g("weight_decay")))
        case "proximal":
            return ProximalSGD(weights, lr=lr, l1=float(g("l1")))
    raise AssertionError(family)  # pragma: no cover


def build_optimizer(config: TrialConfig, weights: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
    """The optimizer for a configuration (Lookahead wraps its base family)."""
    if config.optimizer == "lookahead":
        from pytorch_optimizer import Lookahead

        base = config.base_family or "adam"
        inner = build_family(base, config.family_params(base, f"lookahead.{base}"), weights)
        la = config.family_params("lookahead")
        opt: torch.optim.Optimizer = Lookahead(
            inner, k=int(_get(la, "lookahead", "k")), alpha=float(_get(la, "lookahead", "alpha"))
        )
        return opt
    return build_family(config.optimizer, config.family_params(config.optimizer), weights)


def lr_target(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer whose param_groups carry the lr (Lookahead's base)."""
    inner = getattr(opt, "optimizer", None)
    return inner if isinstance(inner, torch.optim.Optimizer) else opt


def _tensor_bytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def state_bytes_per_param(opt: torch.optim.Optimizer, n_params: int) -> float:
    """Optimizer-state memory per model parameter, in bytes (e.g. Adam fp32: 8)."""
    state = opt.state_dict()
    total = _tensor_bytes(state.get("state", {}))
    # pytorch-optimizer wrappers keep their state (slow weights) under their own keys.
    for key, value in state.items():
        if key not in ("state", "param_groups"):
            total += _tensor_bytes(value)
    return total / max(n_params, 1)
