"""The cost of a trainable (`tuner.trainable.TrialContext`) against the built-in loop, on the
same model, data, optimizer and schedule: the trainable is the built-in loop written as a
team would write it (its own batches, `ctx.step(loss)` after each optimizer step,
`ctx.report` after each evaluation). Interleaved repeats; medians; the ratio against the
built-in loop of the same process. Goal: within 5%.

    .venv/bin/python -m benchmarks.trainable_overhead          # 100k x 64, mlp [256], 5 repeats
    .venv/bin/python -m benchmarks.trainable_overhead --smoke
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import interleaved, save, synthetic_run

OUT = Path(__file__).parent / "results" / "trainable_overhead.json"


def _setup(data: Any, epochs: int, batch: int) -> tuple[Any, Any, Any]:
    import torch

    from tuner.models import build_model
    from tuner.space import TrialConfig
    from tuner.spec import TrainingSpec

    torch.manual_seed(0)
    training = TrainingSpec(epochs=epochs, batch_size=batch, device="cpu")
    config = TrialConfig("adam", "cosine", {"adam.lr": 1e-3})
    return build_model("mlp", {"hidden": [256]}, data.info), training, config


def builtin(data: Any, epochs: int, batch: int) -> float:
    """Seconds for `epochs` epochs of the built-in loop (evaluation included)."""
    import torch

    from tuner.training import Trainer

    model, training, config = _setup(data, epochs, batch)
    trainer = Trainer(model, data, config, training, "val_accuracy", torch.device("cpu"))
    t0 = time.perf_counter()
    for _ in trainer.epochs():
        pass
    return time.perf_counter() - t0


def trainable(data: Any, epochs: int, batch: int) -> float:
    """The same through a TrialContext, as a team's loop."""
    import torch
    from torch.nn import functional as F

    from tuner.trainable import StopTrial, TrialContext

    model, training, config = _setup(data, epochs, batch)
    ctx = TrialContext(config, training, "val_accuracy", torch.device("cpu"))
    t0 = time.perf_counter()
    opt = ctx.optimizer(model.parameters())
    n = data.X_train.shape[0]
    ctx.schedule(opt, steps_per_epoch=(n + batch - 1) // batch)
    g = torch.Generator().manual_seed(0)
    with contextlib.suppress(StopTrial):
        for _ in ctx.epochs():
            model.train()
            total = torch.zeros(())
            for idx in torch.randperm(n, generator=g).split(batch):
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(data.X_train[idx]), data.y_train[idx])
                loss.backward()
                opt.step()
                ctx.step(loss)
                total += loss.detach() * len(idx)
            model.eval()
            with torch.no_grad():
                out = model(data.X_val)
                val_loss = float(F.cross_entropy(out, data.y_val))
                acc = float((out.argmax(1) == data.y_val).float().mean())
            ctx.report(acc, train_loss=float(total) / n, val_loss=val_loss)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    a, data = synthetic_run(__doc__.splitlines()[0], OUT, argv, samples=100_000, epochs=3,
                            repeats=5, smoke=(1_000, 1, 1))
    runs = interleaved({name: functools.partial(fn, data, a.epochs, a.batch)
                        for name, fn in (("builtin_loop", builtin), ("trainable", trainable))},
                       a.repeats)
    base = statistics.median(runs["builtin_loop"])
    rows = [{"path": name, "seconds": statistics.median(v),
             "epochs_per_s": a.epochs / statistics.median(v),
             "ratio_vs_builtin": statistics.median(v) / base, "runs": v}
            for name, v in runs.items()]
    print(f"{'path':<14} {'s / run':>9} {'epochs/s':>9} {'time vs built-in':>17}")
    for r in rows:
        print(f"{r['path']:<14} {r['seconds']:>9.3f} {r['epochs_per_s']:>9.2f} "
              f"{r['ratio_vs_builtin']:>17.3f}")
    res = {"config": vars(a) | {"out": str(a.out)}, "device": "cpu", "rows": rows}
    save(a.out, res)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
