"""Which families should a job's defaults sweep reach after those its team's history ranked? No
training: leave each corpus task's dataset out, and judge on the task's own corpus runs.

    .venv/bin/python -m benchmarks.sweep_rest_order            # every corpus task, 20 draws
    .venv/bin/python -m benchmarks.sweep_rest_order --smoke    # seconds: checks it runs

A small job on a task ranks few families (the others pruned); the task's next job sweeps those
first, then `--rest` more families. For each held-out task T and each of `--draws` draws, the
team's ranked families are `--ranked` families drawn at random; the rest of the sweep is taken
from one of two orders, with every corpus task on T's dataset left out:
  corpus_wide   the corpus's order over all its tasks (each family's start's mean score): the
                service until 2026-12-06
  nearest       the order the corpus's tasks most similar to T give (`corpus_answer`, what a new
                team is told of T): the service since; where no corpus task is near enough, the
                corpus-wide order
Scored by the families the rest reaches: the best normalised regret among them on T (0 = T's
best family, 1 = its worst; each family's value the mean of the corpus's confirmation seeds of
its best configuration, as `benchmarks.transfer_sources` scores) and whether one of T's leading
families is among them.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks._common import save
from benchmarks.transfer_sources import score
from tuner.corpus import Corpus, load, sweep_starts
from tuner.recommendations import corpus_answer

OUT = Path(__file__).parent / "results" / "sweep_rest_order.json"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=20)
    ap.add_argument("--ranked", type=int, default=2)
    ap.add_argument("--rest", type=int, default=4)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    ref = load()
    assert ref is not None, "the reference corpus is turned off"
    held_tasks = ref.tasks[:2] if a.smoke else ref.tasks
    rows = []
    for held in held_tasks:
        dataset = held.spec["task"]["dataset"]["name"]
        rest_corpus = Corpus(tuple(t for t in ref.tasks
                                   if t.spec["task"]["dataset"]["name"] != dataset),
                             f"{ref.digest}-{dataset}", ref.built)
        wide = [s.optimizer for s in sweep_starts(rest_corpus, "corpus")]
        near_answer = corpus_answer(held.profile(), held.metric, rest_corpus)
        near = [r["optimizer"] for r in near_answer["ranking"]] if near_answer else []
        near += [f for f in wide if f not in near]
        families = sorted(held.oracle())
        rng = random.Random(f"{held.id}")
        for draw in range(1 if a.smoke else a.draws):
            ranked = rng.sample(families, a.ranked)
            row: dict[str, Any] = {"task": held.id, "draw": draw, "ranked": ranked,
                                   "near_task": bool(near_answer)}
            for name, order in (("corpus_wide", wide), ("nearest", near)):
                reached = [f for f in order if f not in ranked][:a.rest]
                scored = [score(held, f) for f in reached]
                row[name] = {"families": reached, "regret": min(r for r, _ in scored),
                             "leader": any(lead for _, lead in scored)}
            rows.append(row)
    summary = {name: {"mean_regret": statistics.fmean(r[name]["regret"] for r in rows),
                      "median_regret": statistics.median(r[name]["regret"] for r in rows),
                      "leader_reached": statistics.fmean(r[name]["leader"] for r in rows)}
               for name in ("corpus_wide", "nearest")}
    differ = [r for r in rows if r["corpus_wide"]["families"] != r["nearest"]["families"]]
    print(f"{len(held_tasks)} tasks x {1 if a.smoke else a.draws} draws, {a.ranked} ranked, "
          f"the next {a.rest} swept; rest orders differ in {len(differ)} of {len(rows)}")
    print(f"{'order':<14} {'mean regret':>12} {'median':>8} {'a leader reached':>17}")
    for name, s in summary.items():
        print(f"{name:<14} {s['mean_regret']:>12.3f} {s['median_regret']:>8.3f} "
              f"{s['leader_reached']:>17.0%}")
    better = sum(r["nearest"]["regret"] < r["corpus_wide"]["regret"] for r in differ)
    worse = sum(r["nearest"]["regret"] > r["corpus_wide"]["regret"] for r in differ)
    print(f"where they differ: nearest better in {better}, worse in {worse}, same best in "
          f"{len(differ) - better - worse}")
    results = {"draws": a.draws, "ranked": a.ranked, "rest": a.rest, "summary": summary,
               "differ": len(differ), "nearest_better": better, "nearest_worse": worse,
               "rows": rows, "seconds": time.perf_counter() - t0}
    save(a.out, results)
    return results


if __name__ == "__main__":
    main()
