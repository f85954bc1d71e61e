"""Spec validation names the field and the valid choices; the space round-trips through JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from tuner.sampling import SearchSpace
from tuner.space import FAMILIES, SCHEDULES
from tuner.spec import JobSpec, SpaceSpec, format_validation_error

TASK = {"model": {"name": "mlp"}, "dataset": {"name": "digits"}}


def _error(spec: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate({"task": TASK, **spec})
    return format_validation_error(exc.value)


@pytest.mark.parametrize(("spec", "field", "fragments"), [
    ({"space": {"optimizers": ["adam", "adamm"]}}, "space.optimizers",
     ["unknown optimizer family 'adamm'", "adamw", "nesterov"]),
    ({"space": {"schedules": ["cosine", "linear"]}}, "space.schedules",
     ["unknown schedule 'linear'", "polynomial", "warmup_cosine"]),
    ({"space": {"overrides": {"adam.lr": {"low": 0.1, "high": 0.01}}}}, "space",
     ["overrides['adam.lr']", "low (0.1) > high (0.01)"]),
    ({"space": {"overrides": {"adam.lr": {"low": 0.0, "high": 0.01}}}}, "space",
     ["log range needs a positive low"]),
    ({"space": {"overrides": {"sgd.lr": 5.0}}}, "space",
     ["pinned value 5.0 is outside its range [0.0001, 1.0]"]),
    ({"space": {"overrides": {"adam.momentum": 0.9}}}, "space",
     ["unknown parameter 'adam.momentum'; adam's parameters: adam.beta1, adam.beta2, adam.eps, "
      "adam.l2, adam.l2_on, adam.lr"]),
    # the family's own keys, not the hundred-odd of the whole space; the nearest one named
    ({"space": {"overrides": {"cosine.min_frac": 0.1}}}, "space",
     ["cosine's parameters: cosine.min_fraction, cosine.warmup_fraction; did you mean "
      "'cosine.min_fraction'?"]),
    ({"space": {"optimizers": ["adam"], "schedules": ["cosine"], "overrides": {"adma.lr": 0.01}}},
     "space", ["unknown parameter 'adma.lr': a key is <family>.<parameter>, "
               "<schedule>.<parameter> or lookahead.<base>.<parameter>, of this space's families "
               "(adam) and schedules (cosine); did you mean 'adam.lr'?"]),
    # a value neither pinned nor a range, said in those words (not pydantic's union members)
    ({"space": {"overrides": {"adam.lr": "0.01"}}}, "space.overrides",
     ["overrides['adam.lr']: a pinned value (a number, or true or false) or a range "
      "{\"low\": ..., \"high\": ...}, got '0.01'"]),
    ({"space": {"overrides": {"adam.lr": {"lo": 0.001}}}}, "space.overrides",
     ["overrides['adam.lr']: a range is {\"low\": ..., \"high\": ...}", "low: field required"]),
    ({"space": {"optimizers": ["sgd"], "overrides": {"adam.lr": 0.01}}}, "space",
     ["family 'adam' is not in space.optimizers"]),
    ({"space": {"overrides": {"adam.beta1": {"low": 0.9, "high": 1.0}}}}, "space",
     ["must stay below 1"]),
    ({"search": {"sampler": "bayes"}}, "search.sampler",
     ["unknown sampler 'bayes'", "cmaes", "tpe"]),
    ({"search": {"pruner": "asha2"}}, "search.pruner", ["hyperband", "wilcoxon"]),
    ({"budget": {"n_trials": 0}}, "budget.n_trials", ["greater than or equal to 1"]),
    ({"budget": {"stall_s": 0.5}}, "budget.stall_s", ["greater than or equal to 1"]),
    ({"resources": {"gpus_per_trial": 1.5}}, "resources.gpus_per_trial", ["whole number"]),
    ({"space": {"lookahead_bases": ["proximal"]}}, "space.lookahead_bases",
     ["cannot be a Lookahead base"]),
    # true and false are not numbers (pydantic's lax mode took true as 1: one epoch)
    ({"training": {"epochs": True}}, "training.epochs", ["a number, not true"]),
    ({"budget": {"timeout_s": False}}, "budget.timeout_s", ["a number, not false"]),
    ({"resources": {"gpus_per_trial": True}}, "resources.gpus_per_trial", ["a number, not true"]),
    # a field the spec has no place for: the section's own fields, and where it belongs (it
    # read "Extra inputs are not permitted", though budget.n_trials is the trial count)
    ({"search": {"n_trials": 20}}, "search.n_trials",
     ["no field 'n_trials' in search; its fields: sampler, pruner, ", "confirm_share, "
      "second_look; did you mean budget.n_trials?"]),
    ({"search": {"optimizers": ["adam"]}}, "search.optimizers", ["did you mean space.optimizers?"]),
    ({"search": {"prunr": "asha"}}, "search.prunr", ["did you mean 'pruner'?"]),
    ({"epochs": 5}, "epochs", ["no field 'epochs' in a job spec; its fields: task, space, "
                               "training, budget, search, resources; did you mean "
                               "training.epochs?"]),
    ({"task": {**TASK, "epoch": 5}}, "task.epoch", ["no field 'epoch' in task", "did you mean "
                                                    "training.epochs?"]),
    ({"training": {"lr": 0.1}}, "training.lr",
     ["an optimizer's lr is its family's own, set in space.overrides: 'sgd.lr': a value pins "
      "it"]),
    ({"surprise": 1}, "surprise", ["no field 'surprise' in a job spec; its fields: task, space, "
                                   "training, budget, search, resources"]),
])
def test_invalid_spec_names_field_and_choices(spec: dict[str, Any], field: str,
                                              fragments: list[str]) -> None:
    msg = _error(spec)
    assert msg.startswith(field), msg
    for frag in fragments:
        assert frag in msg, msg


def test_unknown_model_and_dataset_list_registry() -> None:
    with pytest.raises(ValidationError) as exc:
        JobSpec.model_validate({"task": {"model": {"name": "resnet"},
                                         "dataset": {"name": "mnist"}}})
    msg = format_validation_error(exc.value)
    assert "task.model.name: unknown model 'resnet'" in msg
    assert "cnn, hf:<name>, linear, mlp, timm:<name>" in msg and "transformer" in msg
    assert "unknown dataset 'mnist'" in msg and "breast_cancer" in msg


def test_metric_and_direction() -> None:
    assert "valid choices: val_accuracy, val_loss, val_r2" in _error(
        {"task": {**TASK, "metric": "f1"}})
    with pytest.raises(ValidationError, match="contradicts"):
        JobSpec.model_validate({"task": {**TASK, "metric": "val_loss", "direction": "maximize"}})
    spec = JobSpec.model_validate({"task": TASK})
    assert spec.task.resolved_metric("classification") == "val_accuracy"
    assert spec.task.resolved_metric("regression") == "val_loss"
    with pytest.raises(ValueError, match="does not apply to a regression dataset"):
        JobSpec.model_validate({"task": {**TASK, "metric": "val_accuracy"}}
                               ).task.resolved_metric("regression")


def test_spec_round_trips_through_json() -> None:
    spec = JobSpec.model_validate({
        "task": TASK,
        "space": {"optimizers": ["adam", "lookahead"], "schedules": ["cosine"],
                  "overrides": {"adam.lr": {"low": 1e-4, "high": 1e-2}, "adam.beta1": 0.95,
                                "lookahead.adam.lr": 3e-3}},
    })
    again = JobSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    space = SearchSpace(again.space)
    assert json.loads(json.dumps(space.to_json()))["optimizers"]["adam"]["params"]["adam.beta1"][
        "pinned"] == 0.95


def test_defaults_sweep_has_every_chosen_family_at_defaults() -> None:
    space = SearchSpace(SpaceSpec(overrides={"adam.lr": {"low": 1e-2, "high": 1e-1}}))
    sweep = space.defaults()
    assert [p["optimizer"] for p in sweep] == list(FAMILIES)
    assert all(p["schedule"] == "constant" for p in sweep)
    adam = next(p for p in sweep if p["optimizer"] == "adam")
    assert adam["adam.lr"] == 1e-2  # default 1e-3 clamped into the overridden range
    assert adam["adam.one_minus_beta1"] == pytest.approx(0.1)
    assert adam["adam.l2_on"] is False and "adam.l2" not in adam
    la = next(p for p in sweep if p["optimizer"] == "lookahead")
    assert la["lookahead.base"] == "adam" and la["lookahead.k"] == 5


def test_space_json_cli_prints_defaults() -> None:
    out = subprocess.run([sys.executable, "-m", "cli", "space", "--json"],
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert set(data["optimizers"]) == set(FAMILIES)
    assert set(data["schedules"]) == set(SCHEDULES)
    assert data["optimizers"]["adam"]["params"]["adam.lr"] == {
        "kind": "float", "default": 0.001, "low": 1e-5, "high": 0.1, "log": True}
    assert data["optimizers"]["momentum"]["params"]["momentum.momentum"]["scale"] == "log(1-x)"
    # never a shared lr, never momentum for adam
    assert "adam.momentum" not in data["optimizers"]["adam"]["params"]
