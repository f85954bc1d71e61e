"""Where should a defaults sweep start each family? Judged on the reference corpus, held out by
dataset, without training anything (seconds).

    .venv/bin/python -m benchmarks.sweep_starts

The corpus ran each family's search with the same sampler seed on every task, so each of its
configurations has a score on every task (0 = the task's worst trial, 1 = its best;
`tuner.corpus.config_scores`). For each dataset, the starts are chosen from the corpus less every
task on that dataset, and judged on that dataset's tasks: the best score among the sweep's first
k trials, averaged over the held-out tasks (so over all 26 tasks in the end). Kinds
(`search.sweep_start`):
  literature   each family's literature defaults, in the order they score on the corpus
  corpus       each family's configuration with the best mean score, best first
  portfolio    chosen together: each next family's configuration is the one that most raises
               the best score found so far over the corpus's tasks
Also: the share of held-out tasks on which the first k trials come within 0.02 of the task's
best (a miss is what the sampler must make up).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from benchmarks._common import save
from tuner import corpus as reference

KINDS = ("literature", "corpus", "portfolio")
KS = (1, 2, 3, 4, 7, 14)
NEAR = 0.02
OUT = Path(__file__).parent / "results" / "sweep_starts.json"


def dataset(task: reference.CorpusTask) -> str:
    return str(task.spec["task"]["dataset"]["name"])


def literature_keys(corpus: reference.Corpus) -> list[str]:
    """Each family's first trial (its literature defaults), in the defaults order."""
    first: dict[str, tuple[int, str]] = {}
    for task in corpus.tasks:
        for t in task.trials:
            if not t.confirmation and (t.optimizer not in first
                                       or t.number < first[t.optimizer][0]):
                first[t.optimizer] = (t.number, t.config_key)
    return [first[f][1] for f in reference.defaults_order(corpus) if f in first]


def start_keys(corpus: reference.Corpus, kind: str) -> list[str]:
    if kind == "literature":
        return literature_keys(corpus)
    _, trials = reference.config_scores(corpus)
    by_config = {(t.optimizer, t.schedule or "constant", repr(sorted(t.params.items()))): k
                 for k, t in trials.items()}
    return [by_config[(s.optimizer, s.schedule, repr(sorted(s.params.items())))]
            for s in reference.sweep_starts(corpus, kind)]


def measure(corpus: reference.Corpus) -> dict[str, dict[int, list[float]]]:
    """Per kind and k, the best score among the first k sweep trials on each held-out task."""
    scores, _ = reference.config_scores(corpus)
    found: dict[str, dict[int, list[float]]] = {kind: {k: [] for k in KS} for kind in KINDS}
    for name in sorted({dataset(t) for t in corpus.tasks}):
        train = reference.Corpus(tuple(t for t in corpus.tasks if dataset(t) != name),
                                 f"{corpus.digest}-without-{name}", corpus.built)
        held = [t for t in corpus.tasks if dataset(t) == name]
        for kind in KINDS:
            keys = start_keys(train, kind)
            for task in held:
                for k in KS:
                    found[kind][k].append(max(scores.get(key, {}).get(task.id, 0.0)
                                              for key in keys[:k]))
    return found


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    corpus = reference.load()
    if corpus is None:
        raise SystemExit("no reference corpus (TUNER_REFERENCE_CORPUS=none?)")
    found = measure(corpus)
    n = len(found[KINDS[0]][KS[0]])
    print(f"{n} tasks, each held out with its dataset; the best score (0 = the task's worst "
          f"trial, 1 = its best) among the sweep's first k trials, mean over the tasks / share "
          f"of tasks within {NEAR} of the best")
    print("kind".ljust(12) + "".join(f"k={k}".rjust(14) for k in KS))
    results: dict[str, Any] = {"tasks": n, "near": NEAR, "corpus": corpus.digest, "kinds": {}}
    for kind in KINDS:
        row = {k: {"mean_best": statistics.mean(v), "near_share": sum(x >= 1 - NEAR for x in v) / n}
               for k, v in found[kind].items()}
        results["kinds"][kind] = row
        print(kind.ljust(12) + "".join(f"{r['mean_best']:7.3f} / {r['near_share']:4.2f}"
                                       for r in row.values()))
    save(a.out, results)


if __name__ == "__main__":
    main()
