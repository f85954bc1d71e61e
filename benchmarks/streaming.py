"""Samples per second of the training loop's two data paths on the same data and model: the
in-memory fast path (tensors indexed in place) against the DataLoader path (`training.loader:
stream`) with 0 and 2 workers. Interleaved repeats; medians; ratios against the in-memory run of
the same process.

    .venv/bin/python -m benchmarks.streaming            # 40k x 64 synthetic, mlp [256], 3 repeats
    .venv/bin/python -m benchmarks.streaming --smoke
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import interleaved, save, synthetic_run

OUT = Path(__file__).parent / "results" / "streaming.json"


def one_run(data: Any, loader: str, workers: int, epochs: int, batch: int) -> float:
    """Training samples per second over `epochs` epochs (evaluation included)."""
    import torch

    from tuner.models import build_model
    from tuner.space import TrialConfig
    from tuner.spec import TrainingSpec
    from tuner.training import Trainer

    torch.manual_seed(0)
    training = TrainingSpec(epochs=epochs, batch_size=batch, loader=loader,  # type: ignore[arg-type]
                            num_workers=workers, device="cpu")
    model = build_model("mlp", {"hidden": [256]}, data.info)
    trainer = Trainer(model, data, TrialConfig("adam", "constant", {"adam.lr": 1e-3}), training,
                      "val_accuracy")
    t0 = time.perf_counter()
    for _ in trainer.epochs():
        pass
    return data.info.n_train * epochs / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    a, data = synthetic_run(__doc__.splitlines()[0], OUT, argv, samples=40_000, epochs=2,
                            repeats=3, smoke=(2_000, 1, 1))
    paths = {"memory": ("memory", 0), "stream_0_workers": ("stream", 0),
             "stream_2_workers": ("stream", 2)}
    runs = interleaved({name: functools.partial(one_run, data, loader, workers, a.epochs, a.batch)
                        for name, (loader, workers) in paths.items()}, a.repeats)
    base = statistics.median(runs["memory"])
    rows = [{"path": name, "samples_per_s": statistics.median(v),
             "ratio_vs_memory": statistics.median(v) / base, "runs": v}
            for name, v in runs.items()]
    print(f"{'path':<18} {'samples/s':>11} {'vs memory':>10}")
    for r in rows:
        print(f"{r['path']:<18} {r['samples_per_s']:>11.0f} {r['ratio_vs_memory']:>10.2f}")
    res = {"config": vars(a) | {"out": str(a.out)}, "device": "cpu", "rows": rows}
    save(a.out, res)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
