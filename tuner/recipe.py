"""The answer in your own training code: the optimizer and learning-rate schedule of a
recommended configuration, built by the same code the service's trials ran with.

    from tuner.client import Client
    from tuner.recipe import recipe

    r = recipe(Client().recommend(model="mlp", dataset="digits"))  # the answer's start_from
    opt = r.optimizer(model.parameters())
    sched = r.schedule(opt, steps_per_epoch=len(loader))           # over r.epochs epochs
    for epoch in range(r.epochs):
        for x, y in loader:
            ...; loss.backward(); opt.step(); opt.zero_grad()
            sched.after_batch()
        sched.after_epoch(val_metric)   # the answer's metric (reduce-on-plateau reads it)

A configuration was measured at its training budget (`epochs`, `batch_size`): its schedule
spans those epochs, and its learning rate was tuned for that batch size. Train with them to get
what the answer measured.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from tuner.digests import digests_apart
from tuner.optimizers import build_optimizer, lr_target
from tuner.schedules import LRSchedule, build_schedule
from tuner.space import TrialConfig


@dataclass(frozen=True)
class Recipe:
    """A configuration to train with: `optimizer` and `schedule` build it."""

    family: str
    schedule_name: str
    params: dict[str, Any] = field(default_factory=dict)
    direction: str = "maximize"  # the answer's metric: reduce-on-plateau steps on it
    epochs: int | None = None  # the training budget it was measured at
    batch_size: int | None = None
    note: str | None = None  # e.g. the learning rate moved to another batch size

    @property
    def config(self) -> TrialConfig:
        return TrialConfig(self.family, self.schedule_name, dict(self.params))

    def optimizer(self, parameters: Iterable[Any]) -> torch.optim.Optimizer:
        """The optimizer over `parameters` (or parameter groups), as a trial built it."""
        return build_optimizer(self.config, parameters)

    def schedule(self, optimizer: torch.optim.Optimizer, *, steps_per_epoch: int,
                 epochs: int | None = None) -> LRSchedule:
        """The learning-rate schedule over `epochs` (default: the answer's budget) of
        `steps_per_epoch` optimizer steps: call `after_batch()` after each step and
        `after_epoch(metric)` after each epoch."""
        n = epochs if epochs is not None else self.epochs
        if n is None:
            raise ValueError("epochs: the answer names no training budget; give the epochs "
                             "the schedule spans")
        mode: Literal["min", "max"] = "max" if self.direction == "maximize" else "min"
        return build_schedule(self.config, lr_target(optimizer),
                              n * max(1, int(steps_per_epoch)), mode)


def recipe(answer: Mapping[str, Any], family: str | None = None) -> Recipe:
    """The configuration a recommendation (`Client.recommend`, `GET /v1/recommendations`,
    `tuner recommend --json`, or `tuner run --json`'s `answer`) says to train with: its
    `start_from` (the top family; for a transfer answer its learning rate moved to this task's
    batch size), else its first-ranked family; or `family`'s best configuration in the
    ranking."""
    ranking = list(answer.get("ranking") or [])
    budget = answer.get("budget") or {}
    start = answer.get("start_from")
    if family is None and start:
        row, note = dict(start), start.get("lr_scaling")
    else:
        rows = [r for r in ranking if family is None or r.get("optimizer") == family]
        if not rows:
            valid = ", ".join(str(r.get("optimizer")) for r in ranking) or "none"
            raise ValueError(f"family: {family!r} is not ranked in this answer; valid "
                             f"choices: {valid}")
        row, note = rows[0], None
    if which := _which_task(answer):
        note = f"{note}; {which}" if note else which
    # A family ranked on the untuned baseline's runs alone (here, or on the task a transferred
    # answer took its configuration from): its configuration is its defaults.
    entry: Mapping[str, Any] = next(
        (r for r in ranking if r.get("optimizer") == row["optimizer"]), {})
    if row["optimizer"] in (answer.get("baseline_only") or ()) or \
            (entry.get("evidence") or {}).get("baseline_only"):
        untuned = (f"{row['optimizer']}'s configuration here is the untuned baseline (its "
                   f"defaults): no tuned {row['optimizer']} configuration ran to the end")
        note = f"{note}; {untuned}" if note else untuned
    # An answer whose best family did no better than a model that ignores its inputs: the
    # recipe trains with a configuration that learned nothing there, and says so.
    blind = answer.get("no_skill") or {}
    if blind.get("clause"):
        note = f"{note}; {blind['clause']}" if note else str(blind["clause"])
    return Recipe(str(row["optimizer"]), str(row.get("schedule") or "constant"),
                  dict(row.get("params") or {}),
                  str(answer.get("direction") or "maximize"), budget.get("epochs"),
                  budget.get("batch_size"), note)


def _which_task(answer: Mapping[str, Any]) -> str | None:
    """Where an answer asked for by names chose one of several tasks of those names (the most
    recently run; `other_tasks` the rest): which one, so a recipe for the team's other data
    is not taken for this one's. (`recommend(model="mlp", dataset="file")` with two CSVs gave
    the recipe of whichever ran last, and said nothing.)"""
    others = answer.get("other_tasks") or []
    task = (answer.get("tasks") or [{}])[0]
    if not others or not task:
        return None

    def params(t: Mapping[str, Any]) -> list[str]:
        return [f"{k}={json.dumps(v)}" for part in ("model", "dataset")
                for k, v in sorted(((t.get(part) or {}).get("params") or {}).items())]

    def named(t: Mapping[str, Any]) -> str:
        parts = params(t)
        if t is not task and parts == params(task):  # the same names and parameters: a
            # rewritten file, retrained weights
            parts += [f"{label} {theirs}" for label, theirs, _ in digests_apart(t, task)]
        return f"task {t.get('id')}" + (f" ({' '.join(parts)})" if parts else "")

    return (f"measured on {named(task)}, the task of this model and dataset with the team's "
            f"most recent job; not on " + ", ".join(named(o) for o in others)
            + ": recommend(task=<id>) for another")
