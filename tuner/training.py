"""The training loop: mini-batches, device placement, optional bf16 autocast, divergence and
early stopping. It yields one `EpochRecord` per epoch; the caller (the Optuna objective) decides
about pruning between epochs."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from tuner.datasets import DataSplit, DiskSplit, Split
from tuner.optimizers import build_optimizer, lr_target, state_bytes_per_param
from tuner.schedules import build_schedule, current_lr
from tuner.space import TrialConfig
from tuner.spec import METRICS, TrainingSpec

StopReason = Literal["completed", "early_stopped", "pruned", "diverged", "failed", "timeout",
                     "out_of_memory", "data_error"]


def resolve_device(preference: str = "auto", assigned: torch.device | None = None) -> torch.device:
    """The trial's device. `assigned` is what the scheduler gave this worker (under Ray: cuda
    when it assigned a GPU, CUDA_VISIBLE_DEVICES then holding it, so cuda:0 is that GPU);
    without one, cuda when available, else cpu. A spec demanding cuda never silently runs on
    cpu."""
    if preference == "cpu":
        return torch.device("cpu")
    device = assigned or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cuda" and device.type != "cuda":
        raise RuntimeError("training.device: cuda requested but no GPU is assigned to this worker "
                           "(set resources.gpus_per_trial)")
    return device


def hardware_name(device: torch.device | str) -> str:
    """What a trial's device is, as its epochs' pace depends on it: the GPU's model on cuda
    (`NVIDIA H100 80GB HBM3`), else the device type (`cpu`, `mps`)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        try:
            return torch.cuda.get_device_name(device)
        except (RuntimeError, AssertionError):  # no such device visible here
            return "cuda"
    return device.type


@dataclass
class EpochRecord:
    """One epoch of one trial: a row of the pruning history."""

    step: int
    train_loss: float
    val_loss: float
    value: float  # the task's metric this epoch
    best_value: float  # best metric so far (what the pruner sees)
    lr: float
    elapsed_s: float
    val_accuracy: float | None = None
    val_r2: float | None = None
    partial: bool = False  # the epoch a divergence cut short: losses as far as it got

    def to_json(self) -> dict[str, Any]:
        return {k: (v if v is None or math.isfinite(v) else None) for k, v in asdict(self).items()}


@dataclass
class TrainState:
    """What the loop knows when it stops."""

    stop_reason: StopReason | None = None
    stop_step: int = 0
    records: list[EpochRecord] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    state_bytes_per_param: float = 0.0
    n_params: int = 0
    device: str = "cpu"
    precision: str = "fp32"
    detail: str = ""
    # A trainable's trial: what its loop used of the context (`ctx.split_seed`,
    # `ctx.autocast()`); None: not a trainable's, or it never got to run
    # (tuner.trainable.trainable_notes).
    loop_used: list[str] | None = None

    @property
    def seconds_per_epoch(self) -> float:
        return sum(self.epoch_seconds) / len(self.epoch_seconds) if self.epoch_seconds else 0.0


def _nothing() -> None:
    pass


def better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


class Trainer:
    """Trains `model` on `data` with the optimizer and schedule of `config`."""

    def __init__(self, model: nn.Module, data: Split, config: TrialConfig,
                 training: TrainingSpec, metric: str, device: torch.device | None = None,
                 on_batch: Callable[[], None] | None = None) -> None:
        self.training = training
        # Called after every training and validation batch (the trial's batch heartbeat).
        self.on_batch = on_batch or _nothing
        self.metric = metric
        self.direction = METRICS[metric]
        self.device = device or resolve_device(training.device)
        self.kind = data.info.kind
        fits = data.nbytes() <= _device_limit()
        # Move the data once when it fits (the fast path); otherwise stream it through a
        # DataLoader, as when the spec asks for `loader: stream`. Data read from disk always
        # streams.
        self.stream = isinstance(data, DiskSplit) or training.loader == "stream" or (
            training.loader == "auto" and not fits and self.device.type != "cpu")
        self.data: Split = data.to(self.device) if isinstance(data, DataSplit) and (
            not self.stream and (fits or self.device.type == "cpu")) else data
        self._epoch = 0
        self.model = model.to(self.device)
        self.optimizer = build_optimizer(config, self.model.parameters())
        n_train = data.info.n_train
        self.n_train = n_train
        self.steps_per_epoch = max(1, math.ceil(n_train / training.batch_size))
        mode: Literal["min", "max"] = "max" if self.direction == "maximize" else "min"
        self.schedule = build_schedule(config, lr_target(self.optimizer),
                                       training.epochs * self.steps_per_epoch, mode)
        self.autocast = self.device.type == "cuda" and training.precision == "bf16"
        self.state = TrainState(
            n_params=sum(p.numel() for p in self.model.parameters()),
            device=str(self.device), precision="bf16" if self.autocast else "fp32",
        )
        self._gen = torch.Generator().manual_seed(training.seed)
        self._last_loss = math.nan  # the loss that diverged
        # Each `.item()` syncs a GPU; check divergence every few batches there.
        self._check_every = 1 if self.device.type == "cpu" else 8

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "classification":
            return F.cross_entropy(out.float(), y)
        return F.mse_loss(out.float().squeeze(-1), y)

    def _ctx(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch's shuffled mini-batches, on the trial's device."""
        d, bs = self.data, self.training.batch_size
        self._epoch += 1
        if self.stream:
            # Shuffled from the trial's seed and the epoch: the same order on every run, in
            # any number of workers.
            g = torch.Generator().manual_seed(self.training.seed * 100_003 + self._epoch)
            yield from self._loader(d, train=True, generator=g)
            return
        assert isinstance(d, DataSplit)
        n = d.X_train.shape[0]
        order = torch.randperm(n, generator=self._gen)
        for start in range(0, n, bs):
            idx = order[start:start + bs].to(d.X_train.device)
            yield (d.X_train[idx].to(self.device, non_blocking=True),
                   d.y_train[idx].to(self.device, non_blocking=True))

    def _loader(self, d: Split, *, train: bool, generator: torch.Generator | None = None,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches through a torch DataLoader (`training.num_workers` workers, pinned memory on
        CUDA). Tensors in memory are fetched a whole batch at a time (one indexing per batch);
        data on disk is read, decoded and augmented example by example in the workers."""
        from torch.utils.data import (
            BatchSampler,
            DataLoader,
            RandomSampler,
            SequentialSampler,
            TensorDataset,
        )

        bs = self.training.batch_size if train else max(self.training.batch_size, 256)
        common: dict[str, Any] = {"num_workers": self.training.num_workers,
                                  "pin_memory": self.device.type == "cuda"}
        loader: DataLoader[Any]
        ds: Any
        if isinstance(d, DiskSplit):
            ds = d.train if train else d.val
        else:
            ds = TensorDataset(d.X_train, d.y_train) if train else TensorDataset(d.X_val, d.y_val)
        sampler = RandomSampler(ds, generator=generator) if train else SequentialSampler(ds)
        if isinstance(d, DiskSplit):
            loader = DataLoader(ds, batch_size=bs, sampler=sampler, **common)
        else:
            loader = DataLoader(ds, batch_size=None, sampler=BatchSampler(sampler, bs, False),
                                **common)
        for xb, yb in loader:
            yield (xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True))

    def _train_epoch(self, first_loss: list[float]) -> float | None:
        """One pass over the training data; None when the loss diverged."""
        n = self.n_train
        self.model.train()
        total = torch.zeros((), device=self.device)
        window = torch.full((), -math.inf, device=self.device)
        bs = self.training.batch_size
        n_batches = math.ceil(n / bs)
        for i, (xb, yb) in enumerate(self._batches()):
            self.optimizer.zero_grad(set_to_none=True)
            with self._ctx():
                loss = self._loss(self.model(xb), yb)
            loss.backward()  # type: ignore[no-untyped-call]
            self.optimizer.step()
            self.schedule.after_batch()
            self.on_batch()
            lv = loss.detach()
            total += lv * len(yb)
            window = torch.maximum(window, lv)
            if (i + 1) % self._check_every == 0 or i + 1 == n_batches:
                worst = float(window.item())
                if not first_loss:
                    first_loss.append(worst)
                if self._diverged(worst, first_loss[0]):
                    self._last_loss = worst
                    return None
                window.fill_(-math.inf)
        return float(total.item()) / n

    def _diverged(self, loss: float, first: float) -> bool:
        if not math.isfinite(loss):
            self.state.detail = f"loss became {loss}"
            return True
        limit = self.training.divergence_factor * max(first, 1e-8)
        if loss > limit:
            self.state.detail = (f"loss {loss:.4g} exceeded {self.training.divergence_factor:g}x "
                                 f"its first value {first:.4g}")
            return True
        return False

    def _val_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        d = self.data
        if self.stream:
            yield from self._loader(d, train=False)
            return
        assert isinstance(d, DataSplit)
        bs = max(self.training.batch_size, 1024)
        for start in range(0, d.X_val.shape[0], bs):
            yield d.X_val[start:start + bs].to(self.device), d.y_val[start:start + bs].to(
                self.device)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        n = self.data.info.n_val
        loss_sum, correct, sse = 0.0, 0, 0.0
        y_sum, y_sq = 0.0, 0.0
        for xb, yb in self._val_batches():
            with self._ctx():
                out = self.model(xb).float()
            self.on_batch()
            if self.kind == "classification":
                loss_sum += float(F.cross_entropy(out, yb, reduction="sum"))
                correct += int((out.argmax(dim=1) == yb).sum())
            else:
                sse += float(F.mse_loss(out.squeeze(-1), yb, reduction="sum"))
                y_sum += float(yb.sum())
                y_sq += float((yb.double() ** 2).sum())
        if self.kind == "classification":
            return {"val_loss": loss_sum / n, "val_accuracy": correct / n}
        sst = (y_sq - y_sum * y_sum / n) or 1.0
        return {"val_loss": sse / n, "val_r2": 1.0 - sse / sst}

    def epochs(self) -> Iterator[EpochRecord]:
        """Train epoch by epoch, yielding a record after each; `state.stop_reason` says why it
        ended (completed, early_stopped, diverged) unless the caller stops early."""
        start = time.perf_counter()
        first_loss: list[float] = []
        best: float | None = None
        since_best = 0
        patience = self.training.early_stopping_patience
        for epoch in range(1, self.training.epochs + 1):
            self.state.stop_step = epoch
            t0 = time.perf_counter()
            train_loss = self._train_epoch(first_loss)
            if train_loss is None:
                self.state.stop_reason = "diverged"
                # Keep the step it reached (its loss as far as it went; no metric).
                self.state.records.append(EpochRecord(
                    epoch, self._last_loss, math.nan, math.nan,
                    best if best is not None else math.nan,
                    current_lr(lr_target(self.optimizer)), time.perf_counter() - start,
                    partial=True))
                self._finish()
                return
            metrics = self.evaluate()
            value = metrics[self.metric]
            if not math.isfinite(value) or not math.isfinite(metrics["val_loss"]):
                self.state.stop_reason = "diverged"
                self.state.detail = f"{self.metric} became {value}"
                self.state.records.append(EpochRecord(
                    epoch, train_loss, metrics["val_loss"], value,
                    best if best is not None else math.nan,
                    current_lr(lr_target(self.optimizer)), time.perf_counter() - start,
                    partial=True))
                self._finish()
                return
            self.schedule.after_epoch(metrics["val_loss"] if self.metric == "val_loss" else value)
            self.state.epoch_seconds.append(time.perf_counter() - t0)
            if best is None or better(value, best, self.direction):
                best, since_best = value, 0
            else:
                since_best += 1
            rec = EpochRecord(epoch, train_loss, metrics["val_loss"], value, best,
                              current_lr(lr_target(self.optimizer)),
                              time.perf_counter() - start,
                              metrics.get("val_accuracy"), metrics.get("val_r2"))
            self.state.records.append(rec)
            self._finish()
            yield rec
            if patience is not None and since_best >= patience:
                self.state.stop_reason = "early_stopped"
                return
        self.state.stop_reason = "completed"

    def _finish(self) -> None:
        self.state.state_bytes_per_param = state_bytes_per_param(self.optimizer,
                                                                 self.state.n_params)


def _device_limit() -> int:
    from tuner.config import get_settings

    return get_settings().device_data_limit_bytes
