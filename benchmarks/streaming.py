"""Samples per second of the training loop's two data paths on the same data and model: the
in-memory fast path (tensors indexed in place) against the DataLoader path (`training.loader:
stream`) with 0 and 2 workers. Interleaved repeats; medians; ratios against the in-memory run of
the same process.

    .venv/bin/python -m benchmarks.streaming            # 40k x 64 synthetic, mlp [256], 3 repeats
    .venv/bin/python -m benchmarks.streaming --smoke
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import interleaved, save

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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=40_000)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    if a.smoke:
        a.samples, a.epochs, a.repeats = 2_000, 1, 1
    import torch

    from tuner.datasets import load_dataset

    torch.set_num_threads(1)
    data = load_dataset("classification", {"n_samples": a.samples, "n_features": a.features,
                                           "n_informative": 16}, seed=0)
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
