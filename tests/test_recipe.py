"""The answer in your own training code (`tuner.recipe`): the optimizer and schedule it builds
are those the trials ran with."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tuner.optimizers import lr_target
from tuner.recipe import Recipe, recipe
from tuner.schedules import current_lr
from tuner.search import run_search
from tuner.space import FAMILIES, SCHEDULES
from tuner.spec import JobSpec
from tuner.tasks import inspect_task


def _search(optimizers: list[str], schedules: list[str], n_trials: int = 2) -> Any:
    spec = JobSpec.model_validate({
        "task": {"model": {"name": "mlp", "params": {"hidden": [8]}}, "dataset": {"name": "iris"}},
        "space": {"optimizers": optimizers, "schedules": schedules},
        "training": {"epochs": 4, "batch_size": 16},
        "search": {"pruner": "none", "confirm_top_k": 0}, "budget": {"n_trials": n_trials}})
    return spec, run_search(spec)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_a_recipe_replays_the_learning_rate_its_trial_trained_with(schedule: str) -> None:
    """Built from `tuner run --json`'s answer and stepped as a training loop steps it, the
    recipe's schedule gives the learning rate the answer's trial recorded at every epoch's end
    (warmup, per-batch stepping, the metric reduce-on-plateau reads, the answer's budget)."""
    spec, result = _search(["adamw"], [schedule])
    answer = result.summary()["answer"]
    r = recipe(answer)
    assert (r.family, r.schedule_name, r.epochs, r.batch_size, r.direction) == (
        "adamw", schedule, 4, 16, "maximize")
    (trial,) = [t for t in result.records if t.params == r.params and t.state == "complete"]
    steps_per_epoch = -(-inspect_task(spec).n_train // 16)
    lrs = replayed_lrs(r, steps_per_epoch, [s.value for s in trial.steps])
    assert lrs == pytest.approx([s.lr for s in trial.steps], rel=1e-9)
    assert len(set(lrs)) > 1 or schedule in ("constant", "plateau")


def replayed_lrs(r: Recipe, steps_per_epoch: int, values: list[float]) -> list[float]:
    """The learning rate at each epoch's end, the recipe stepped as a training loop steps it
    (`values`: the metric each epoch reported)."""
    weight = torch.nn.Parameter(torch.zeros(3))
    opt = r.optimizer([weight])
    sched = r.schedule(opt, steps_per_epoch=steps_per_epoch)
    lrs = []
    for value in values:
        for _ in range(steps_per_epoch):
            weight.grad = torch.ones(3)
            opt.step()
            sched.after_batch()
        sched.after_epoch(value)
        lrs.append(current_lr(lr_target(opt)))
    return lrs


def test_a_recipe_builds_each_family_with_its_parameters() -> None:
    """Every family the ranking names builds as its trial did: the class, and the learning rate
    and decay rates it was given (Lookahead: its base optimizer's)."""
    families = sorted(FAMILIES)
    _, result = _search(families, ["constant"], n_trials=len(families))
    answer = result.summary()["answer"]
    ranked = [e["optimizer"] for e in answer["ranking"]]
    assert ranked, answer["summary"]
    for family in ranked:
        r = recipe(answer, family)
        assert r.family == family
        opt = r.optimizer([torch.nn.Parameter(torch.zeros(2))])
        group = lr_target(opt).param_groups[0]
        lr_key = next(k for k in r.params if k.endswith(".lr"))
        assert group["lr"] == pytest.approx(r.params[lr_key]), (family, r.params)
        if family == "lookahead":
            assert type(opt).__name__ == "Lookahead"
        if family == "proximal":
            assert type(opt).__name__ == "ProximalSGD"
    with pytest.raises(ValueError, match=r"family: 'lion' is not ranked in this answer; valid "
                                         r"choices: "):
        recipe(answer, "lion")


def test_a_transfer_answers_start_keeps_its_batch_size_note() -> None:
    """A service answer's `start_from` comes first: for a transfer answer, its learning rate
    moved to the task's batch size, and the recipe says so."""
    start = {"optimizer": "sgd", "schedule": "cosine", "params": {"sgd.lr": 0.2},
             "lr_scaling": "learning rate x 2: tuned at batch size 32, moved to 64"}
    answer = {"method": "transfer", "direction": "minimize", "start_from": start,
              "ranking": [{"optimizer": "sgd", "schedule": "cosine", "params": {"sgd.lr": 0.1}}],
              "budget": {"epochs": 5, "batch_size": 64}}
    r = recipe(answer)
    assert (r.params, r.note, r.direction, r.epochs) == ({"sgd.lr": 0.2}, start["lr_scaling"],
                                                         "minimize", 5)
    assert recipe(answer, "sgd").params == {"sgd.lr": 0.1}  # the ranking's, as measured
    with pytest.raises(ValueError, match="epochs: the answer names no training budget"):
        recipe({**answer, "budget": None}).schedule(
            torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), steps_per_epoch=3)


def test_a_recipe_says_which_of_the_teams_tasks_of_those_names_it_is_for() -> None:
    """Asked by names (`recommend(model="mlp", dataset="file")`), the answer is about the task
    with the team's most recent job, the others in `other_tasks`: with two CSVs, the recipe of
    whichever ran last was given and nothing said. Now its note says which task it is for and
    which it is not (beside a transfer's learning-rate note)."""
    def task(i: int, path: str) -> dict[str, Any]:
        return {"id": i, "model": {"name": "mlp", "params": {"hidden": [64]}},
                "dataset": {"name": "file", "params": {"path": path}}}

    answer = {"direction": "minimize", "budget": {"epochs": 15, "batch_size": 64},
              "ranking": [{"optimizer": "nadam", "schedule": "step", "params": {"nadam.lr": 0.02}}],
              "tasks": [task(1, "houses.csv")], "other_tasks": [task(2, "houses_small.csv")]}
    said = ('measured on task 1 (hidden=[64] path="houses.csv"), the task of this model and '
            'dataset with the team\'s most recent job; not on task 2 (hidden=[64] '
            'path="houses_small.csv"): recommend(task=<id>) for another')
    assert recipe(answer).note == said
    assert recipe({**answer, "other_tasks": []}).note is None  # one task of those names
    moved = {"optimizer": "nadam", "schedule": "step", "params": {"nadam.lr": 0.04},
             "lr_scaling": "learning rate x 2"}
    assert recipe({**answer, "start_from": moved}).note == f"learning rate x 2; {said}"
    # the same file rewritten: told apart by its contents' digest
    rewritten = {**task(3, "houses.csv"), "data_digest": "bfacf2b3a216e179"}
    assert "; not on task 3 (hidden=[64] path=\"houses.csv\" data bfacf2b3a216e179): " in \
        recipe({**answer, "other_tasks": [rewritten]}).note


def test_a_recipe_from_an_answer_that_learned_nothing_says_so() -> None:
    """The answer's best family did no better than predicting the most common class (a table
    whose label is 93% one class): the recipe trains with that configuration all the same,
    and its note says what the answer found; an answer clear of it adds nothing."""
    clause = ("the best family, momentum, at 0.93, does no better than predicting the training "
              "set's most common class for every example (0.93 on this validation set): no "
              "family is shown to have learned anything from the inputs")
    answer = {"direction": "maximize", "budget": {"epochs": 8, "batch_size": 64},
              "ranking": [{"optimizer": "momentum", "schedule": "constant",
                           "params": {"momentum.lr": 0.02, "momentum.momentum": 0.9}}],
              "no_skill": {"value": 0.93, "verdict": "no_better", "clause": clause}}
    assert recipe(answer).note == clause
    assert recipe({**answer, "no_skill": {"value": 0.5, "verdict": "above",
                                          "clause": ""}}).note is None
    assert recipe({**answer, "no_skill": None}).note is None  # not known


def test_a_recipe_of_a_family_ranked_on_the_untuned_baseline_alone_says_so() -> None:
    """adamw's only configuration run to the end was the baseline's (its tuned trials pruned):
    a recipe of it trains with AdamW's defaults, and says that is what it is."""
    from tuner.space import baseline_values

    answer = {"direction": "maximize", "budget": {"epochs": 10, "batch_size": 64},
              "baseline_only": ["adamw"],
              "ranking": [{"optimizer": "lookahead", "schedule": "step",
                           "params": {"lookahead.base": "adam", "lookahead.adam.lr": 0.01}},
                          {"optimizer": "adamw", "schedule": "cosine",
                           "params": baseline_values()}]}
    r = recipe(answer, family="adamw")
    assert (r.family, r.schedule_name, r.note) == (
        "adamw", "cosine", "adamw's configuration here is the untuned baseline (its defaults): "
        "no tuned adamw configuration ran to the end")
    assert recipe(answer).note is None  # lookahead, tuned
    # a transferred answer's configuration from a task where adamw ran only the baseline: its
    # ranking entry's evidence says so, and so does the recipe
    moved = {"direction": "maximize", "budget": {"epochs": 20, "batch_size": 64},
             "ranking": [{**answer["ranking"][1], "evidence": {"baseline_only": True}}]}
    assert recipe(moved).note == r.note and recipe({**moved, "ranking": [
        {**moved["ranking"][0], "evidence": {}}]}).note is None
