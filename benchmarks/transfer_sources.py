"""Which tasks should a transferred answer be drawn from, and how should a family that a similar
task did not rank count there? Leave one task out over the reference corpus, with a simulated
team history; no training (each held-out task's families are judged by the corpus's own
confirmation runs).

    .venv/bin/python -m benchmarks.transfer_sources            # every corpus task, 20 teams each
    .venv/bin/python -m benchmarks.transfer_sources --smoke    # seconds: checks it runs

For each held-out task T and each of `--teams` draws, the team's history is 2 other corpus
tasks drawn at random, and the reference corpus is the rest (T and the team's tasks left out).
The team's tasks are given whole (`full`: every family ranked there), or as a default job
leaves them (`partial`: 4 families drawn at random completed there, the others never ranked).
Each rule answers "which family for T?" from those, and is scored by its first family:
- normalised regret on T: the best family's value minus the first family's (for a loss, the
  other way), over the spread between T's best and worst family, each a mean over the corpus's
  confirmation seeds of the family's best configuration (fresh seeds); 0 = as good as the best,
  1 = as bad as the worst (a family with no value on T counts 1);
- whether the first family is among T's leading families (its best and those tied with it).

Rules, (neighbours) x (a family a neighbour did not rank):
  team_first/worst      the team's tasks alone whenever one is similar enough (0.25), and a family
                        a task did not rank scores 0 there (the service until 2026-12-06)
  team_first/average    ... scored as that task's average family
  nearest/worst         the team's tasks with the corpus's nearer than any of them
  nearest/average       both changes (the service since 2026-12-06)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks._common import save
from tuner.corpus import CorpusTask, load
from tuner.optimizers import FAMILIES
from tuner.recommend import (
    CORPUS_MIN_SIMILARITY,
    TaskProfile,
    rank_families,
    similar_tasks,
    transfer_neighbours,
    transfer_ranking,
)

OUT = Path(__file__).parent / "results" / "transfer_sources.json"
TEAM_TASKS = 2
PARTIAL_FAMILIES = 4
RULES = ("team_first/worst", "team_first/average", "nearest/worst", "nearest/average")


def profile(task: CorpusTask, key: str) -> TaskProfile:
    return replace(task.profile(), task_id=key)


def team_ranking(task: CorpusTask, families: Sequence[str] | None) -> dict[str, Any]:
    """The team's ranking of one of its tasks: whole, or as if only `families` completed."""
    if families is None:
        return task.ranking()
    keep = [t for t in task.trials if t.optimizer in families]
    return rank_families(keep, task.direction, metric=task.metric)


def as_worst(ranked: dict[str, Any]) -> dict[str, Any]:
    """The same ranking with every family it did not rank marked as diverged there, so that
    `transfer_ranking` scores it 0 (the worst) there: the rule until 2026-12-06."""
    have = {e["optimizer"] for e in ranked["ranking"]}
    return {**ranked, "not_ranked": [{"optimizer": f, "evidence": {"n_trials": 1, "n_diverged": 1}}
                                     for f in FAMILIES if f not in have]}


def answer(query: TaskProfile, team: dict[str, tuple[CorpusTask, dict[str, Any]]],
           corpus: dict[str, CorpusTask], rule: str) -> tuple[str | None, list[str]]:
    """(the first family, the neighbours' keys) under `rule`."""
    neighbours_rule, absent = rule.split("/")
    team_profiles = [profile(t, k) for k, (t, _) in team.items()]
    corpus_profiles = [profile(t, k) for k, t in corpus.items()]
    if neighbours_rule == "team_first":
        mine = similar_tasks(query, team_profiles)
        near = mine or similar_tasks(query, corpus_profiles, min_similarity=CORPUS_MIN_SIMILARITY)
    else:
        from_corpus, from_team = transfer_neighbours(query, team_profiles, corpus_profiles)
        near = from_corpus + from_team
    neighbours = []
    for n in near:
        key = str(n["task_id"])
        ranked = team[key][1] if key in team else corpus[key].ranking()
        neighbours.append((n, as_worst(ranked) if absent == "worst" and key in team else ranked))
    if not neighbours:
        return None, []
    ranking = transfer_ranking(neighbours)["ranking"]
    return (ranking[0]["optimizer"] if ranking else None), [str(n["task_id"]) for n in near]


def score(task: CorpusTask, family: str | None) -> tuple[float, bool]:
    """(normalised regret, among the leaders) of following `family` on `task`."""
    oracle = task.oracle()
    sign = 1.0 if task.direction == "maximize" else -1.0
    best = max(sign * v for v in oracle.values())
    worst = min(sign * v for v in oracle.values())
    spread = (best - worst) or 1e-12
    ranked = task.ranking()
    best_family = max(oracle, key=lambda f: sign * oracle[f])
    leaders = set(ranked["leaders"]) | {best_family}
    if family is None or family not in oracle:
        return 1.0, False
    return max(0.0, (best - sign * oracle[family]) / spread), family in leaders


def evaluate(corpus_tasks: Sequence[CorpusTask], held: CorpusTask, teams: int, seed: int
             ) -> list[dict[str, Any]]:
    rng = random.Random(f"{seed}-{held.id}")
    others = [t for t in corpus_tasks if t.id != held.id]
    query = profile(held, f"held:{held.id}")
    rows = []
    for draw in range(teams):
        mine = rng.sample(others, TEAM_TASKS)
        corpus = {f"ref:{t.id}": t for t in others if t not in mine}
        for history in ("full", "partial"):
            team = {}
            for t in mine:
                fams = None if history == "full" else rng.sample(
                    sorted({x.optimizer for x in t.trials}), PARTIAL_FAMILIES)
                team[f"team:{t.id}"] = (t, team_ranking(t, fams))
            row: dict[str, Any] = {"task": held.id, "draw": draw, "history": history,
                                   "team": [t.id for t in mine]}
            for rule in RULES:
                first, near = answer(query, team, corpus, rule)
                regret, lead = score(held, first)
                row[rule] = {"first": first, "neighbours": near, "regret": regret,
                             "leader": lead}
            rows.append(row)
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for history in ("full", "partial"):
        mine = [r for r in rows if r["history"] == history]
        used_team = [r for r in mine if any(k.startswith("team:")
                                            for k in r["team_first/worst"]["neighbours"])]
        out[history] = {
            "answers": len(mine),
            "team_first_used_the_team": len(used_team),
            "neighbours_changed": sum(_changed(r) for r in mine),
            **{rule: {"mean_regret": statistics.fmean(r[rule]["regret"] for r in mine),
                      "mean_regret_where_team_used": statistics.fmean(
                          r[rule]["regret"] for r in used_team) if used_team else None,
                      "leader_share": statistics.fmean(float(r[rule]["leader"]) for r in mine),
                      "leader_share_where_team_used": statistics.fmean(
                          float(r[rule]["leader"]) for r in used_team) if used_team else None}
               for rule in RULES}}
    return out


def _changed(row: dict[str, Any]) -> bool:
    return bool(row["team_first/worst"]["neighbours"] != row["nearest/worst"]["neighbours"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teams", type=int, default=20, help="team histories drawn per task")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    corpus = load()
    if corpus is None:
        sys.exit("no reference corpus: run `tuner corpus build` first")
    held = corpus.tasks[:2] if a.smoke else corpus.tasks
    teams = 2 if a.smoke else a.teams
    t0 = time.perf_counter()
    rows = [r for t in held for r in evaluate(corpus.tasks, t, teams, a.seed)]
    summary = summarise(rows)
    results = {"corpus": corpus.digest, "teams_per_task": teams, "team_tasks": TEAM_TASKS,
               "partial_families": PARTIAL_FAMILIES, "summary": summary,
               # only the answers where the rules differ (the file stays small)
               "rows": [r for r in rows if _changed(r) or len({r[x]["first"] for x in RULES}) > 1],
               "seconds": time.perf_counter() - t0}
    print(f"{'history':<8} {'rule':<20} {'mean regret':>12} {'(team used)':>12} "
          f"{'leader':>8} {'(team used)':>12}")
    for history, s in summary.items():
        for rule in RULES:
            r = s[rule]
            print(f"{history:<8} {rule:<20} {r['mean_regret']:>12.3f} "
                  f"{_f(r['mean_regret_where_team_used']):>12} {r['leader_share']:>8.0%} "
                  f"{_p(r['leader_share_where_team_used']):>12}")
        print(f"{history:<8} {s['answers']} answers; the team's tasks were near enough to be "
              f"used in {s['team_first_used_the_team']}; the nearest rule changed the "
              f"neighbours of {s['neighbours_changed']}")
    save(a.out, results)
    print(f"wrote {a.out} ({results['seconds']:.0f} s)", file=sys.stderr)
    return results


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _p(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


if __name__ == "__main__":
    main()
