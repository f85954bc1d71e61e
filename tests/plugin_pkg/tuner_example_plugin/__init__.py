"""A team's own model and dataset, plugged in through `tuner.models` / `tuner.datasets`."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_moons
from torch import nn

from tuner.datasets import DataInfo, RawData


def tiny_mlp(info: DataInfo, width: int = 16) -> nn.Module:
    n_in = int(np.prod(info.input_shape))
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, width), nn.Tanh(),
                         nn.Linear(width, info.n_outputs))


def moons(seed: int = 0, n_samples: int = 400, noise: float = 0.15) -> RawData:
    X, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return RawData(X.astype(np.float32), y, "classification")
