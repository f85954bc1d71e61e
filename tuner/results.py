"""Read trials back from a study: one `TrialRecord` (tuner.trial) each, and the leaderboard of a
search."""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.attrs import (
    ATTR_BASELINE,
    ATTR_CONFIG,
    ATTR_CONFIRM_OF,
    ATTR_RECORD,
    ATTR_SEED,
    ATTR_SWEEP,
    ATTR_WARM_START,
)
from tuner.recommend import (
    HistoryTrial,
    better,
    in_short,
    one_split_note,
    rank_families,
    read_across_splits,
    versus_baseline,
    versus_no_skill,
    with_no_skill,
)
from tuner.space import from_optuna_params
from tuner.trial import DB_ERROR, SAME_FAILURE_TRIALS, SameFailure, TrialRecord, same_failure

STATES = ("complete", "pruned", "diverged", "failed")

# Said once per process, on the first trial read: `tuner run` printed it to the user. Filtered by
# its message, so Optuna's other experimental warnings still show.
warnings.filterwarnings("ignore", message=r".*retried_trial_number is experimental",
                        category=optuna.exceptions.ExperimentalWarning)


def failing_alike(trials: Sequence[FrozenTrial]) -> SameFailure | None:
    """`tuner.trial.same_failure` of a study's trials (ended and running), read only while no
    trial completed and enough failed by their own error: the dispatcher asks each tick, and a
    worker after each of its trials that failed, so a study of thousands of trials is not
    converted for nothing."""
    if any(t.state == TrialState.COMPLETE for t in trials) or sum(
            t.state == TrialState.FAIL and
            (t.user_attrs.get(ATTR_RECORD) or {}).get("stop_reason") == "failed"
            for t in trials) < SAME_FAILURE_TRIALS:
        return None
    return same_failure(trial_record(t) for t in trials)


def trial_record(t: FrozenTrial) -> TrialRecord:
    rec: dict[str, Any] = t.user_attrs.get(ATTR_RECORD, {})
    cfg: dict[str, Any] = t.user_attrs.get(ATTR_CONFIG, {})
    if not cfg and (sampled := from_optuna_params(
            t.params or t.system_attrs.get("fixed_params") or {})) is not None:
        # Lost between sampling and storing its configuration: Optuna holds what it sampled;
        # or enqueued (a defaults-sweep or retry trial) and never started, cancelled with its
        # job: what it was enqueued with (the job page listed such trials with no family).
        cfg = sampled.to_json()
    reason = rec.get("stop_reason")
    if t.state == TrialState.COMPLETE:
        state = "complete"
    elif t.state == TrialState.PRUNED:
        state = "diverged" if reason == "diverged" else "pruned"
    elif t.state == TrialState.FAIL:
        if reason in ("completed", "early_stopped", "pruned", "diverged"):
            # The objective ended normally: the failure came from storing its result (the
            # database failed under Optuna's tell), not from the configuration.
            rec = {**rec, "detail": rec.get("detail") or (
                f"the trial finished ({reason}) but its result could not be stored: "
                "database error")}
            reason = DB_ERROR
        state, reason = "failed", reason or "failed"
    else:
        state = t.state.name.lower()
    value = t.value if state in ("complete", "pruned") else None
    steps: list[dict[str, Any]] = rec.get("steps") or []
    stop_step = int(rec.get("stop_step", 0))
    epochs_run = int(rec.get("epochs_run", 0))
    if not steps and t.intermediate_values:
        # The worker left no record (killed, lost, stalled, or the database was down when it
        # wrote): Optuna still holds what the trial reported each epoch (its best value so far).
        steps = [{"step": k, "best_value": v if math.isfinite(v) else None}
                 for k, v in sorted(t.intermediate_values.items())]
        stop_step = max(stop_step, steps[-1]["step"])
        epochs_run = max(epochs_run, len(steps))
    detail = str(rec.get("detail", ""))
    if state == "failed" and not detail:
        detail = str(t.system_attrs.get("fail_reason") or "") or \
            "the trial's worker left no record (killed or lost before it could write one)"
    return TrialRecord(
        number=t.number, state=state, stop_reason=reason, stop_step=stop_step,
        optimizer=cfg.get("optimizer"), schedule=cfg.get("schedule"),
        params=cfg.get("params", {}), value=value, steps=steps,
        epochs_run=epochs_run,
        seconds_per_epoch=float(rec.get("seconds_per_epoch", 0.0)),
        longest_wait_s=_float(rec.get("longest_wait_s")),
        state_bytes_per_param=float(rec.get("state_bytes_per_param", 0.0)),
        device=rec.get("device"), hardware=rec.get("hardware"), detail=detail,
        traceback=rec.get("traceback") if state == "failed" else None,
        seed=_int(rec.get("seed", t.user_attrs.get(ATTR_SEED))),
        confirm_of=_int(t.user_attrs.get(ATTR_CONFIRM_OF)),
        defaults_sweep=bool(t.user_attrs.get(ATTR_SWEEP)),
        warm_start=bool(t.user_attrs.get(ATTR_WARM_START)),
        baseline=bool(t.user_attrs.get(ATTR_BASELINE)),
        retry_of=_int(optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t)),
    )


def _int(v: Any) -> int | None:
    return int(v) if v is not None else None


def _float(v: Any) -> float | None:
    return float(v) if v is not None else None


class _TrialLike(Protocol):
    number: int
    state: str
    optimizer: str | None
    schedule: str | None
    params: dict[str, Any]
    value: float | None
    baseline: bool


def best_per_family(rows: Iterable[_TrialLike], direction: str) -> list[dict[str, Any]]:
    """Per optimizer family: its best complete trial and its trial counts by state, best family
    first (families without a complete trial last). Used for records and for stored rows."""
    by_opt: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.optimizer is None:
            continue
        entry = by_opt.setdefault(r.optimizer, {
            "optimizer": r.optimizer, "best": None, "trials": 0, **{s: 0 for s in STATES}})
        entry["trials"] += 1
        if r.state in STATES:
            entry[r.state] += 1
        if r.state != "complete" or r.value is None:
            continue
        if entry["best"] is None or better(r.value, entry["best"]["value"], direction):
            entry["best"] = _brief(r)
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(by_opt.values(), key=lambda e: (e["best"] is None,
                                                  sign * e["best"]["value"] if e["best"] else 0))


def leaderboard(records: list[TrialRecord], direction: str) -> dict[str, Any]:
    """Best overall (complete trials only), best per optimizer family, and state counts."""
    counts = Counter(r.state for r in records)
    best: TrialRecord | None = None
    for r in records:
        if r.state == "complete" and r.value is not None and r.optimizer is not None and (
                best is None or best.value is None or better(r.value, best.value, direction)):
            best = r
    return {
        "direction": direction,
        "best": _brief(best) if best else None,
        "by_optimizer": best_per_family(records, direction),
        "counts": {s: counts.get(s, 0) for s in STATES},
    }


def answer(records: list[TrialRecord], direction: str, metric: str | None = None,
           job_id: str = "local", budget: dict[str, Any] | None = None,
           alone: bool = True, no_skill: tuple[float | None, str] | None = None
           ) -> dict[str, Any]:
    """Which optimizer, judged on this search's trials alone by the rule the service's
    recommendations use (`tuner.recommend.rank_families`): each family's best configuration
    with its expected value and interval, a winner only outside the noise (the confirmation
    runs measure it), and what was left unknown (families without a complete trial, or not
    in the space). The leaderboard's best trial is the luckiest run, not this. `alone`: no
    other split of the task was searched beside it (a winner then says what one split does
    not show: `one_split_note`); `tuner run --splits` reads its splits together
    (`answer_across_splits`). `no_skill`: what a model that ignores its inputs scores on the
    split's validation set, and the task's kind (`tuner.recommend.versus_no_skill`)."""
    trials, ranked = _judged(records, direction, metric, job_id)
    return _with_in_short(_answer(
        ranked, direction, budget, versus_baseline(trials, ranked, metric),
        ranked["summary"] + (one_split_note(
            ranked, int((budget or {}).get("training_seed") or 0),
            "`tuner run --splits 3` runs the search on 3") if alone else ""),
        _blind(ranked, no_skill, metric)))


def _blind(ranked: dict[str, Any], no_skill: tuple[float | None, str] | None,
           metric: str | None) -> dict[str, Any] | None:
    return versus_no_skill(ranked, no_skill[0], metric, no_skill[1]) if no_skill else None


def answer_across_splits(searches: Sequence[tuple[int, list[TrialRecord]]], direction: str,
                         metric: str | None = None, budget: dict[str, Any] | None = None,
                         no_skill: tuple[float | None, str] | None = None) -> dict[str, Any]:
    """`tuner run --splits N`: the answer of the first of N searches of one task, each on its
    own data split (`searches`: (training.seed, its trials), the answer's first), read with the
    others as the service reads a task searched on several splits
    (`tuner.recommend.read_across_splits`): each split ranked on its own, never pooled;
    `splits`; `start_from` (the configuration to train with: the family leading on every split
    when the one listed first does not); `baseline` held to that family on each split."""
    judged = [(sd, *_judged(records, direction, metric, f"split-{sd}"))
              for sd, records in searches]
    by_seed = {sd: trials for sd, trials, _ in judged}
    splits, follow, baseline = read_across_splits(
        [(sd, len(trials), ranked) for sd, trials, ranked in judged],
        lambda sd, r: versus_baseline(by_seed[sd], r, metric), "this run's")
    ranked = judged[0][2]
    out = _answer(ranked, direction, budget, baseline, ranked["summary"] + (
        f"; {splits['summary']}" if splits else ""), _blind(ranked, no_skill, metric))
    start = follow[0] if follow else None
    return _with_in_short(out | {"splits": splits, "start_from": {
        "optimizer": start["optimizer"], "schedule": start["schedule"] or "constant",
        "params": start["params"]} if start else None})


def _with_in_short(answer: dict[str, Any]) -> dict[str, Any]:
    """`in_short`: the answer in one line, as a service answer carries it (a local run's answer
    is a direct one)."""
    return answer | {"in_short": in_short({**answer, "method": "direct"})}


def _answer(ranked: dict[str, Any], direction: str, budget: dict[str, Any] | None,
            baseline: dict[str, Any], summary: str,
            blind: dict[str, Any] | None = None) -> dict[str, Any]:
    return {k: ranked[k] for k in ("verdict", "leaders", "ties", "not_ranked",
                                   "not_tried", "under_tuned", "tied_by_width",
                                   "at_ceiling", "baseline_only", "noise")} | {
        "summary": with_no_skill(summary, blind), "no_skill": blind,
        "direction": direction, "budget": budget or {},
        "baseline": baseline,
        "ranking": [{"optimizer": e["optimizer"], "schedule": e["schedule"],
                     "params": e["params"], "expected": e["expected"],
                     "best_trial_value": e["best_trial_value"],
                     "runs": e["evidence"]["best_configuration_runs"]}
                    for e in ranked["ranking"]]}


def _judged(records: list[TrialRecord], direction: str, metric: str | None,
            job_id: str) -> tuple[list[HistoryTrial], dict[str, Any]]:
    """A search's complete trials as history, and `rank_families` of them."""
    trials: list[HistoryTrial] = []
    incomplete: dict[str, dict[str, Any]] = {}
    complete = {r.number for r in records if r.state == "complete"}
    for r in records:
        if r.optimizer is None:
            continue
        if r.state == "complete" and r.value is not None:
            trials.append(HistoryTrial(
                job_id=job_id, number=r.number, optimizer=r.optimizer, schedule=r.schedule,
                params=r.params, value=r.value, config_key=r.config_key() or str(r.number),
                confirmation=r.confirm_of is not None, seed=r.seed,
                second_look=r.confirm_of is not None and r.confirm_of not in complete,
                state_bytes_per_param=r.state_bytes_per_param,
                seconds_per_epoch=r.seconds_per_epoch))
            continue
        e = incomplete.setdefault(r.optimizer, {
            "n_trials": 0, "n_pruned": 0, "n_diverged": 0, "n_failed": 0, "max_stop_epoch": 0,
            "best_intermediate_value": None})
        e["n_trials"] += 1
        e[f"n_{r.state}"] = e.get(f"n_{r.state}", 0) + 1
        e["max_stop_epoch"] = max(e["max_stop_epoch"], r.stop_step)
        cur = e["best_intermediate_value"]
        if r.value is not None and math.isfinite(r.value) and (
                cur is None or better(r.value, cur, direction)):
            e["best_intermediate_value"] = float(r.value)
    steps = {r.number: [(s.step, s.best_value) for s in r.steps if s.best_value is not None]
             for r in records}
    ranked = rank_families(trials, direction, incomplete=incomplete, metric=metric,
                           curves=lambda runs: {(t.job_id, t.number): steps.get(t.number, [])
                                                for t in runs})
    return trials, ranked


def _brief(r: _TrialLike) -> dict[str, Any]:
    return {"number": r.number, "optimizer": r.optimizer, "schedule": r.schedule,
            "params": r.params, "value": r.value, "baseline": bool(r.baseline)}


def study_records(study: optuna.Study) -> list[TrialRecord]:
    return [trial_record(t) for t in study.get_trials(deepcopy=False)
            if t.state.is_finished()]
