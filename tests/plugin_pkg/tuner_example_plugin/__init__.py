"""A team's own model and dataset, plugged in through `tuner.models` / `tuner.datasets`."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import torch
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


class _StuckMidEpoch(nn.Module):
    def __init__(self, inner: nn.Module, marker: Path, after: int) -> None:
        super().__init__()
        self.inner, self.marker, self.after = inner, marker, after
        self.first_run: bool | None = None
        self.batches = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():  # training, not the submission's check
            if self.first_run is None:
                self.first_run = not self.marker.exists()
                self.marker.touch()
            if self.first_run:
                self.batches += 1
                time.sleep(0.1)
                if self.batches > self.after:
                    threading.Event().wait()
        out: torch.Tensor = self.inner(x)
        return out


def tiny_stuck_mid_epoch(info: DataInfo, marker: str = "", after: int = 12,
                    width: int = 16) -> nn.Module:
    """`tiny_mlp`, but the first run that trains it (while the file `marker` does not exist)
    trains `after` batches, a tenth of a second each (a large model's), then hangs in the
    middle of its first epoch (a data loader deadlocked on a worker); later runs train."""
    return _StuckMidEpoch(tiny_mlp(info, width), Path(marker), after)
