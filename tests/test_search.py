"""The objective and the in-process search with real torch training and real Optuna."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import optuna
import pytest

from tuner.attrs import ATTR_SWEEP
from tuner.errors import SpecError
from tuner.search import create_study, run_search
from tuner.spec import JobSpec


def _spec(**kw: Any) -> JobSpec:
    base: dict[str, Any] = {"task": {"model": {"name": "mlp", "params": {"hidden": [32]}},
                                     "dataset": {"name": "digits"}},
                            "training": {"epochs": 3}, "budget": {"n_trials": 6}}
    for key, value in kw.items():
        base[key] = {**base.get(key, {}), **value}
    return JobSpec.model_validate(base)


def test_a_trial_runs_again_as_it_ran() -> None:
    """`prepare_rerun`: a search's trial (a lookahead over adam: a nested configuration) run
    again at its seed gives its values epoch by epoch, unpruned; what the job's space does not
    hold, or a job of another release's training code, is refused before any training."""
    from tuner.errors import TunerError
    from tuner.objective import Provenance
    from tuner.search import prepare_rerun
    from tuner.space import TrialConfig
    from tuner.spec import TRAINING_FORMAT

    spec = _spec(space={"optimizers": ["lookahead", "sgd"], "lookahead_bases": ["adam"]},
                 budget={"n_trials": 3}, search={"confirm_top_k": 0})
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the service's workers train (resources.cpus_per_trial)
    try:
        records = run_search(spec).records
    finally:
        torch.set_num_threads(before)
    rec = next(r for r in records if r.optimizer == "lookahead" and r.state == "complete")
    again = prepare_rerun(spec, TrialConfig(rec.optimizer, rec.schedule, rec.params),
                          rec.seed or 0, Provenance(training_format=TRAINING_FORMAT))
    here = again.run()
    assert torch.get_num_threads() == before  # the rerun's thread count is its own
    assert here.params == rec.params and here.seed == rec.seed
    assert [(s.step, s.value) for s in here.steps] == [(s.step, s.value) for s in rec.steps]
    with pytest.raises(SpecError, match=r"^trial: adamw with the constant schedule is not in "
                                        r"the job's space$"):
        prepare_rerun(spec, TrialConfig("adamw", "constant", {}), 0)
    with pytest.raises(TunerError, match=r"^the job ran the training code of another release "
                                         r"of the service \(training format 999; this one's is "
                                         r"\d+\): install the release the job ran"):
        prepare_rerun(spec, TrialConfig(rec.optimizer, rec.schedule, rec.params), 0,
                      Provenance(training_format=999))


def test_seeded_run_is_reproducible() -> None:
    spec = _spec(space={"optimizers": ["adam", "momentum"]}, budget={"n_trials": 6})
    a, b = (run_search(spec).records for _ in range(2))
    assert [(r.optimizer, r.params, r.state, r.value) for r in a] == \
           [(r.optimizer, r.params, r.state, r.value) for r in b]
    # The defaults sweep first, capped at a quarter of the 6 trials: one family, the better of
    # the two on the reference corpus, at its start learned there; then the sampler.
    from tuner import corpus

    (first,) = [s for s in corpus.sweep_starts(corpus.load())
                if s.optimizer in ("adam", "momentum")][:1]
    assert a[0].optimizer == first.optimizer and a[0].defaults_sweep
    assert a[0].schedule == first.schedule
    lr = f"{first.optimizer}.lr"
    assert a[0].params[lr] == pytest.approx(first.params[lr])
    assert not any(r.defaults_sweep for r in a[1:])


def test_sweep_starts_are_each_familys_best_configuration_over_the_corpus() -> None:
    """Each family's start is, of the configurations the corpus ran on all its tasks, the one
    with the best mean normalised score; it beats the family's literature defaults there."""
    from tuner import corpus
    from tuner.space import FAMILIES

    ref = corpus.load()
    assert ref is not None and corpus.sweep_starts(None) == []
    starts = corpus.sweep_starts(ref)
    assert sorted(s.optimizer for s in starts) == sorted(FAMILIES)
    assert [s.score for s in starts] == sorted((s.score for s in starts), reverse=True)
    # Recompute adam's from the raw trials: per task, 0 = its worst trial, 1 = its best.
    per_key: dict[str, float] = {}
    first: dict[str, int] = {}
    for task in ref.tasks:
        done = [t for t in task.trials if not t.confirmation]
        lo, hi = min(t.value for t in done), max(t.value for t in done)
        for t in done:
            if t.optimizer == "adam":
                score = (t.value - lo) / (hi - lo)
                per_key[t.config_key] = per_key.get(t.config_key, 0.0) + (
                    score if task.direction == "maximize" else 1 - score) / len(ref.tasks)
                first[t.config_key] = min(first.get(t.config_key, t.number), t.number)
    adam = next(s for s in starts if s.optimizer == "adam")
    assert adam.score == pytest.approx(max(per_key.values()))
    literature = per_key[min(first, key=first.__getitem__)]  # each family's search began there
    assert adam.score > literature + 0.1, (adam.score, literature)
    assert adam.params["adam.lr"] > 1e-3  # the literature default is too low for short budgets


def test_portfolio_starts_each_raise_the_best_found_so_far_over_the_corpus() -> None:
    """`sweep_start: portfolio`: one start per family, chosen greedily: the first is the corpus
    kind's first; each next is the configuration (of a family not yet used) that most raises the
    mean over the corpus's tasks of the best score so far, recomputed here from the raw trials."""
    from tuner import corpus
    from tuner.space import FAMILIES

    ref = corpus.load()
    assert ref is not None and corpus.sweep_starts(None, "portfolio") == []
    with pytest.raises(ValueError, match="unknown sweep start kind 'best'"):
        corpus.sweep_starts(ref, "best")
    folio = corpus.sweep_starts(ref, "portfolio")
    best = corpus.sweep_starts(ref, "corpus")
    assert sorted(s.optimizer for s in folio) == sorted(FAMILIES)
    assert folio[0] == corpus.Start(**{**best[0].__dict__, "cover": best[0].score})
    covers = [s.cover for s in folio]
    assert all(c is not None for c in covers) and covers == sorted(covers)  # type: ignore[type-var]
    # Per task, 0 = its worst trial, 1 = its best; a configuration missing on a task scores 0.
    scores: dict[str, dict[str, float]] = {}
    trials: dict[str, Any] = {}
    for task in ref.tasks:
        done = [t for t in task.trials if not t.confirmation]
        lo, hi = min(t.value for t in done), max(t.value for t in done)
        for t in done:
            x = (t.value - lo) / (hi - lo)
            scores.setdefault(t.config_key, {})[task.id] = \
                x if task.direction == "maximize" else 1 - x
            trials.setdefault(t.config_key, t)
    ids = [t.id for t in ref.tasks]

    def cover(keys: list[str]) -> float:
        return sum(max(scores[k].get(i, 0.0) for k in keys) for i in ids) / len(ids)

    def key_of(s: corpus.Start) -> str:
        return next(k for k, t in trials.items() if (t.optimizer, dict(t.params)) ==
                    (s.optimizer, s.params))

    chosen = [key_of(folio[0])]
    for start in folio[1:3]:  # while the gain is large: the greedy rule itself
        rivals = [k for k, t in trials.items() if t.optimizer not in
                  {trials[c].optimizer for c in chosen}]
        assert cover([*chosen, key_of(start)]) == pytest.approx(
            max(cover([*chosen, k]) for k in rivals))
        chosen.append(key_of(start))
        assert start.cover == pytest.approx(cover(chosen))
    # The second start is not the corpus kind's second: it covers what the first misses.
    assert folio[1].optimizer != best[1].optimizer and folio[1].cover > best[0].score + 0.01


def test_the_defaults_sweep_is_ordered_and_capped_and_says_what_it_leaves_out() -> None:
    from tuner import corpus
    from tuner.sampling import SearchSpace
    from tuner.search import sweep_plan
    from tuner.space import FAMILIES, TrialConfig

    order = corpus.defaults_order(corpus.load())
    assert sorted(order) == sorted(FAMILIES) and order != list(FAMILIES)
    assert corpus.defaults_order(None) == list(FAMILIES)
    # `sweep_start: literature`, the default space and budget: 14 families, 30 trials; the sweep
    # takes 7 (25%), the corpus's best defaults first, and names the 7 left to the sampler.
    literature = sweep_plan(JobSpec.model_validate({
        "task": {"model": {"name": "mlp"}, "dataset": {"name": "iris"}},
        "search": {"sweep_start": "literature"}}))
    assert (literature.cap, literature.families, literature.left_out, literature.starts) == (
        7, order[:7], order[7:], {})
    assert literature.notes()[0] == (
        f"defaults sweep, in this order (defaults measured on the reference corpus's built-in "
        f"tasks): {', '.join(order[:7])} at their literature defaults")
    # The default, `sweep_start: corpus`: ordered by the starts learned on the corpus, each
    # family at its start (Optuna's parameters of this space).
    plan = sweep_plan(JobSpec.model_validate({"task": {"model": {"name": "mlp"},
                                                       "dataset": {"name": "iris"}}}))
    learned = corpus.sweep_starts(corpus.load())
    order = [s.optimizer for s in learned]
    assert (plan.cap, plan.families, plan.left_out) == (7, order[:7], order[7:])
    assert set(plan.starts) == set(order[:7])
    space = SearchSpace(JobSpec.model_validate({"task": {"model": {"name": "mlp"},
                                                         "dataset": {"name": "iris"}}}).space)
    top = learned[0]
    assert plan.starts[top.optimizer] == space.optuna_params(
        TrialConfig(top.optimizer, top.schedule, top.params))
    notes = plan.notes()
    assert notes[0] == (f"defaults sweep, in this order (the reference corpus's built-in tasks): "
                        f"{', '.join(order[:7])} at the configuration that scored best over the "
                        f"reference corpus's tasks")
    assert "covers the defaults sweep of 7 of 14 families" in notes[1]
    assert notes[1].endswith("left to the sampler: " + ", ".join(order[7:]))
    # `sweep_start: portfolio`: the portfolio's order and starts, and the notes say so.
    folio = sweep_plan(JobSpec.model_validate({
        "task": {"model": {"name": "mlp"}, "dataset": {"name": "iris"}},
        "search": {"sweep_start": "portfolio"}}))
    chosen = corpus.sweep_starts(corpus.load(), "portfolio")
    assert folio.families == [s.optimizer for s in chosen][:7] != order[:7]
    second = chosen[1]
    assert folio.starts[second.optimizer] == space.optuna_params(
        TrialConfig(second.optimizer, second.schedule, second.params))
    assert folio.notes()[0].endswith("at configurations chosen together to cover the reference "
                                     "corpus's tasks")
    # A start the space cannot hold (its schedule is not searched) falls back to the family's
    # literature defaults, and the notes say which.
    constant = _spec(space={"optimizers": [top.optimizer], "schedules": ["constant"]},
                     search={"sweep_share": 1.0})
    assert top.schedule != "constant"
    fallback = sweep_plan(constant)
    assert top.optimizer not in fallback.starts
    assert fallback.notes()[0].endswith(f": {top.optimizer} at its literature defaults")
    # An order from the team's history comes first; the corpus orders the rest.
    mine = sweep_plan(_spec(space={"optimizers": ["sgd", "adam", "rmsprop"]},
                            search={"sweep_share": 1.0}), ["adam"], "this task's ranking")
    assert mine.families == ["adam", *[f for f in order if f in ("sgd", "rmsprop")]]
    assert "(this task's ranking)" in mine.notes()[0] and len(mine.notes()) == 1
    # Warm-start seeds come first and take their room: 6 trials, 1 reserved for confirmation,
    # 5 seeds: no sweep, and the notes say so.
    full = sweep_plan(_spec(space={"optimizers": ["sgd", "adam"]}), seeded=5)
    assert (full.families, full.left_out) == ([], [f for f in order if f in ("sgd", "adam")])
    assert full.notes()[0].startswith("no defaults sweep: the warm-start seeds fill")
    off = sweep_plan(_spec(search={"defaults_sweep": False}))
    assert (off.families, off.notes()) == ([], [])
    # The notes name the warm start's seeds, and the sweep's families whose start is one of
    # them (Optuna enqueues a configuration once): they said nothing of the seeds, and named
    # a sweep of 3 families that a warm start from the corpus had already run as seeds.
    warm = _spec(budget={"n_trials": 20}, search={"warm_start": "similar"})
    cold = sweep_plan(warm)
    first, second = cold.families[:2]
    other = {**cold.starts.get(first, {}), "optimizer": "sgd", "sgd.lr": 0.05}
    seeds = [cold.starts[first], cold.starts[second], other]
    plan = sweep_plan(warm, seeds=seeds)
    assert plan.repeated == [first, second] and plan.families[:2] == [first, second]
    notes = plan.notes()
    assert notes[0] == (f"warm start first (search.warm_start: similar, from this task's "
                        f"history or its nearest tasks, the reference corpus's included): the "
                        f"best known configuration of {first}, {second}, sgd"), notes
    assert notes[1].endswith(f"; {first}, {second} already ran as warm-start seeds at that "
                             f"configuration, so not again"), notes[1]
    assert sweep_plan(warm, seeded=3).notes()[0].startswith("defaults sweep")  # no seeds named
    # A 4-trial job over the whole space: one family at defaults, three sampled.
    small = run_search(_spec(training={"epochs": 1}, budget={"n_trials": 4}))
    assert [r.defaults_sweep for r in small.records] == [True, False, False, False]
    assert small.records[0].optimizer == order[0]
    assert "left to the sampler" in small.summary()["notes"][1]


def test_bf16_where_the_trials_run_on_the_cpu_is_said() -> None:
    """bf16 autocast applies on a GPU only: `tuner run` with precision bf16 on the CPU trained
    in fp32 without a word. The notes say it; on a GPU machine a `device: cpu` job says it."""
    import torch

    device = "cpu" if torch.cuda.is_available() else "auto"
    said = "training.precision bf16 applies on a GPU (autocast): these trials run on the CPU"
    bf16 = run_search(_spec(training={"epochs": 1, "precision": "bf16", "device": device},
                            budget={"n_trials": 1}))
    assert any(n.startswith(said) for n in bf16.notes), bf16.notes
    fp32 = run_search(_spec(training={"epochs": 1, "device": device}, budget={"n_trials": 1}))
    assert not any(n.startswith(said) for n in fp32.notes)


def test_a_wilcoxon_pruner_that_can_stop_nothing_at_the_budget_is_said() -> None:
    """`wilcoxon` takes the epochs as its test's instances: it can first stop a trial at epoch
    WILCOXON_FIRST_EPOCH (checked on Optuna's pruner itself: a curve worse than the best's at
    every epoch), so a job of 4 epochs or fewer prunes nothing, which its notes now say."""
    import optuna

    from tuner.search import PRUNER_FACTORIES, WILCOXON_FIRST_EPOCH, sweep_plan

    for epochs in (3, 6):
        study = optuna.create_study(direction="maximize",
                                    pruner=PRUNER_FACTORIES["wilcoxon"](epochs))
        study.enqueue_trial({"x": 0.9})
        study.enqueue_trial({"x": 0.1})
        stopped: list[int] = []

        def curve(trial: optuna.Trial, n: int = epochs, stopped: list[int] = stopped) -> float:
            x = trial.suggest_float("x", 0, 1)
            for step in range(1, n + 1):
                trial.report(x + 0.001 * step, step)
                if trial.should_prune():
                    stopped.append(step)
                    raise optuna.TrialPruned()
            return x

        study.optimize(curve, n_trials=2)
        assert stopped == ([] if epochs < WILCOXON_FIRST_EPOCH else [WILCOXON_FIRST_EPOCH])
    said = "search.pruner wilcoxon stops no trial of 4 epochs"
    four = sweep_plan(_spec(training={"epochs": 4}, search={"pruner": "wilcoxon"})).notes()
    assert any(n.startswith(said) for n in four), four
    five = sweep_plan(_spec(training={"epochs": 5}, search={"pruner": "wilcoxon"})).notes()
    hyper = sweep_plan(_spec(training={"epochs": 4})).notes()
    assert not any("search.pruner" in n for n in five + hyper)
    off = sweep_plan(_spec(training={"epochs": 2}, search={"pruner": "wilcoxon",
                                                           "defaults_sweep": False})).notes()
    assert len(off) == 1 and off[0].startswith("search.pruner wilcoxon stops no trial of 2")


def test_divergence_is_detected_and_recorded() -> None:
    spec = JobSpec.model_validate({
        "task": {"model": {"name": "linear"},
                 "dataset": {"name": "quadratic", "params": {"condition": 1000.0}}},
        "space": {"optimizers": ["sgd"], "schedules": ["constant"],
                  "overrides": {"sgd.lr": 1.0}},
        "training": {"epochs": 5}, "budget": {"n_trials": 1},
    })
    result = run_search(spec)
    (rec,) = result.records
    assert rec.state == "diverged" and rec.stop_reason == "diverged"
    assert rec.stop_step == 1 and rec.value is None and rec.epochs_run == 0
    # The epoch the divergence cut short is kept: its loss, no metric.
    (step,) = rec.steps
    assert step.step == 1 and step.value is None and (step.model_extra or {})["partial"] is True
    assert step.train_loss is None or step.train_loss > 1.0
    assert "exceeded" in rec.detail or "became" in rec.detail
    (trial,) = result.study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED  # data for the sampler, not a crash
    assert result.summary()["counts"] == {"complete": 0, "pruned": 0, "diverged": 1, "failed": 0}


@pytest.mark.parametrize("pruner", ["asha", "hyperband"])
def test_pruners_prune_and_record_history(pruner: str) -> None:
    spec = _spec(training={"epochs": 9}, budget={"n_trials": 24},
                 space={"optimizers": ["sgd", "adam", "adagrad", "adadelta"]},
                 search={"pruner": pruner, "sweep_pruning": "apart"})
    default = JobSpec.model_validate({"task": spec.task.model_dump()}).search
    assert (default.pruner, default.sweep_pruning) == ("hyperband", "pruner")
    inner = "SuccessiveHalvingPruner" if pruner == "asha" else "HyperbandPruner"
    plain = spec.model_copy(update={"search": spec.search.model_copy(
        update={"sweep_pruning": "pruner"})})
    assert type(create_study(plain, "maximize", None, "p").pruner).__name__ == inner
    made = create_study(spec, "maximize", None, "s").pruner
    assert type(made).__name__ == "FairSweepPruner" and type(made.inner).__name__ == inner
    records = run_search(spec).records
    # The defaults sweep (its first 4 trials) is judged apart: never stopped before a third
    # of the epochs, whatever bracket Hyperband would have put it in (with `pruner`, ASHA
    # stops sgd's and adagrad's sweep trials after one epoch here, Hyperband adagrad's).
    sweep = [r for r in records if r.defaults_sweep]
    assert len(sweep) == 4 and all(len(r.steps) >= 3 for r in sweep), \
        [(r.optimizer, len(r.steps)) for r in sweep]
    pruned = [r for r in records if r.state == "pruned"]
    assert pruned, [r.state for r in records]
    for r in pruned:
        assert r.stop_reason == "pruned" and 1 <= r.stop_step < 9
        assert [s.step for s in r.steps] == list(range(1, r.stop_step + 1))
        assert r.value == r.steps[-1].best_value
    done = [r for r in records if r.state == "complete"]
    assert all(len(r.steps) == 9 and r.seconds_per_epoch > 0 for r in done)
    assert all(r.state_bytes_per_param >= 0 and r.device == "cpu" for r in records)


def test_early_stopping_and_failed_trials_are_recorded() -> None:
    spec = _spec(training={"epochs": 30, "early_stopping_patience": 1},
                 space={"optimizers": ["sgd"], "schedules": ["constant"],
                        "overrides": {"sgd.lr": 1e-4}},
                 budget={"n_trials": 1}, search={"pruner": "none"})
    (rec,) = run_search(spec).records
    assert rec.state == "complete" and rec.stop_reason in ("early_stopped", "completed")
    # A trial that fails as it trains (its device refuses memory) is recorded failed, why said.
    bad = JobSpec.model_validate({"task": {"trainable": {"name": "memory_hungry"}},
                                  "space": {"optimizers": ["adam"]},
                                  "budget": {"n_trials": 2}, "training": {"epochs": 1}})
    recs = run_search(bad).records
    assert [r.state for r in recs] == ["failed", "failed"]
    assert "out of memory on cpu" in recs[0].detail, recs[0].detail
    # A model that does not fit the data is refused before any trial, on its field, as a
    # submit is (every trial failed on it).
    unfit = JobSpec.model_validate({"task": {"model": {"name": "cnn"},
                                             "dataset": {"name": "iris"}},
                                    "budget": {"n_trials": 2}, "training": {"epochs": 1}})
    with pytest.raises(SpecError, match=r"^task\.model: cnn needs image-shaped input"):
        run_search(unfit)


def test_the_timeout_holds_for_the_confirmation_race_too() -> None:
    """`budget.timeout_s` is the whole job's, as the dispatcher holds it: no trial starts after
    it, a confirmation run included (`tuner run --timeout` ran the race's rounds past it)."""
    spec = _spec(training={"epochs": 1}, budget={"n_trials": 8, "timeout_s": 0.01},
                 space={"optimizers": ["adam"], "schedules": ["constant"]})
    recs = run_search(spec).records
    # A trial of one epoch can end within the 0.01 s (9 ms under the full suite), so a second
    # search trial may start; no confirmation run does.
    assert 1 <= len(recs) <= 2 and all(r.confirm_of is None for r in recs), \
        [(r.number, r.confirm_of) for r in recs]
    # without a timeout the same job confirms its leader (so the race was there to be cut)
    full = run_search(spec.model_copy(update={"budget": spec.budget.model_copy(
        update={"timeout_s": None})})).records
    assert any(r.confirm_of is not None for r in full), [(r.number, r.confirm_of) for r in full]


@pytest.mark.parametrize("sampler", ["random", "cmaes", "gp", "qmc"])
def test_other_samplers_run(sampler: str) -> None:
    spec = _spec(search={"sampler": sampler, "pruner": "median", "defaults_sweep": False},
                 space={"optimizers": ["adam", "rmsprop"]}, budget={"n_trials": 3},
                 training={"epochs": 2})
    assert len(run_search(spec).records) == 3


def test_cli_run_json_finds_good_digits_config() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "run", "--model", "mlp", "--dataset", "digits",
         "--trials", "16", "--epochs", "8", "--seed", "0", "--json"],
        capture_output=True, text=True, check=True, timeout=600)
    data = json.loads(proc.stdout)
    assert data["best"]["value"] >= 0.95, data["best"]
    assert set(data["best"]) == {"number", "optimizer", "schedule", "params", "value",
                                 "baseline"}
    # 12 search trials, then the confirmation race (at most 25% of the budget: 4 runs) re-runs
    # the leading families' best configurations with new seeds, unless the leader is separated
    # sooner.
    search = [t for t in data["trials"] if t["confirm_of"] is None]
    confirms = [t for t in data["trials"] if t["confirm_of"] is not None]
    assert len(search) == 12 and 1 <= len(confirms) <= 4, confirms
    assert {t["seed"] for t in confirms} <= {1000, 1001, 1002}
    # Never pruned (a new seed may still make a run diverge: recorded as such).
    assert all(t["state"] in ("complete", "diverged") for t in confirms), confirms
    t = data["trials"][0]
    assert {"number", "state", "stop_reason", "optimizer", "schedule", "params", "value",
            "steps"} <= set(t)
    # The defaults sweep: a quarter of 16 trials, the corpus's four best families at its starts.
    from tuner import corpus

    sweep = [s.optimizer for s in corpus.sweep_starts(corpus.load())][:4]
    assert [t["optimizer"] for t in data["trials"][:4]] == sweep
    assert all(t["defaults_sweep"] for t in data["trials"][:4])
    assert {e["optimizer"] for e in data["by_optimizer"]} >= set(sweep)
    assert "left to the sampler" in data["notes"][1]
    # the race in words at the end, as a service job's confirmation note
    assert data["notes"][-1].startswith(f"confirmation: {len(confirms)} runs ("), data["notes"]
    assert "trials" in proc.stderr  # progress bar goes to stderr
    assert "Warning" not in proc.stderr, proc.stderr  # Optuna's experimental notice is not shown
    # The answer judges the runs, not the luckiest trial: the confirmed families' best
    # configurations count their confirmation runs, and a winner is named only outside the noise.
    answer = data["answer"]
    assert answer["verdict"] in ("winner", "tied", "not_separated", "one_family")
    assert answer["ranking"][0]["optimizer"] == answer["leaders"][0]
    assert (answer["verdict"] == "winner") == (len(answer["leaders"]) == 1)
    # (a second look, a confirmation run of a pruned trial, is its family's one complete run)
    complete = {t["number"] for t in data["trials"] if t["state"] == "complete"}
    confirmed = {t["optimizer"] for t in confirms if t["state"] == "complete"
                 and t["confirm_of"] in complete}
    runs = {e["optimizer"]: e["runs"] for e in answer["ranking"]}
    assert confirmed and all(runs[f] >= 2 for f in confirmed), (confirmed, runs)
    assert answer["summary"].startswith(tuple(answer["leaders"]))


def test_cli_run_on_several_splits_reads_the_answer_across_them() -> None:
    """`tuner run --splits 2`: two searches, on training.seed 0 and 1, each its own data split;
    the answer is split 0's read with split 1's, as the service reads a task searched on
    several splits (each ranked on its own), its baseline held to start_from's family on both,
    and `tuner.recipe` trains with start_from."""
    from tuner.recipe import recipe

    args = [sys.executable, "-m", "cli", "run", "--model", "linear", "--dataset", "wine",
            "--trials", "8", "--epochs", "3", "--splits", "2", "--baseline"]
    proc = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [s["answer"]["budget"]["training_seed"] for s in data["splits"]] == [0, 1]
    assert all(len(s["trials"]) == 8 for s in data["splits"])
    # Each split's own answer does not tell the run to search other splits: it did.
    assert not any("measured on one data split" in s["answer"]["summary"]
                   for s in data["splits"])
    a = data["answer"]
    assert a["budget"]["training_seed"] == 0 and a["splits"]["training_seeds"] == [0, 1]
    assert [x["leaders"] for x in a["splits"]["per_split"]] == [
        s["answer"]["leaders"] for s in data["splits"]]  # each split ranked on its own
    assert "; across this run's 2 data splits at this budget (training.seed 0, this answer's, " \
           "and 1; each ranked on its own, never pooled): " in a["summary"], a["summary"]
    start = a["start_from"]
    assert start["optimizer"] in a["leaders"] and recipe(a).family == start["optimizer"]
    b = a["baseline"]
    assert b["verdict"] != "not_run" and b["splits"]["optimizer"] == start["optimizer"]
    assert b["splits"]["run_on"] == [0, 1] or "not_ranked" in {
        x["verdict"] for x in b["splits"]["per_split"]}, b
    shown = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False,
                           env={**os.environ, "COLUMNS": "300"})
    assert shown.returncode == 0, shown.stderr
    assert "data split 2 of 2 (training.seed 1)" in shown.stderr
    text = " ".join(shown.stdout.split())
    assert "data split training.seed 1" in text and "by data split (each ranked on its own): " \
        "training.seed 0 (this answer): " in text and f"start from: {start['optimizer']}" in text
    assert "in short: " in text and " data splits where both ran" in text, text


def test_ctrl_c_stops_a_local_run_and_judges_the_trials_that_ended() -> None:
    """Ctrl-C on `tuner run` printed a KeyboardInterrupt traceback and nothing the search had
    found. It stops the search, drops the trial it cut short (Optuna failed it for the
    interrupt, not for its configuration), prints the rest as any search's (here as JSON,
    `interrupted: true`) and exits 130."""
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "run", "--model", "mlp", "--dataset", "digits",
         "--trials", "20", "--epochs", "40", "--json"], text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    said = []
    for line in proc.stderr:  # the notes come once the data is loaded, just before trial 0
        said.append(line)
        if "left to the sampler" in line:
            break
    time.sleep(4)  # in a trial (40 epochs take longer than that)
    proc.send_signal(signal.SIGINT)
    out, rest = proc.communicate(timeout=120)
    errs = "".join(said) + rest
    assert proc.returncode == 130 and "Traceback" not in errs, errs
    assert "stopped by Ctrl-C: what follows is judged on the " in errs, errs
    data = json.loads(out)
    assert data["interrupted"] is True and len(data["trials"]) < 20
    assert not any(t["state"] == "failed" for t in data["trials"]), data["trials"]
    assert data["counts"]["failed"] == 0 and "answer" in data


def test_only_tuner_run_turns_a_ctrl_c_into_a_partial_search() -> None:
    """`stop_on_interrupt` is `tuner run`'s: a benchmark's search stopped by Ctrl-C raises, as
    before, rather than return its first trials to be scored as a whole search."""
    spec = _spec(space={"optimizers": ["adam"]}, budget={"n_trials": 3}, training={"epochs": 1},
                 search={"defaults_sweep": False, "confirm_top_k": 0})

    def interrupt(_: Any) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(spec, on_trial=interrupt)
    cut = run_search(spec, on_trial=interrupt, stop_on_interrupt=True)
    assert cut.interrupted and [r.number for r in cut.records] == [0]
    assert cut.summary()["interrupted"] is True


def test_cli_rejects_bad_input_with_choices() -> None:
    proc = subprocess.run([sys.executable, "-m", "cli", "run", "--optimizers", "adamz",
                           "--trials", "1"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "unknown optimizer family 'adamz'" in proc.stderr and "nesterov" in proc.stderr
    # The budget's checks are the service's: more parallel trials than trials is refused.
    proc = subprocess.run([sys.executable, "-m", "cli", "run", "--trials", "2",
                           "--parallelism", "3"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "budget.parallelism: 3 concurrent trials for only 2 trials; " \
        "use at most 2" in proc.stderr, proc.stderr
    assert proc.stderr.count("3 concurrent trials") == 1  # said once
    # A metric that needs the data to be refused: refused before the notes and the progress bar.
    proc = subprocess.run([sys.executable, "-m", "cli", "run", "--dataset", "digits",
                           "--metric", "val_r2", "--trials", "1"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and proc.stderr.startswith(
        "error: task.metric: 'val_r2' does not apply to a classification dataset; valid "
        "choices: val_accuracy, val_loss"), proc.stderr


def test_sampler_and_pruner_tables_match_the_spec_names() -> None:
    from tuner.search import PRUNER_FACTORIES, SAMPLER_FACTORIES, make_pruner, make_sampler
    from tuner.spec import PRUNERS, SAMPLERS

    assert set(SAMPLER_FACTORIES) == set(SAMPLERS) and set(PRUNER_FACTORIES) == set(PRUNERS)
    for name in SAMPLERS:
        assert make_sampler(name, 0) is not None
    for name in PRUNERS:
        assert make_pruner(name, 5) is not None
    with pytest.raises(SpecError, match="unknown pruner 'bohb'; valid choices: asha"):
        make_pruner("bohb", 5)
    with pytest.raises(SpecError, match="unknown sweep pruning 'fair'; valid choices: apart"):
        make_pruner("asha", 5, "fair")


def test_stream_loader_trains_like_the_memory_path() -> None:
    """`training.loader: stream` (a DataLoader, shuffled from the seed and the epoch) learns the
    task as the in-memory path does, and runs the same on every call."""
    base = {"task": {"model": {"name": "mlp"}, "dataset": {"name": "digits"}},
            "space": {"optimizers": ["adam"], "schedules": ["constant"]},
            "training": {"epochs": 3}, "budget": {"n_trials": 1},
            "search": {"confirm_top_k": 0}}
    values = {}
    for loader in ("memory", "stream", "stream"):
        spec = JobSpec.model_validate({**base, "training": {"epochs": 3, "loader": loader}})
        (rec,) = run_search(spec).records
        assert rec.state == "complete" and rec.value is not None and rec.value > 0.8
        values.setdefault(loader, []).append(rec.value)
    assert values["stream"][0] == values["stream"][1]  # seeded: the same order every run


def test_a_trial_lost_before_storing_its_configuration_keeps_what_optuna_sampled() -> None:
    """A worker killed between sampling and storing the configuration leaves only Optuna's
    parameters (`adam.one_minus_beta1`, ...): the record maps them back to public names."""
    from tuner.results import trial_record
    from tuner.sampling import SearchSpace

    space = SearchSpace(_spec().space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    configs = []
    for _ in range(8):
        trial = study.ask()
        configs.append(space.sample(trial))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    records = [trial_record(t) for t in study.get_trials(deepcopy=False)]
    assert any(any(k.endswith(("beta1", "momentum", "rho", "alpha")) for k in c.params)
               for c in configs)  # the mapping of 1 - x is exercised
    for c, r in zip(configs, records, strict=True):
        assert (r.state, r.optimizer, r.schedule) == ("failed", c.optimizer, c.schedule)
        assert r.params == pytest.approx(c.params)
        assert "left no record" in r.detail


def test_an_enqueued_trial_failed_before_it_started_keeps_its_configuration() -> None:
    """A cancelled job fails its enqueued trials that never started (the defaults sweep's): the
    job page listed them with no family; the record reads what they were enqueued with."""
    from tuner.results import trial_record

    study = optuna.create_study()
    study.enqueue_trial({"optimizer": "nadam", "schedule": "step", "nadam.lr": 0.02,
                         "nadam.one_minus_beta1": 0.1})
    (waiting,) = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    study._storage.set_trial_state_values(waiting._trial_id, optuna.trial.TrialState.FAIL)
    r = trial_record(study._storage.get_trial(waiting._trial_id))
    assert (r.state, r.optimizer, r.schedule) == ("failed", "nadam", "step")
    assert r.params == pytest.approx({"nadam.lr": 0.02, "nadam.beta1": 0.9})


def _sweep_study(values: dict[int, list[float]], sweep: set[int]) -> optuna.Study:
    """A real in-memory study whose trial `n` reported `values[n]` at epochs 1, 2, ...; the
    trials in `sweep` carry the defaults sweep's mark."""
    study = optuna.create_study(direction="maximize")
    for n, curve in sorted(values.items()):
        trial = study.ask()
        if n in sweep:
            trial.set_user_attr(ATTR_SWEEP, True)
        for step, v in enumerate(curve, 1):
            trial.report(v, step)
        study.tell(trial, curve[-1])
    return study


def test_sweep_trials_are_judged_against_each_other_at_the_same_epoch_after_a_warmup() -> None:
    from tuner.search import FairSweepPruner, sweep_should_prune

    # Trials 0 and 1 are sweep trials; 2 is not (a strong sampled trial must not count).
    study = _sweep_study({0: [0.5, 0.7, 0.9], 1: [0.3, 0.6, 0.8], 2: [0.99, 0.99, 0.99]},
                         sweep={0, 1})
    slow = study.ask()
    slow.set_user_attr(ATTR_SWEEP, True)

    def judged(trial: optuna.Trial, step: int, value: float, warmup: int = 3) -> bool:
        trial.report(value, step)
        return sweep_should_prune(study, study.get_trials(deepcopy=False)[trial.number],
                                  warmup=warmup)

    # Far behind at epochs 1 and 2, but before the warm-up a sweep trial is never stopped;
    # at epoch 3 it is compared with the median of the sweep's 0.9 and 0.8 only, not with 0.99.
    assert [judged(slow, 1, 0.1), judged(slow, 2, 0.2), judged(slow, 3, 0.875)] == \
        [False, False, False]
    # Epoch 4: no two other sweep trials reached it, so there is nothing to compare with.
    assert not judged(slow, 4, 0.875)
    study.tell(slow, 0.875)
    behind = study.ask()
    behind.set_user_attr("defaults_sweep", True)
    for step, v in enumerate([0.2, 0.5, 0.6], 1):
        behind.report(v, step)
    frozen = study.get_trials(deepcopy=False)[-1]
    assert sweep_should_prune(study, frozen, warmup=3)  # 0.6 < median(0.9, 0.8, 0.85)
    pruner = FairSweepPruner(optuna.pruners.ThresholdPruner(lower=0.95), epochs=9)
    assert pruner.warmup == 3 and pruner.prune(study, frozen)
    # A trial outside the sweep goes to the inner pruner: 0.6 is under its threshold.
    sampled = study.ask()
    sampled.report(0.6, 1)
    assert pruner.prune(study, study.get_trials(deepcopy=False)[-1])
    assert not pruner.prune(study, study.get_trials(deepcopy=False)[2])  # 0.99, sampled


def test_a_configuration_the_same_job_ran_with_this_seed_runs_with_another() -> None:
    """Within one job as well: a configuration drawn (or enqueued) again, a warm-start seed that
    is also a sweep start, say, would repeat a run; it runs with a new seed instead."""
    from tuner.objective import REPEAT_SEED_STRIDE, Objective
    from tuner.results import study_records

    spec = _spec(space={"optimizers": ["adam"]}, budget={"n_trials": 3},
                 search={"pruner": "none", "confirm_top_k": 0, "defaults_sweep": False})
    objective = Objective(spec)
    study = create_study(spec, objective.direction, None, "twice")
    study.optimize(objective, n_trials=1)
    study.enqueue_trial(study.trials[0].params)
    study.enqueue_trial(study.trials[0].params)
    study.optimize(objective, n_trials=2)
    runs = sorted(study_records(study), key=lambda r: r.number)
    assert len({r.config_key() for r in runs}) == 1  # one configuration, three times
    assert [r.seed for r in runs] == [0, REPEAT_SEED_STRIDE, 2 * REPEAT_SEED_STRIDE]
    assert len({r.value for r in runs}) == 3  # three measurements, not one run three times


def test_a_configuration_another_job_ran_with_this_seed_runs_with_another() -> None:
    """A second job on a task starts its sweep at the same configurations, and its sampler from
    the same seed: without STUDY_SEEDS_USED it would repeat the first job's runs exactly."""
    from tuner.attrs import STUDY_SEEDS_USED
    from tuner.objective import REPEAT_SEED_STRIDE, Objective, fresh_seed
    from tuner.results import study_records

    assert fresh_seed(0, [0, REPEAT_SEED_STRIDE]) == 2 * REPEAT_SEED_STRIDE
    assert fresh_seed(1000, [0]) == 1000
    spec = _spec(space={"optimizers": ["adam", "momentum"]}, budget={"n_trials": 3},
                 search={"pruner": "none", "confirm_top_k": 0})
    earlier = sorted(run_search(spec).records, key=lambda r: r.number)
    assert {r.seed for r in earlier} == {0}
    key = earlier[0].config_key()
    assert key is not None
    objective = Objective(spec)
    study = create_study(spec, objective.direction, None, "again",
                         user_attrs={STUDY_SEEDS_USED: {key: [0]}})
    study.optimize(objective, n_trials=3)
    now = sorted(study_records(study), key=lambda r: r.number)
    assert [r.config_key() for r in now] == [r.config_key() for r in earlier]  # the same path
    assert now[0].seed == REPEAT_SEED_STRIDE  # ... but that run is a new seed, not a repeat
    assert [r.seed for r in now[1:]] == [0, 0]  # configurations not run before keep theirs


def test_search_baseline_runs_the_untuned_default_first_and_never_prunes_it() -> None:
    """search.baseline: AdamW at its defaults with cosine is the job's first trial, run to the
    end under a pruner that stops every trial it is asked about, and the answer compares its
    leader with it; a space that cannot run it as it is refuses the spec at submit."""
    from optuna.pruners import BasePruner

    from tuner.objective import Objective
    from tuner.results import answer, study_records
    from tuner.search import create_study, sweep_plan
    from tuner.space import baseline_keys, is_baseline
    from tuner.tasks import check_budget

    class Always(BasePruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            return True

    spec = _spec(space={"optimizers": ["adamw", "adam"]}, budget={"n_trials": 3},
                 search={"baseline": True, "confirm_top_k": 0})
    assert sweep_plan(spec).notes()[0].startswith("baseline first: AdamW at lr 1e-3 with cosine")
    objective = Objective(spec)
    study = create_study(spec, objective.direction, None, "baseline")
    study.pruner = Always()
    study.optimize(objective, n_trials=3)
    runs = sorted(study_records(study), key=lambda r: r.number)
    assert is_baseline(runs[0].optimizer, runs[0].schedule, runs[0].params), runs[0]
    assert runs[0].config_key() in baseline_keys()  # what the store looks its runs up by
    assert (runs[0].state, runs[0].stop_step) == ("complete", 3)
    assert [(r.state, r.stop_step) for r in runs[1:]] == [("pruned", 1), ("pruned", 1)]
    said = answer(runs, objective.direction)["baseline"]
    assert said["verdict"] == "is_leader", said  # the one complete trial
    # the job's best run per family says it is the baseline's, in the table `tuner run`,
    # `tuner status` and `tuner submit --wait` print
    from rich.console import Console

    from cli.render import optimizer_table
    from tuner.results import best_per_family

    families = best_per_family(runs, objective.direction)
    assert [(e["optimizer"], bool(e["best"] and e["best"]["baseline"])) for e in families] \
        == [("adamw", True), ("adam", False)]
    console = Console(width=120, record=True)
    console.print(optimizer_table("t", families))
    assert "adamw (baseline)" in console.export_text() and "adam (baseline)" not in \
        console.export_text()
    for space, words in [({"optimizers": ["adam"]}, "needs adamw in space.optimizers"),
                         ({"schedules": ["constant"]}, "cosine in space.schedules"),
                         ({"overrides": {"adamw.lr": {"low": 1e-2, "high": 1e-1}}},
                          "leave out or pin away its defaults"),
                         ({"overrides": {"adamw.weight_decay": 0.1}},
                          "leave out or pin away its defaults")]:
        with pytest.raises(SpecError, match=words):
            check_budget(_spec(space=space, search={"baseline": True}))


def test_search_baseline_runs_over_seeds_of_its_own() -> None:
    """search.baseline_runs: the baseline runs that often before the search, each at a seed
    of its own, never pruned, and the answer judges it by their spread; more runs than the
    search has trials, or the runs without the baseline, are refused."""
    from tuner.objective import Objective
    from tuner.results import answer, study_records
    from tuner.search import (
        BASELINE_SEED_OFFSET,
        create_study,
        default_study_name,
        sweep_plan,
    )
    from tuner.space import is_baseline
    from tuner.tasks import check_budget

    spec = _spec(space={"optimizers": ["adamw", "adam"]}, budget={"n_trials": 5},
                 search={"baseline": True, "baseline_runs": 3, "confirm_top_k": 0,
                         "pruner": "none"})
    check_budget(spec)
    assert sweep_plan(spec).notes()[0].startswith(
        "baseline first: AdamW at lr 1e-3 with cosine decay (its defaults, no tuning), run to the "
        "end (never pruned) over 3 seeds (search.baseline_runs)")
    assert sweep_plan(spec).cap == 1  # 5 trials less 3 baseline runs: 1 sweep trial, 1 sampled
    objective = Objective(spec)
    study = create_study(spec, objective.direction, None, "baseline-runs")
    study.optimize(objective, n_trials=5)
    runs = sorted(study_records(study), key=lambda r: r.number)
    assert all(is_baseline(r.optimizer, r.schedule, r.params) for r in runs[:3]), runs[:3]
    assert not any(is_baseline(r.optimizer, r.schedule, r.params) for r in runs[3:])
    seed = spec.training.seed
    assert [r.seed for r in runs[:3]] == [seed, seed + BASELINE_SEED_OFFSET + 1,
                                          seed + BASELINE_SEED_OFFSET + 2]
    assert all(r.state == "complete" for r in runs[:3])
    said = answer(runs, objective.direction)["baseline"]
    assert said["expected"]["n"] == 3, said
    # One run, the default, leaves the study's name as it was before the setting existed.
    one = _spec(search={"baseline": True})
    assert default_study_name(one) == default_study_name(
        _spec(search={"baseline": True, "baseline_runs": 1}))
    assert default_study_name(spec) != default_study_name(
        _spec(space={"optimizers": ["adamw", "adam"]}, budget={"n_trials": 5},
              search={"baseline": True, "confirm_top_k": 0, "pruner": "none"}))
    over = _spec(budget={"n_trials": 4}, search={"baseline": True, "baseline_runs": 5})
    # Made without the submit's check, the study still holds no more than the search's trials.
    assert len(create_study(over, "maximize", None, "over").get_trials()) == 3
    with pytest.raises(SpecError, match=r"search.baseline_runs: 5 runs of the baseline do not "
                                        r"fit in the search's 3 trials"):
        check_budget(_spec(budget={"n_trials": 4}, search={"baseline": True,
                                                            "baseline_runs": 5}))
    # baseline_runs alone asks for the baseline (as --baseline-runs does); beside an explicit
    # `baseline: false` it is refused
    assert _spec(search={"baseline_runs": 3}).search.baseline is True
    assert _spec(search={"baseline_runs": 1}).search.baseline is False
    with pytest.raises(ValueError, match=r"baseline_runs\n.*needs search.baseline: true"):
        _spec(search={"baseline": False, "baseline_runs": 3})
