"""The reference corpus: every optimizer family tuned with an equal budget, plus confirmation
runs, on a suite of built-in tasks. It ships with the package as a read-only history
(`tuner/data/reference_corpus.json`) that every team's recommendations may read when the team's
own history has no similar task, and that nothing in the service can write: it is a file loaded
into immutable records, never a table.

`build` (`tuner corpus build`) makes it again, reproducibly: for each task and each family, a
search over that family alone (its literature defaults first, then TPE) of `trials_per_family`
complete trials, no pruning (equal budgets), then the family's best configuration re-run over
`confirm_seeds` new seeds (an unbiased estimate of what that configuration gives)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from tuner.errors import SpecError, UnknownName, choices
from tuner.recommend import HistoryTrial, TaskProfile, rank_families, versus_no_skill
from tuner.space import FAMILIES

PATH = Path(__file__).parent / "data" / "reference_corpus.json"
SOURCE = "reference corpus"
FORMAT = 1


def _t(model: str, dataset: str, mp: dict[str, Any] | None = None,
       dp: dict[str, Any] | None = None, epochs: int = 8, batch_size: int = 64) -> dict[str, Any]:
    return {"task": {"model": {"name": model, "params": mp or {}},
                     "dataset": {"name": dataset, "params": dp or {}}},
            "training": {"epochs": epochs, "batch_size": batch_size}}


# The suite: every built-in model on the datasets it fits, with size variants (width, depth,
# n_samples, condition number, batch size). Sized so the whole build runs in well under an hour
# on two CPU cores.
SUITE: dict[str, dict[str, Any]] = {
    "linear-iris": _t("linear", "iris", epochs=10, batch_size=16),
    "linear-wine": _t("linear", "wine", epochs=10, batch_size=16),
    "linear-breast_cancer": _t("linear", "breast_cancer"),
    "linear-diabetes": _t("linear", "diabetes", epochs=10, batch_size=32),
    "linear-quadratic-c10": _t("linear", "quadratic", dp={"condition": 10.0}),
    "linear-quadratic-c1e4": _t("linear", "quadratic", dp={"condition": 1e4}),
    "linear-classification": _t("linear", "classification"),
    "mlp-iris": _t("mlp", "iris", {"hidden": [32]}, epochs=10, batch_size=16),
    "mlp-wine": _t("mlp", "wine", {"hidden": [32]}, epochs=10, batch_size=16),
    "mlp-breast_cancer": _t("mlp", "breast_cancer", {"hidden": [64]}),
    "mlp-diabetes": _t("mlp", "diabetes", {"hidden": [64]}, epochs=10, batch_size=32),
    "mlp-digits-w32": _t("mlp", "digits", {"hidden": [32]}),
    "mlp-digits-w256": _t("mlp", "digits", {"hidden": [256]}),
    "mlp-digits-deep": _t("mlp", "digits", {"hidden": [64, 64, 64]}),
    "mlp-digits-b16": _t("mlp", "digits", {"hidden": [64]}, epochs=5, batch_size=16),
    "mlp-digits-b256": _t("mlp", "digits", {"hidden": [64]}, epochs=12, batch_size=256),
    "mlp-classification-n500": _t("mlp", "classification", {"hidden": [64]},
                                  {"n_samples": 500}),
    "mlp-classification-n4000": _t("mlp", "classification", {"hidden": [64]},
                                   {"n_samples": 4000}, epochs=5, batch_size=128),
    "mlp-classification-deep": _t("mlp", "classification", {"hidden": [128, 128, 128]},
                                  {"n_samples": 2000}),
    "mlp-regression": _t("mlp", "regression", {"hidden": [64]}),
    "mlp-quadratic-c1e3": _t("mlp", "quadratic", {"hidden": [32]}, {"condition": 1e3}),
    "cnn-digits": _t("cnn", "digits", {"channels": [8, 16]}, epochs=5),
    "cnn-digits-wide": _t("cnn", "digits", {"channels": [16, 32]}, epochs=5, batch_size=128),
    "transformer-digits": _t("transformer", "digits", {"d_model": 16, "heads": 2, "layers": 1},
                             epochs=5),
    "transformer-breast_cancer": _t("transformer", "breast_cancer",
                                    {"d_model": 16, "heads": 2, "layers": 1}, epochs=5),
    "transformer-wine": _t("transformer", "wine", {"d_model": 16, "heads": 2, "layers": 1},
                           epochs=8, batch_size=16),
}


@dataclass(frozen=True, eq=False)  # hashed by identity: its ranking is cached
class CorpusTask:
    """One task of the corpus: what it is, its features, and its trials (read-only)."""

    id: str
    spec: dict[str, Any]
    metric: str
    direction: str
    features: dict[str, Any]
    trials: tuple[HistoryTrial, ...]
    unfinished: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What a model that ignores its inputs scores on the task's validation set
    # (`tuner.datasets.no_skill`); None in a file written before 2026-12-07 and not annotated
    # (`annotate`).
    no_skill: float | None = None

    @property
    def name(self) -> str:
        t = self.spec["task"]
        return f"{t['model']['name']}/{t['dataset']['name']}"

    def profile(self) -> TaskProfile:
        f = self.features
        return TaskProfile(task_id=f"ref:{self.id}", model=self.spec["task"]["model"]["name"],
                           kind=f["kind"], n_params=f["n_params"], depth=f["depth"],
                           input_shape=tuple(f["input_shape"]), n_train=f["n_train"],
                           n_classes=f["n_classes"], batch_size=f["batch_size"],
                           epochs=f["epochs"])

    def ranking(self) -> dict[str, Any]:
        return _ranking(self)

    def oracle(self) -> dict[str, float]:
        """Per family: the mean over the confirmation seeds of its best search configuration
        (fresh seeds, so not inflated by the selection)."""
        out: dict[str, list[float]] = {}
        for t in self.trials:
            if t.confirmation:
                out.setdefault(t.optimizer, []).append(t.value)
        return {f: sum(v) / len(v) for f, v in out.items()}


@lru_cache(maxsize=256)
def _ranking(task: CorpusTask) -> dict[str, Any]:
    """The task's answer, as the service ranks a team's task, with its best family held
    against a model that ignores its inputs (`no_skill`, as a team task's answer has it)."""
    ranked = rank_families(task.trials, task.direction, incomplete=task.unfinished,
                           metric=task.metric)
    ranked["no_skill"] = versus_no_skill(ranked, task.no_skill, task.metric,
                                         task.features["kind"])
    return ranked


@dataclass(frozen=True)
class Corpus:
    tasks: tuple[CorpusTask, ...]
    digest: str
    built: dict[str, Any]

    def get(self, task_id: str) -> CorpusTask:
        key = task_id.removeprefix("ref:")
        for t in self.tasks:
            if t.id == key:
                return t
        raise KeyError(task_id)

    def without(self, task_id: str) -> Corpus:
        """The corpus less one task (leave-one-out measurements)."""
        return Corpus(tuple(t for t in self.tasks if t.id != task_id),
                      f"{self.digest}-{task_id}", self.built)


def _trial(d: dict[str, Any], task_id: str, epochs: int, batch: int) -> HistoryTrial:
    return HistoryTrial(job_id=f"ref:{task_id}", number=int(d["n"]), optimizer=d["o"],
                        schedule=d["s"], params=d["p"], value=float(d["v"]), config_key=d["k"],
                        confirmation=bool(d["c"]), seed=d.get("seed"),
                        state_bytes_per_param=float(d.get("b", 0.0)),
                        seconds_per_epoch=float(d.get("t", 0.0)),
                        setting=(f"ref:{task_id}", epochs, batch))


def parse(raw: dict[str, Any], digest: str = "") -> Corpus:
    if raw.get("format") != FORMAT:
        raise ValueError(f"reference corpus: unknown format {raw.get('format')!r}")
    tasks = []
    for t in raw["tasks"]:
        f = t["features"]
        tasks.append(CorpusTask(
            id=t["id"], spec=t["spec"], metric=t["metric"], direction=t["direction"],
            features=f, unfinished=t.get("unfinished", {}), no_skill=t.get("no_skill"),
            trials=tuple(_trial(d, t["id"], f["epochs"], f["batch_size"]) for d in t["trials"])))
    return Corpus(tuple(tasks), digest, raw.get("built", {}))


@lru_cache(maxsize=4)
def _load(path: str) -> Corpus | None:
    p = Path(path)
    if not p.is_file():
        return None
    data = p.read_bytes()
    return parse(json.loads(data), hashlib.sha256(data).hexdigest()[:12])


def load() -> Corpus | None:
    """The shipped corpus (`TUNER_REFERENCE_CORPUS` names another file; `none` turns it off)."""
    path = os.environ.get("TUNER_REFERENCE_CORPUS", str(PATH))
    if path.lower() == "none":
        return None
    return _load(path)


def defaults_order(corpus: Corpus | None) -> list[str]:
    """Every family, best first at its literature defaults over the corpus's tasks: the order of
    a defaults sweep when nothing is known of the task. Each family's search in the corpus
    starts at its defaults (its first trial); a task scores each family's default run from 0
    (the task's worst default) to 1 (its best), and families are ordered by their mean score.
    Families the corpus lacks, or all of them without a corpus, follow in catalogue order."""
    if corpus is None:
        return list(FAMILIES)
    if corpus.digest not in _ORDERS:
        _ORDERS[corpus.digest] = _defaults_order(corpus)
    return list(_ORDERS[corpus.digest])


_ORDERS: dict[str, tuple[str, ...]] = {}


def _defaults_order(corpus: Corpus) -> tuple[str, ...]:
    scores: dict[str, list[float]] = {}
    for task in corpus.tasks:
        first: dict[str, HistoryTrial] = {}
        for t in task.trials:
            if not t.confirmation and (t.optimizer not in first
                                       or t.number < first[t.optimizer].number):
                first[t.optimizer] = t
        values = {f: t.value for f, t in first.items() if math.isfinite(t.value)}
        if len(values) < 2:
            continue
        lo, hi = min(values.values()), max(values.values())
        for f, v in values.items():
            score = (v - lo) / (hi - lo) if hi > lo else 1.0
            scores.setdefault(f, []).append(score if task.direction == "maximize" else 1 - score)
    ranked = sorted(scores, key=lambda f: (-sum(scores[f]) / len(scores[f]), f))
    return tuple(ranked + [f for f in FAMILIES if f not in scores])


@dataclass(frozen=True)
class Start:
    """A family's starting configuration learned from the corpus, one of the configurations the
    corpus ran on every task (each family's search uses the same sampler seed on every task, so
    its trials are the same configurations everywhere)."""

    optimizer: str
    schedule: str
    params: dict[str, Any]
    # Mean over the corpus's tasks: 0 = the task's worst trial (or it did not finish), 1 = best.
    score: float
    tasks: int  # tasks it finished on
    # `portfolio` only: the mean over the tasks of the best score among this start and those
    # before it (what a sweep stopped here would have found).
    cover: float | None = None


START_KINDS = ("corpus", "portfolio")


def sweep_starts(corpus: Corpus | None, kind: str = "corpus") -> list[Start]:
    """One start per family the corpus ran, in the sweep's order: what a defaults sweep runs
    when nothing is known of the task (`search.sweep_start`).
    - `corpus`: each family's configuration with the best mean score, best first. On the
      corpus's own tasks they score 0.71-0.97 (in sample: they were chosen by that score)
      against 0.32-0.89 for the literature defaults.
    - `portfolio`: chosen greedily together (as Auto-sklearn 2.0 builds its portfolio): each
      next start, one per family, is the configuration that most raises the mean over the tasks
      of the best score found so far. The first is the same; the next ones cover the tasks the
      first ones do badly on rather than repeat them.
    Held out by dataset, see docs/benchmarks.md (`benchmarks/sweep_starts.py`)."""
    if kind not in START_KINDS:
        raise ValueError(f"unknown sweep start kind {kind!r}; valid: {', '.join(START_KINDS)}")
    if corpus is None:
        return []
    key = (corpus.digest, kind)
    if key not in _STARTS:
        _STARTS[key] = _portfolio(corpus) if kind == "portfolio" else _best_per_family(corpus)
    return list(_STARTS[key])


_STARTS: dict[tuple[str, str], tuple[Start, ...]] = {}


def config_scores(corpus: Corpus) -> tuple[dict[str, dict[str, float]], dict[str, HistoryTrial]]:
    """Per configuration (config key), its score on each task where it finished: 0 = the task's
    worst trial, 1 = its best; and one trial of it (its optimizer, schedule and parameters)."""
    scores: dict[str, dict[str, float]] = {}
    trials: dict[str, HistoryTrial] = {}
    for task in corpus.tasks:
        done = [t for t in task.trials if not t.confirmation and math.isfinite(t.value)]
        if not done:
            continue
        lo, hi = min(t.value for t in done), max(t.value for t in done)
        for t in done:
            score = (t.value - lo) / (hi - lo) if hi > lo else 1.0
            scores.setdefault(t.config_key, {})[task.id] = \
                score if task.direction == "maximize" else 1 - score
            trials.setdefault(t.config_key, t)
    return scores, trials


def _start(t: HistoryTrial, scores: dict[str, float], n: int,
           cover: float | None = None) -> Start:
    # A configuration that diverged or failed on a task scores 0 there.
    return Start(t.optimizer, t.schedule or "constant", dict(t.params),
                 sum(scores.values()) / n, len(scores), cover)


def _best_per_family(corpus: Corpus) -> tuple[Start, ...]:
    scores, trials = config_scores(corpus)
    best: dict[str, Start] = {}
    for key in sorted(scores):
        start = _start(trials[key], scores[key], len(corpus.tasks))
        if start.optimizer not in best or start.score > best[start.optimizer].score:
            best[start.optimizer] = start
    return tuple(sorted(best.values(), key=lambda s: (-s.score, s.optimizer)))


MIN_GAIN = 1e-3  # a portfolio start must raise the mean best-so-far by this much


def _portfolio(corpus: Corpus) -> tuple[Start, ...]:
    scores, trials = config_scores(corpus)
    ids = [t.id for t in corpus.tasks]
    found = dict.fromkeys(ids, 0.0)  # per task, the best score of the starts chosen so far
    chosen: list[Start] = []
    left = sorted(scores)
    while left:
        def gain(key: str) -> tuple[float, float, str]:
            s = scores[key]  # ties: the better mean, then the key (deterministic)
            return (sum(max(found[i], s.get(i, 0.0)) for i in ids), sum(s.values()), key)

        key = max(left, key=gain)
        if gain(key)[0] - sum(found.values()) < MIN_GAIN * len(ids):
            # Nothing left raises the best so far by much: the rest by their own mean score
            # (sgd at lr 1e-4 may add 1e-5 on one task; it is not what to run next).
            key = max(left, key=lambda k: (sum(scores[k].values()), k))
        for i in ids:
            found[i] = max(found[i], scores[key].get(i, 0.0))
        chosen.append(_start(trials[key], scores[key], len(ids), sum(found.values()) / len(ids)))
        left = [k for k in left if trials[k].optimizer != trials[key].optimizer]
    return tuple(chosen)


# building -----------------------------------------------------------------------------------

def family_spec(base: dict[str, Any], family: str, trials: int, seed: int) -> dict[str, Any]:
    """One family's equal-budget search on a suite task: defaults first, then TPE, no pruning,
    no confirmation (done afterwards on the family's best)."""
    return {**base, "space": {"optimizers": [family]},
            "training": {**base["training"], "seed": seed},
            "budget": {"n_trials": trials},
            # Literature defaults first: the corpus is what the learned starts come from.
            "search": {"pruner": "none", "confirm_top_k": 0, "sweep_start": "literature"}}


def run_task(task_id: str, base: dict[str, Any], families: Sequence[str], *,
             trials_per_family: int, confirm_seeds: int, seed: int = 0) -> dict[str, Any]:
    """Tune every family on one suite task, then re-run each family's best configuration over
    `confirm_seeds` new seeds. Returns the task's corpus entry."""
    import optuna
    import torch

    from tuner.attrs import ATTR_CONFIRM_OF, ATTR_SEED
    from tuner.confirm import CONFIRM_SEED_OFFSET
    from tuner.objective import Objective
    from tuner.results import study_records
    from tuner.search import create_study
    from tuner.spec import JobSpec
    from tuner.tasks import inspect_task

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)  # one process per core: no oversubscription
    features = inspect_task(JobSpec.model_validate(base))
    rows: list[dict[str, Any]] = []
    unfinished: dict[str, dict[str, Any]] = {}
    data = None
    for family in families:
        spec = JobSpec.model_validate(family_spec(base, family, trials_per_family, seed))
        objective = Objective(spec, data=data)
        data = objective.data
        study = create_study(spec, objective.direction, None, f"corpus-{task_id}-{family}")
        study.optimize(objective, n_trials=trials_per_family, catch=(Exception,),
                       gc_after_trial=False)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
                and t.value is not None]
        if not done:
            states = [t for t in study.trials if t.state.is_finished()]
            unfinished[family] = {"n_trials": len(states), "n_pruned": 0,
                                  "n_diverged": sum(t.state == optuna.trial.TrialState.PRUNED
                                                    for t in states),
                                  "n_failed": sum(t.state == optuna.trial.TrialState.FAIL
                                                  for t in states),
                                  "max_stop_epoch": max((len(t.intermediate_values)
                                                         for t in states), default=0),
                                  "best_intermediate_value": None}
            continue
        sign = 1.0 if study.direction.name == "MAXIMIZE" else -1.0
        best = max(done, key=lambda t: sign * float(t.value or 0.0))
        for i in range(confirm_seeds):
            study.enqueue_trial(best.params, user_attrs={
                ATTR_CONFIRM_OF: best.number, ATTR_SEED: seed + CONFIRM_SEED_OFFSET + i})
        study.optimize(objective, n_trials=confirm_seeds, catch=(Exception,),
                       gc_after_trial=False)
        for r in study_records(study):
            if r.state != "complete" or r.value is None:
                continue
            rows.append({"n": len(rows), "o": r.optimizer, "s": r.schedule, "p": r.params,
                         "v": r.value, "k": r.config_key(), "c": int(r.confirm_of is not None),
                         "seed": r.seed, "b": round(r.state_bytes_per_param, 3),
                         "t": round(r.seconds_per_epoch, 5)})
    return {"id": task_id, "spec": base, "metric": features.metric,
            "direction": features.direction,
            "features": {k: v for k, v in features.to_json().items()
                         if k not in ("fingerprint", "metric", "direction")},
            "trials": rows, "unfinished": unfinished, "no_skill": features.no_skill}


def annotate(path: Path) -> list[tuple[str, float | None]]:
    """Fill in `no_skill` for every task of the corpus file at `path` that lacks it: what a
    model that ignores its inputs scores on the task's validation set (`training.seed`'s split),
    from its data alone (no training: 6 s for the suite). Returns (task, value) for each task
    filled in; the file is rewritten only when one was."""
    from tuner.datasets import load_dataset, no_skill
    from tuner.spec import JobSpec

    try:
        raw = json.loads(path.read_text())
        parse(raw)  # a file this version cannot read is refused before anything is written
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError("file", f"{path} is not a reference corpus file this version reads: "
                                f"{type(exc).__name__}: {exc}") from exc
    filled = []
    for t in raw["tasks"]:
        if t.get("no_skill") is not None:
            continue
        spec = JobSpec.model_validate(t["spec"])
        ds = spec.task.dataset
        assert ds is not None
        t["no_skill"] = no_skill(load_dataset(ds.name, ds.params, spec.training.seed),
                                 t["metric"])
        filled.append((t["id"], t["no_skill"]))
    if filled:
        path.write_text(json.dumps(raw, separators=(",", ":")))
        _load.cache_clear()
    return filled


def build(out: Path, *, tasks: Iterable[str] | None = None, trials_per_family: int = 6,
          confirm_seeds: int = 3, processes: int = 1, families: Sequence[str] | None = None,
          progress: Callable[[str, float], None] | None = None) -> dict[str, Any]:
    """Run the suite (all tasks, or `tasks`) and write the corpus file."""
    from concurrent.futures import ProcessPoolExecutor

    names = list(SUITE if tasks is None else tasks)
    if not names:  # `--tasks ''` must not rebuild the whole suite (hours)
        raise SpecError("tasks", f"must name at least one corpus task; valid choices: "
                                 f"{choices(SUITE)}")
    unknown = [n for n in names if n not in SUITE]
    if unknown:
        raise UnknownName("tasks", "corpus task", unknown[0], SUITE)
    fams = list(families or FAMILIES)
    t0 = time.perf_counter()
    entries: dict[str, dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=max(1, processes)) as pool:
        futures = {n: pool.submit(run_task, n, SUITE[n], fams,
                                  trials_per_family=trials_per_family,
                                  confirm_seeds=confirm_seeds) for n in names}
        for n, fut in futures.items():
            entries[n] = fut.result()
            if progress is not None:
                progress(n, time.perf_counter() - t0)
    raw = {"format": FORMAT,
           "built": {"command": "tuner corpus build", "trials_per_family": trials_per_family,
                     "confirm_seeds": confirm_seeds, "families": fams,
                     "seconds": round(time.perf_counter() - t0, 1)},
           "tasks": [entries[n] for n in names]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(raw, separators=(",", ":")))
    _load.cache_clear()
    return raw
