"""The figures of a job and of a task's recommendation, as data: the web UI draws them with
Chart.js, `tuner plot` with matplotlib (PNG/SVG) or as a standalone HTML page. Computed here
once, from the trials as the API answers them (`trial_json`), so every renderer draws the same
series."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from tuner.recommend import metric_scale
from tuner.space import FAMILIES

# One colour per family, fixed, so a family has the same colour on every page and figure
# (matplotlib's tab20, which Chart.js has no palette for).
_TAB20 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
          "#c5b0d5", "#c49c94")
COLORS: dict[str, str] = {f: _TAB20[i % len(_TAB20)] for i, f in enumerate(FAMILIES)}
STOPPED = ("pruned", "diverged")


def color(family: str | None) -> str:
    return COLORS.get(family or "", "#555555")


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


# A job's figures draw at most this many learning curves: each family's best trial and the latest
# (a job of thousands of trials would answer tens of megabytes, and no one reads its curves).
CURVES_LIMIT = 500

# Per trial number: how many epochs reported a finite value, and the largest and the smallest.
StepSummary = dict[int, tuple[int, float | None, float | None]]
StepsOf = Callable[[Collection[int]], Mapping[int, Sequence[Mapping[str, Any]]]]


def job_figures(trials: Iterable[Mapping[str, Any]], metric: str, direction: str,
                curves_limit: int = CURVES_LIMIT) -> dict[str, Any]:
    """A job's figures from its trials, each with its `steps` (see `figures_of`)."""
    trials = list(trials)
    by_number = {t["number"]: t.get("steps") or [] for t in trials}
    summary: StepSummary = {}
    for number, steps in by_number.items():
        values = [v for s in steps if (v := _finite(s.get("value"))) is not None]
        summary[number] = (len(values), max(values, default=None), min(values, default=None))
    return figures_of(trials, summary, lambda numbers: {n: by_number[n] for n in numbers},
                      metric, direction, curves_limit)


def figures_of(trials: Iterable[Mapping[str, Any]], summary: StepSummary, steps_of: StepsOf,
               metric: str, direction: str, curves_limit: int = CURVES_LIMIT) -> dict[str, Any]:
    """A job's figures from its trials (without steps), each trial's `summary` of its epochs'
    values, and `steps_of(numbers)`, the steps (`step`, `value`) of those trials, asked for
    once, for the trials drawn and those that moved the best so far (what the store reads for
    a job of thousands of trials, instead of every step):
    - `best_so_far`: [epochs consumed, best value] where the best changed, and after the last
      epoch (drawn as steps: the best holds between two points), trials in number order (with
      trials in parallel this is the order they started, not the clock's); every trial counts;
    - `curves`: the trials' [epoch, value] points, coloured by family, with `stop` the point
      where a pruned or diverged trial was stopped; at most `curves_limit` trials (each
      family's best complete trial, then the latest), `n_trials` of them in all;
    - `families`: each family's best trial (complete trials first), and its trial counts;
    - `y_scale`: `log` for a loss whose every drawn value is above 0 (the answer ranks losses
      on their logarithm), else `linear`: the value axis to draw them on.
    A trial with no configuration (enqueued, then cancelled before it ran) has nothing to draw:
    it is left out (it was a legend entry "#1 null (failed)")."""
    sign = 1.0 if direction == "maximize" else -1.0
    ordered = sorted((t for t in trials if t.get("optimizer") is not None),
                     key=lambda t: t["number"])
    fams: dict[str, dict[str, Any]] = {}
    for t in ordered:
        family = t["optimizer"]
        f = fams.setdefault(family, {"optimizer": family, "color": color(family),
                                     "n_trials": 0, "n_complete": 0, "best": None})
        f["n_trials"] += 1
        value = _finite(t.get("value"))
        if t["state"] != "complete" or value is None:
            continue
        f["n_complete"] += 1
        if f["best"] is None or sign * value > sign * f["best"]["value"]:
            f["best"] = {"number": t["number"], "value": value, "schedule": t.get("schedule"),
                         "params": t.get("params") or {}, "baseline": bool(t.get("baseline"))}
    families = sorted(fams.values(), key=lambda f: (
        f["best"] is None, -sign * f["best"]["value"] if f["best"] else 0.0, f["optimizer"]))
    drawn = [t["number"] for t in ordered]
    if len(drawn) > curves_limit:
        keep = {f["best"]["number"] for f in families if f["best"]}
        for number in reversed(drawn):
            if len(keep) >= curves_limit:
                break
            keep.add(number)
        drawn = [n for n in drawn if n in keep]
    # The trials that moved the best so far, from their summaries alone.
    moved, best = set(), None
    for t in ordered:
        _, high, low = summary.get(t["number"], (0, None, None))
        top = high if sign > 0 else low
        if top is not None and (best is None or sign * top > sign * best):
            moved.add(t["number"])
            best = top
    # Each fetched trial's [epoch, value] points, read once.
    points = {n: [[int(s["step"]), v] for s in steps if (v := _finite(s.get("value"))) is not None]
              for n, steps in steps_of(sorted(set(drawn) | moved)).items()}
    best, consumed = None, 0
    best_so_far: list[list[float]] = []
    for t in ordered:
        if t["number"] not in moved:
            consumed += summary.get(t["number"], (0, None, None))[0]
            continue
        for _, v in points.get(t["number"], []):
            consumed += 1
            if best is None or sign * v > sign * best:
                best = v
                best_so_far.append([consumed, best])
    if best_so_far and best_so_far[-1][0] != consumed:
        best_so_far.append([consumed, best_so_far[-1][1]])
    by_number = {t["number"]: t for t in ordered}
    curves = []
    for number in drawn:
        t, pts = by_number[number], points.get(number, [])
        state, family = t["state"], t.get("optimizer")
        stop = None
        if state in STOPPED:
            stop = [max(int(t.get("stop_step") or 0), pts[-1][0] if pts else 0),
                    pts[-1][1] if pts else None]
        curves.append({"number": number, "optimizer": family, "schedule": t.get("schedule"),
                       "state": state, "stop_reason": t.get("stop_reason"),
                       "value": _finite(t.get("value")), "color": color(family),
                       "confirmation": t.get("confirm_of") is not None,
                       "baseline": bool(t.get("baseline")),
                       "points": pts, "stop": stop})
    drawn_values = [v for _, v in best_so_far] + [v for c in curves for _, v in c["points"]]
    return {"metric": metric, "direction": direction, "epochs_consumed": consumed,
            "best_so_far": best_so_far, "curves": curves, "families": families,
            "n_trials": len(ordered), "y_scale": metric_scale(drawn_values, direction)}


def lr_points(trials: Iterable[tuple[str, float | None, float]]) -> dict[str, list[list[float]]]:
    """(family, learning rate, value) of complete trials -> per family [lr, value] points,
    sorted by learning rate (trials without a learning rate are left out)."""
    out: dict[str, list[list[float]]] = {}
    for family, lr, value in trials:
        if lr is not None and lr > 0 and math.isfinite(value):
            out.setdefault(family, []).append([lr, value])
    return {f: sorted(p) for f, p in sorted(out.items())}


def families_in(curves: Sequence[Mapping[str, Any]]) -> list[str]:
    """The families of the curves, in catalogue order (the legend)."""
    present = {c["optimizer"] for c in curves if c["optimizer"]}
    return [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES))
