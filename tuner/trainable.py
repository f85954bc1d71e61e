"""Trainables: the user's own training loop as a plugin, with the service keeping what it exists
for: the optimizer, the schedule, the decay rates, pruning, divergence and the record.

A trainable is an installed entry point in the group `tuner.trainables`:

    def train(ctx: tuner.trainable.TrialContext) -> None:
        loader = my_loader(split_seed=ctx.split_seed, shuffle_seed=ctx.seed)   # your data
        model = MyNet().to(ctx.device)
        opt = ctx.optimizer(model.parameters())          # the trial's optimizer (any family)
        ctx.schedule(opt, steps_per_epoch=len(loader))
        for epoch in ctx.epochs():                       # 1 .. training.epochs
            for x, y in loader:
                ...; loss.backward(); opt.step(); ctx.step(loss)   # schedule + divergence
                ctx.alive()                                      # progress (opt-in, below)
            ctx.report(val_metric, train_loss=..., val_loss=...)   # may stop the trial

`ctx.alive()` is opt-in: a loop that calls it wherever it spends time (training and evaluation
batches alike) is seen moving inside an epoch by the stall check, as the built-in loop is.

Two seeds: `ctx.split_seed` is the job's `training.seed`, which names the task's data split;
`ctx.seed` is the trial's. Draw the training/validation split from the first and
initialisation, order and augmentation from the second: a confirmation run (or a configuration
run again) gets a new `ctx.seed`, and its spread against the others is the seed-to-seed noise
the answer's intervals rest on only if it is measured on the same validation set. (The example
loops drew their split from `ctx.seed` until 2026-12-07: a confirmation run with seed 1001
trained on another split, and the jobs on training.seed 0 and 1 shared their runs' splits.)

`ctx.report` records the epoch, tells Optuna, and raises `StopTrial` when the pruner says stop,
when the loss diverged, or when the epoch budget is spent: the trainable's loop ends there (a
trainable must let it propagate). The function may carry `features`: a dict (or a callable of
the params returning one) with `kind` (classification | regression), `n_params`, `n_train`,
`n_classes`, `input_shape`, `dataset`: what recommendations compare tasks by. It may carry
`params`, a dict of the params it reads with their defaults: then a param it does not read is
refused at submit (a typo trained at the default without a word), and one given at its default
is the same task as one left out.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from tuner.errors import count
from tuner.optimizers import build_optimizer, lr_target, state_bytes_per_param
from tuner.schedules import build_schedule, current_lr
from tuner.space import TrialConfig
from tuner.spec import METRICS, TrainableRef, TrainingSpec
from tuner.training import EpochRecord, TrainState


class StopTrial(Exception):
    """Raised by `TrialContext.report` to end the trainable's loop: pruned, diverged, or the
    epoch budget spent. A trainable lets it propagate."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class TrialContext:
    """What a trainable gets for one trial. Built by the service; a trainable never makes one."""

    config: TrialConfig
    training: TrainingSpec
    metric: str
    device: torch.device
    params: dict[str, Any] = field(default_factory=dict)  # task.trainable.params
    # Called with (best value so far, epoch) after every epoch; True: the pruner says stop.
    on_epoch: Any = None
    # Called by `alive()`: the trial's batch heartbeat (a write at most every
    # TUNER_PROGRESS_EVERY_S).
    on_alive: Any = None
    state: TrainState = field(default_factory=TrainState)
    # The job's training.seed: the seed the task's data split is drawn from, the same for every
    # trial of the job (None: the trial's own seed, for a context built outside a job).
    job_seed: int | None = None
    # What the loop used of what keeps its runs what their budget says (`trainable_notes`):
    # `split_seed` and `batch_size` read, `autocast` entered (or `precision` read).
    used: set[str] = field(default_factory=set)
    _optimizer: torch.optim.Optimizer | None = None
    _first_loss: float | None = None
    _first_batch: float | None = None
    _batches: int = 0
    _best: float | None = None
    _since_best: int = 0  # epochs since the best value, for early stopping
    _started: float = field(default_factory=time.perf_counter)
    _epoch_started: float = field(default_factory=time.perf_counter)

    # what the trial is ----------------------------------------------------------------------
    @property
    def seed(self) -> int:
        """The trial's seed, for initialisation, shuffling and augmentation: the job's
        training.seed for a search trial; another for a confirmation run or a configuration
        run again (tuner.confirm, tuner.objective.fresh_seed), so that its runs measure the
        seed-to-seed noise. Draw the data split from `split_seed`, never from this."""
        return self.training.seed

    @property
    def split_seed(self) -> int:
        """The job's training.seed, which names the task's data split: the same for every trial
        of the job. Draw the training/validation split from it."""
        self.used.add("split_seed")
        return self.training.seed if self.job_seed is None else self.job_seed

    @property
    def epochs_budget(self) -> int:
        return self.training.epochs

    @property
    def batch_size(self) -> int:
        """training.batch_size, part of the budget an answer is about: batch by it."""
        self.used.add("batch_size")
        return self.training.batch_size

    @property
    def precision(self) -> str:
        """`bf16` when the spec asks for it and the trial runs on a GPU, else `fp32`: for a loop
        that applies it its own way (the Hugging Face example passes it to its `Trainer`)."""
        self.used.add("precision")
        return self.runs_in

    @property
    def runs_in(self) -> str:
        """The precision the trial's record says (`precision`, for the service's own reads)."""
        return "bf16" if self.device.type == "cuda" and self.training.precision == "bf16" \
            else "fp32"

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on GPU when asked for; a no-op otherwise."""
        self.used.add("autocast")
        if self.runs_in == "bf16":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def direction(self) -> str:
        return METRICS[self.metric]

    # what the service owns ------------------------------------------------------------------
    def optimizer(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        """The trial's optimizer over parameters or parameter groups."""
        self._optimizer = build_optimizer(self.config, params)
        return self._optimizer

    def schedule(self, optimizer: torch.optim.Optimizer | None = None, *,
                 steps_per_epoch: int = 1) -> Any:
        """The trial's LR schedule: call `after_batch()` after each optimizer step and
        `after_epoch(metric)` is called for you by `report`."""
        opt = optimizer or self._optimizer
        if opt is None:
            raise RuntimeError("ctx.schedule: build the optimizer first (ctx.optimizer(...))")
        mode: Literal["min", "max"] = "max" if self.direction == "maximize" else "min"
        self._schedule = build_schedule(self.config, lr_target(opt),
                                        self.training.epochs * max(1, steps_per_epoch), mode)
        return self._schedule

    def step(self, loss: Any) -> None:
        """After each optimizer step: advances the schedule (`after_batch`) and checks the loss
        for divergence against the first batch's, as the built-in loop does (on a GPU every 8th
        step, to spare the sync). Raises `StopTrial` when it diverged."""
        sched = getattr(self, "_schedule", None)
        if sched is not None:
            sched.after_batch()
        self._batches += 1
        if self.device.type == "cuda" and self._batches % 8:
            return
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if self._first_batch is None:
            self._first_batch = value
        limit = self.training.divergence_factor * max(self._first_batch, 1e-8)
        if math.isfinite(value) and value <= limit:
            return
        self.state.detail = f"loss became {value}" if not math.isfinite(value) else (
            f"loss {value:.4g} exceeded {self.training.divergence_factor:g}x its first value "
            f"{self._first_batch:.4g}")
        self.state.stop_step = len(self.state.records) + 1
        best = self._best if self._best is not None else math.nan
        lr = current_lr(lr_target(self._optimizer)) if self._optimizer is not None else math.nan
        self.state.records.append(EpochRecord(
            self.state.stop_step, value, math.nan, math.nan, best, lr,
            time.perf_counter() - self._started, partial=True))
        self.state.stop_reason = "diverged"
        raise StopTrial("diverged")

    def alive(self) -> None:
        """The trial is moving (opt-in): call it after every training batch and every
        evaluation batch, or at least every few minutes wherever the loop spends time. It costs
        a clock read; a write at most every `TUNER_PROGRESS_EVERY_S` (30 s). A loop that calls
        it is judged by the stall check as the built-in loop is: a hang inside an epoch is
        stopped after 5 times the longest wait between calls (at least 10 minutes), even in a
        new task's first epoch. So a loop that calls it must call it everywhere it may spend
        long, its evaluation included: an evaluation of 20 minutes without a call, in the first
        epoch of a new task, would be called stalled. A loop that never calls it is judged by
        its epochs (`report`) alone."""
        if self.on_alive is not None:
            self.on_alive()

    def epochs(self) -> Iterator[int]:
        """1 .. the epoch budget; each epoch's time is measured from here to its report."""
        for epoch in range(len(self.state.records) + 1, self.training.epochs + 1):
            self._epoch_started = time.perf_counter()
            yield epoch

    def report(self, value: float, *, train_loss: float | None = None,
               val_loss: float | None = None, **extra: float) -> None:
        """The epoch's metric (and losses): recorded, checked for divergence, told to the
        pruner. Raises `StopTrial` when the trial must end: diverged, its epochs spent, pruned,
        or no better for `training.early_stopping_patience` epochs."""
        step = len(self.state.records) + 1
        self.state.stop_step = step
        value = float(value)
        lr = current_lr(lr_target(self._optimizer)) if self._optimizer is not None else math.nan
        elapsed = time.perf_counter() - self._started
        diverged = self._diverged(value, train_loss)
        if not diverged and (self._best is None or _better(value, self._best, self.direction)):
            self._best, self._since_best = value, 0
        else:
            self._since_best += 1
        best = self._best if self._best is not None else math.nan
        self.state.records.append(EpochRecord(
            step, math.nan if train_loss is None else float(train_loss),
            math.nan if val_loss is None else float(val_loss), value, best, lr, elapsed,
            extra.get("val_accuracy"), extra.get("val_r2"), partial=diverged))
        self.state.epoch_seconds.append(time.perf_counter() - self._epoch_started)
        self._epoch_started = time.perf_counter()  # a loop that does not use ctx.epochs()
        if self._optimizer is not None:
            self.state.state_bytes_per_param = state_bytes_per_param(
                self._optimizer, max(1, self.state.n_params or _n_params(self._optimizer)))
        if diverged:
            self.state.stop_reason = "diverged"
            raise StopTrial("diverged")
        sched = getattr(self, "_schedule", None)
        if sched is not None:
            sched.after_epoch(val_loss if self.metric == "val_loss" and val_loss is not None
                              else value)
        stop = bool(self.on_epoch(best, step)) if self.on_epoch is not None else False
        if step >= self.training.epochs:
            self.state.stop_reason = "completed"
            raise StopTrial("completed")
        if stop:
            self.state.stop_reason = "pruned"
            raise StopTrial("pruned")
        # training.early_stopping_patience, as the built-in loop applies it (after the pruner):
        # it is part of the budget an answer is about, and a trainable's runs were kept under a
        # budget of early stopping that never stopped them (until 2026-12-07).
        patience = self.training.early_stopping_patience
        if patience is not None and self._since_best >= patience:
            self.state.stop_reason = "early_stopped"
            raise StopTrial("early_stopped")

    def _diverged(self, value: float, train_loss: float | None) -> bool:
        if not math.isfinite(value):
            self.state.detail = f"{self.metric} became {value}"
            return True
        if train_loss is None:
            return False
        loss = float(train_loss)
        if not math.isfinite(loss):
            self.state.detail = f"loss became {loss}"
            return True
        if self._first_loss is None:
            self._first_loss = loss
        limit = self.training.divergence_factor * max(self._first_loss, 1e-8)
        if loss > limit:
            self.state.detail = (f"loss {loss:.4g} exceeded {self.training.divergence_factor:g}x "
                                 f"its first value {self._first_loss:.4g}")
            return True
        return False


def _better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "maximize" else a < b


def _n_params(opt: torch.optim.Optimizer) -> int:
    return sum(p.numel() for g in opt.param_groups for p in g["params"])


def declared_params(fn: Any) -> dict[str, Any] | None:
    """The params a trainable reads with their defaults (its `params` attribute), or None when
    it does not say."""
    params = getattr(fn, "params", None)
    return dict(params) if isinstance(params, dict) else None


# The JSON kinds a declared default admits: a param whose default is one of these is refused
# given as another (a width of "64" trained as 64 through `int()` but was another task than 64:
# its digest differed, so its runs never met the same task's; 64.7 trained as 64, `true` as 1).
# A default of None, a list or a dict admits anything: its meaning is the loop's.
_KINDS: tuple[tuple[type, str, tuple[type, ...]], ...] = (
    (bool, "a boolean", (bool,)), (int, "an integer", (int,)),
    (float, "a number", (int, float)), (str, "a string", (str,)))


def _json_kind(value: Any) -> str:
    for kind, said, _ in _KINDS:
        if type(value) is kind:
            return said
    return {list: "a list", dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def check_params(ref: TrainableRef) -> None:
    """A trainable that declares its params refuses any other, naming the ones it reads, and a
    param given as another JSON kind than its default (a string, a fraction or a boolean for an
    integer; a boolean for a number)."""
    from tuner.errors import SpecError, choices
    from tuner.registry import TRAINABLES

    declared = declared_params(TRAINABLES.get(ref.name))
    if declared is None:
        return
    stray = sorted(set(ref.params) - set(declared))
    if stray:
        raise SpecError("task.trainable.params",
                        f"{ref.name} does not read {', '.join(map(repr, stray))}; valid choices: "
                        f"{choices(declared)}")
    for key, value in ref.params.items():
        default = declared[key]
        for kind, said, admits in _KINDS:
            if type(default) is kind and type(value) not in admits:
                raise SpecError(f"task.trainable.params.{key}",
                                f"{ref.name} reads {said} (its default: {default!r}), got "
                                f"{value!r} ({_json_kind(value)})")


def trainable_notes(name: str, records: Iterable[dict[str, Any] | None],
                    patience: int | None = None) -> list[str]:
    """What a job's notes say at its end when none of its trainable's trials that ran used what
    keeps its runs what their budget says (`records`: the trials' records, `loop_used` in each
    that ran the loop; only those that reported an epoch count: a loop that raised before it
    says nothing). `ctx.split_seed` never read: its data split is its own, not the one
    `training.seed` names, so the answer's reading of repeats and of data splits may not hold.
    `ctx.batch_size` never read: its batch size is its own, not the budget's.
    `ctx.autocast()` never entered (nor `ctx.precision` read, for a loop that applies it its own
    way) in trials on a GPU in bf16: they trained in fp32, kept as the bf16 budget's runs.
    And, with no `training.early_stopping_patience` (`patience`), trials whose loop returned
    before its epochs were spent: shorter runs than the budget they are kept under."""
    ran = [r for r in records if r and r.get("loop_used") is not None and r.get("steps")]
    notes = []
    if ran and not any("split_seed" in r["loop_used"] for r in ran):
        notes.append(f"{name} never read ctx.split_seed in its {count(len(ran), 'trial')} that ran: its "
                     f"data split does not follow training.seed, so a confirmation run (a new "
                     f"ctx.seed) is scored on another validation set if it splits by ctx.seed, "
                     f"and jobs on other training.seeds share one if its split is fixed; draw "
                     f"the split from ctx.split_seed (README: 'Your own training loop')")
    if ran and not any("batch_size" in r["loop_used"] for r in ran):
        notes.append(f"{name} never read ctx.batch_size in its {count(len(ran), 'trial')} that ran: its "
                     f"batches are its own size, not training.batch_size, which its runs are "
                     f"kept under (and compared with other tasks by); batch by ctx.batch_size")
    bf16 = [r for r in ran if r.get("precision") == "bf16"]
    if bf16 and not any({"autocast", "precision"} & set(r["loop_used"]) for r in bf16):
        notes.append(f"{name} never entered ctx.autocast() in its {count(len(bf16), 'trial')} in bf16 on "
                     f"a GPU: they trained in fp32, and are kept as the bf16 budget's runs; "
                     f"wrap the forward pass and the loss in `with ctx.autocast():` (or read "
                     f"ctx.precision and apply it your own way)")
    short = [r for r in ran if r.get("stop_reason") == "early_stopped"]
    if patience is None and short:
        notes.append(f"{name} never reached training.epochs in {len(short)} of its "
                     f"{count(len(ran), 'trial')} that ran, with no training.early_stopping_patience "
                     f"asked: its loop returned before the epochs were spent (at most "
                     f"{max(int(r.get('epochs_run') or 0) for r in short)}), so those runs are "
                     f"shorter than the budget they are kept under; let ctx.report end the trial, "
                     f"or set the patience")
    return notes


def declared_features(fn: Any, params: dict[str, Any]) -> dict[str, Any]:
    """What a trainable declares about its task (its `features` attribute), or {}."""
    features = getattr(fn, "features", None)
    if callable(features):
        features = features(**params)
    return dict(features) if isinstance(features, dict) else {}
