"""Built-in models. A model factory gets the data's shape and returns an `nn.Module`:

    factory(info: DataInfo, **params) -> torch.nn.Module

where `info.input_shape` is one example's shape and `info.n_outputs` the output width (classes,
or 1 for regression). Plugins registered under `tuner.models` follow the same signature.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tuner.datasets import DataInfo
from tuner.errors import ModelError
from tuner.params import Probability, Width, check_params
from tuner.registry import MODELS


def _flat(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


def linear(info: DataInfo) -> nn.Module:
    """Logistic regression (classification) or linear regression: one linear layer."""
    return nn.Sequential(nn.Flatten(), nn.Linear(_flat(info.input_shape), info.n_outputs))


def mlp(info: DataInfo, hidden: Sequence[Width] = (128,), dropout: Probability = 0.0,
        activation: str = "relu") -> nn.Module:
    acts = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
    if activation not in acts:
        raise ModelError(f"task.model.params.activation: unknown {activation!r}; "
                         f"valid choices: {', '.join(acts)}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = _flat(info.input_shape)
    for h in hidden:
        layers += [nn.Linear(width, int(h)), acts[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(h)
    layers.append(nn.Linear(width, info.n_outputs))
    return nn.Sequential(*layers)


def cnn(info: DataInfo, channels: Sequence[Width] = (16, 32), kernel_size: Width = 3) -> nn.Module:
    if len(info.input_shape) != 3:
        raise ModelError(
            f"task.model: cnn needs image-shaped input (C, H, W); this dataset gives "
            f"{tuple(info.input_shape)} (use mlp, linear or transformer)"
        )
    c_in, h, w = info.input_shape
    layers: list[nn.Module] = []
    for c in channels:
        layers += [nn.Conv2d(c_in, int(c), kernel_size, padding=kernel_size // 2), nn.ReLU()]
        if min(h, w) >= 4:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c_in = int(c)
    layers += [nn.Flatten(), nn.Linear(c_in * h * w, info.n_outputs)]
    return nn.Sequential(*layers)


class _Encoder(nn.Module):
    def __init__(self, seq_len: int, d_in: int, d_model: int, heads: int, layers: int,
                 n_outputs: int, dropout: float) -> None:
        super().__init__()
        self.seq_len, self.d_in = seq_len, d_in
        self.embed = nn.Linear(d_in, d_model)
        self.pos = nn.Parameter(torch.zeros(1, seq_len, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model,
                                           dropout=dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], self.seq_len, self.d_in)
        h = self.encoder(self.embed(x) + self.pos)
        out: torch.Tensor = self.head(h.mean(dim=1))
        return out


def transformer(info: DataInfo, d_model: Width = 32, heads: Width = 4, layers: Width = 2,
                dropout: Probability = 0.0) -> nn.Module:
    """Small encoder. Input (L, d) is a sequence; (C, H, W) reads as C*H rows of W; (d,) as d
    tokens of one value each."""
    shape = tuple(info.input_shape)
    if len(shape) == 1:
        seq_len, d_in = shape[0], 1
    elif len(shape) == 2:
        seq_len, d_in = shape
    else:
        seq_len, d_in = _flat(shape[:-1]), shape[-1]
    if d_model % heads:
        raise ModelError(f"task.model.params: d_model ({d_model}) must be divisible by heads "
                         f"({heads})")
    return _Encoder(seq_len, d_in, d_model, heads, layers, info.n_outputs, dropout)


def build_model(name: str, params: dict[str, Any], info: DataInfo) -> nn.Module:
    """The registered model `name` for this data, with a clear error for bad params."""
    factory = MODELS.get(name)
    check_params("task.model.params", name, factory, params, ("info",), ModelError)
    try:
        model = factory(info, **params)
    except TypeError as exc:
        raise ModelError(f"task.model.params: {name} does not accept these params "
                         f"({exc})") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"task.model: factory for {name!r} returned {type(model).__name__}, "
                         "not a torch.nn.Module")
    return model


def depth(model: nn.Module) -> int:
    """Number of layers with parameters (a task feature)."""
    return sum(1 for m in model.modules() if any(p.requires_grad for p in
                                                  m.parameters(recurse=False)))
