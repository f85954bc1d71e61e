"""A team's own training loop, plugged in through `tuner.trainables`: a plain PyTorch loop with
its own data pipeline (digits images, random-shift augmentation), its own loss (label-smoothed
cross-entropy) and its own evaluation. The service supplies the optimizer, the schedule, the
device and the seed, and decides about pruning and divergence through `ctx.report`."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

from tuner.trainable import TrialContext


def _data(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    X, y = load_digits(return_X_y=True)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(X), generator=g)
    X = torch.as_tensor(X, dtype=torch.float32)[order].reshape(-1, 1, 8, 8) / 16.0
    y = torch.as_tensor(y)[order]
    n_val = len(X) // 5
    return X[n_val:], y[n_val:], X[:n_val], y[:n_val]


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random shift of up to one pixel (the team's augmentation)."""
    dx, dy = (int(v) for v in torch.randint(-1, 2, (2,), generator=g))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def digits_loop(ctx: TrialContext) -> None:
    """`params`: width (hidden units), smoothing (label smoothing of the loss), alive (calls
    `ctx.alive()` after every batch, default true)."""
    width = int(ctx.params.get("width", 64))
    smoothing = float(ctx.params.get("smoothing", 0.1))
    alive = ctx.alive if ctx.params.get("alive", True) else (lambda: None)
    torch.manual_seed(ctx.seed)
    # The split from the job's training.seed (every run of a configuration on the same
    # validation set); initialisation, order and augmentation from the trial's seed.
    Xtr, ytr, Xva, yva = (t.to(ctx.device) for t in _data(ctx.split_seed))
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(),
                          nn.Linear(width, 10)).to(ctx.device)
    opt = ctx.optimizer(model.parameters())
    steps = (len(Xtr) + ctx.batch_size - 1) // ctx.batch_size
    ctx.schedule(opt, steps_per_epoch=steps)
    g = torch.Generator().manual_seed(ctx.seed)
    for _epoch in ctx.epochs():
        model.train()
        total = 0.0
        for idx in torch.randperm(len(Xtr), generator=g).split(ctx.batch_size):
            xb = _augment(Xtr[idx], g)
            opt.zero_grad(set_to_none=True)
            with ctx.autocast():
                loss = F.cross_entropy(model(xb).float(), ytr[idx], label_smoothing=smoothing)
            loss.backward()
            opt.step()
            ctx.step(loss)  # the trial's schedule, and divergence checked as the service does
            alive()  # progress inside the epoch, for the stall check
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            out = model(Xva).float()  # one batch; a long evaluation calls ctx.alive() per batch
            alive()
            val_loss = float(F.cross_entropy(out, yva))
            acc = float((out.argmax(1) == yva).float().mean())
        ctx.report(acc, train_loss=total / len(Xtr), val_loss=val_loss)


# The params it reads, with their defaults: another is refused at submit, and one given at its
# default is the same task as one left out.
digits_loop.params = {"width": 64, "smoothing": 0.1, "alive": True}  # type: ignore[attr-defined]
digits_loop.features = {  # type: ignore[attr-defined]
    "kind": "classification", "n_classes": 10, "input_shape": [1, 8, 8], "n_train": 1438,
    "n_params": 64 * 64 + 64 + 64 * 10 + 10, "dataset": "digits (own pipeline)"}


def silent(ctx: TrialContext) -> None:
    """A broken trainable: trains, never reports."""
    for _ in ctx.epochs():
        pass


def sleeps(ctx: TrialContext) -> None:
    """A loop that takes its time without the CPU: each epoch waits `epoch_s` seconds and
    reports a value that rises with the epoch. For the tests of trial mechanics (a worker
    killed mid-trial, a job that outlasts a wait): a trained model's trials took 3 to 25 s on
    the same 2 cores, as loaded as the other tests left them."""
    for epoch in ctx.epochs():
        time.sleep(float(ctx.params.get("epoch_s", 0.5)))
        ctx.report(1 - 1 / (epoch + 1), train_loss=1 / (epoch + 1))


sleeps.params = {"epoch_s": 0.5}  # type: ignore[attr-defined]


def crashes(ctx: TrialContext) -> None:
    """A broken trainable: raises in its second epoch."""
    for epoch in ctx.epochs():
        if epoch == 2:
            raise ValueError("the team's loader lost its shard")
        ctx.report(0.5, train_loss=1.0)


def _first_run(ctx: TrialContext) -> bool:
    """True while the file `ctx.params["marker"]` does not exist (it is created: later runs
    see it), and always without a marker."""
    marker = ctx.params.get("marker")
    if marker and Path(marker).exists():
        return False
    if marker:
        Path(marker).touch()
    return True


def memory_hungry(ctx: TrialContext) -> None:
    """A loop whose device runs out of memory: it asks for 256 TiB, which the allocator
    refuses (a real allocation failure, on any device). `marker` (a path): only while that
    file does not exist, so the first run creates it and fails and every later run trains as
    `digits_loop` does (memory another packed trial held, then gave back); without it, always."""
    if _first_run(ctx):
        torch.empty(2**48, dtype=torch.uint8, device=ctx.device)
    digits_loop(ctx)


memory_hungry.features = digits_loop.features  # type: ignore[attr-defined]


def hangs(ctx: TrialContext) -> None:
    """A loop that hangs after its first epoch (a data loader deadlocked, a collective waiting
    on a peer that died): it waits forever, its process alive and idle. `hold`: it hangs in a
    computation that never lets go of the interpreter (a regular expression's catastrophic
    backtracking), so no other thread of the process runs, Optuna's heartbeat included.
    `before_first_epoch`: it hangs before it reports any epoch (a loader deadlocked on its first
    batch). `marker` (a path): only while that file does not exist, so the first run creates it
    and hangs and every later run trains as `digits_loop` does."""
    if _first_run(ctx):
        if ctx.params.get("before_first_epoch"):
            threading.Event().wait()
        for _ in ctx.epochs():
            ctx.report(0.5, train_loss=1.0)
            if ctx.params.get("hold"):
                re.match(r"(a+)+$", "a" * 64 + "b")  # about 2**64 steps
            threading.Event().wait()
    digits_loop(ctx)


hangs.features = digits_loop.features  # type: ignore[attr-defined]
