"""The reference corpus's answers held against a model that ignores its inputs: for each
corpus task, what predicting the training set's most common class, its class frequencies or
its mean scores on the task's validation set (`tuner.datasets.no_skill`), beside the answer's
best family (`tuner.recommend.rank_families` on the task's trials, as the service ranks them)
and `versus_no_skill`'s verdict. Runs no training: it loads each task's data and reads the
corpus. It also checks the value the corpus file keeps for each task (`tuner corpus annotate`),
which transfer answers read, against the one computed here (`stored_agrees`).

    .venv/bin/python -m benchmarks.no_skill          # every corpus task (~1 min)
    .venv/bin/python -m benchmarks.no_skill --smoke  # the first three
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks._common import save

OUT = Path(__file__).parent / "results" / "no_skill.json"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="the first three corpus tasks")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    from tuner import corpus
    from tuner.datasets import load_dataset, no_skill
    from tuner.recommend import rank_families, versus_no_skill
    from tuner.spec import JobSpec

    loaded = corpus.load()
    assert loaded is not None, "no reference corpus"
    rows = []
    for task in loaded.tasks[:3] if a.smoke else loaded.tasks:
        spec = JobSpec.model_validate(task.spec)
        ds = spec.task.dataset
        assert ds is not None
        data = load_dataset(ds.name, ds.params, spec.training.seed)
        ranked = rank_families(task.trials, task.direction, metric=task.metric)
        computed = no_skill(data, task.metric)
        blind = versus_no_skill(ranked, computed, task.metric, data.info.kind)
        rows.append({"task": task.id, "metric": task.metric,
                     "no_skill": blind["value"] if blind else None,
                     "stored": task.no_skill,
                     "stored_agrees": task.no_skill is not None and computed is not None
                     and abs(task.no_skill - computed) <= 1e-9 * max(1.0, abs(computed)),
                     "best_family": ranked["ranking"][0]["optimizer"],
                     "expected": ranked["ranking"][0]["expected"]["value"],
                     "best_trial": ranked["ranking"][0]["best_trial_value"],
                     "verdict": blind["verdict"] if blind else None})
    print(f"{'task':32} {'metric':13} {'no skill':>9} {'best family':12} {'expected':>9} "
          f"{'best trial':>10}  verdict")
    for r in rows:
        print(f"{r['task']:32} {r['metric']:13} {r['no_skill']:9.4g} {r['best_family']:12} "
              f"{r['expected']:9.4g} {r['best_trial']:10.4g}  {r['verdict']}")
    counts = dict(Counter(str(r["verdict"]) for r in rows))
    agree = sum(r["stored_agrees"] for r in rows)
    print(f"{len(rows)} tasks: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
          + f"; the corpus file's stored value agrees on {agree} of {len(rows)}")
    results: dict[str, Any] = {"corpus": loaded.digest, "tasks": rows, "verdicts": counts,
                               "stored_agrees": agree}
    save(a.out, results)
    print(f"wrote {a.out}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
