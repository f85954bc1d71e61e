"""Recommendations on constructed histories with known answers: ranking, intervals, ties,
robustness, transfer to the nearest task, and prior when nothing is known."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from tuner.recommend import (
    MAX_PROJECTED_RUNS,
    SUMMARY_NAMES,
    HistoryTrial,
    TaskProfile,
    as_factor,
    rank_families,
    runs_to_separate,
    scale_lr_for_batch,
    separated,
    similar_tasks,
    t975,
    transfer_neighbours,
    transfer_ranking,
)
from tuner.spec import SearchSpec

_n = itertools.count()


def trial(opt: str, value: float, lr: float = 1e-3, *, key: str | None = None,
          confirm: bool = False, job: str = "j1", bytes_: float = 8.0,
          setting: tuple[Any, ...] | None = None, seed: int | None = None) -> HistoryTrial:
    return HistoryTrial(job_id=job, number=next(_n), optimizer=opt, schedule="constant",
                        params={f"{opt}.lr": lr}, value=value,
                        config_key=key or f"{opt}-{lr}", confirmation=confirm,
                        state_bytes_per_param=bytes_, seconds_per_epoch=0.1, setting=setting,
                        seed=seed)


def confirmed(opt: str, values: list[float], lr: float = 1e-3, job: str = "j1") -> list[HistoryTrial]:
    """A search trial and its confirmation runs (same configuration, other seeds)."""
    first, *rest = values
    return [trial(opt, first, lr, job=job)] + [trial(opt, v, lr, confirm=True, job=job)
                                              for v in rest]


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["optimizer"]: e for e in result["ranking"]}


def test_clear_winner_with_interval_and_evidence() -> None:
    hist = (confirmed("adam", [0.95, 0.952, 0.948, 0.951, 0.949], job="j1")
            + confirmed("sgd", [0.90, 0.905, 0.895], job="j2")
            + [trial("sgd", 0.80, 1e-1, job="j2")])
    r = rank_families(hist, "maximize")
    assert [e["optimizer"] for e in r["ranking"]] == ["adam", "sgd"]
    assert r["ties"] == [] and r["summary"].startswith("adam is best")
    adam = by_name(r)["adam"]
    assert adam["expected"]["value"] == pytest.approx(0.95)
    assert adam["expected"]["low"] < 0.95 < adam["expected"]["high"]
    assert adam["expected"]["high"] - adam["expected"]["low"] < 0.01
    assert "t-interval over 5 seeds" in adam["expected"]["source"]
    assert adam["evidence"]["n_trials"] == 5 and adam["evidence"]["n_confirmation_runs"] == 4
    assert by_name(r)["sgd"]["evidence"]["n_configurations"] == 2
    assert r["noise"]["sigma"] == pytest.approx(0.0028, abs=1e-3) and r["noise"]["dof"] == 6


def test_a_winner_is_the_best_of_the_families_tried_and_the_others_are_named() -> None:
    """Two families ranked of the fourteen: adam is the best of those two, not "the best
    optimizer"; the twelve never run are named as unknown."""
    from tuner.space import FAMILIES

    hist = confirmed("adam", [0.95, 0.952, 0.948]) + confirmed("sgd", [0.90, 0.905, 0.895])
    r = rank_families(hist, "maximize", incomplete={"nadam": {"n_trials": 1}})
    assert r["verdict"] == "winner"
    assert r["not_tried"] == [f for f in FAMILIES if f not in ("adam", "sgd", "nadam")]
    assert r["summary"].startswith("adam is best of the 2 families ranked on this data split of "
                                   "the task: ")
    assert "11 families not tried on this data split at this budget, so nothing is known of " \
        "them here (not_tried lists them)" in r["summary"]
    every = [t for i, f in enumerate(FAMILIES)
             for t in confirmed(f, [0.5 - 0.01 * i, 0.501 - 0.01 * i, 0.499 - 0.01 * i])]
    r = rank_families(every, "maximize")
    assert r["not_tried"] == [] and "not tried" not in r["summary"]
    assert r["verdict"] == "winner" and " is best on this data split of the task: " in r["summary"]
    # Every family tried, one never to the end: the winner is still only the best of those ranked.
    r = rank_families([t for t in every if t.optimizer != "radam"], "maximize",
                      incomplete={"radam": {"n_trials": 1, "max_stop_epoch": 1}})
    assert r["not_tried"] == [] and " is best of the 13 families ranked" in r["summary"]
    # A few families not tried are named one by one.
    r = rank_families([t for t in every if t.optimizer not in ("radam", "sgd")], "maximize")
    assert "not tried on this data split at this budget, so nothing is known of them here: sgd, " \
        "radam" in r["summary"]


def test_a_family_whose_every_trial_ran_out_of_memory_is_said_unmeasured() -> None:
    """adamw's trials all ran out of memory on their device (its state beside the model, say):
    the answer names it as never measured, and what may let it run; a family with one trial out
    of memory among others is not named so."""
    hist = confirmed("adam", [0.95, 0.952, 0.948]) + confirmed("sgd", [0.90, 0.905, 0.895])
    r = rank_families(hist, "maximize", incomplete={
        "adamw": {"n_trials": 2, "n_failed": 2, "n_out_of_memory": 2, "max_stop_epoch": 0},
        "nadam": {"n_trials": 3, "n_pruned": 2, "n_failed": 1, "n_out_of_memory": 1,
                  "max_stop_epoch": 2}})
    assert r["verdict"] == "winner"
    assert "every trial ran out of memory on its device, so nothing is known of their value " \
           "on this task: adamw (a smaller training.batch_size, or more of a GPU per trial, " \
           "resources.gpus_per_trial, may let them run)" in r["summary"], r["summary"]
    r = rank_families(hist, "maximize", incomplete={
        "nadam": {"n_trials": 3, "n_pruned": 2, "n_failed": 1, "n_out_of_memory": 1}})
    assert "every trial ran out of memory" not in r["summary"]
    assert "never completed a trial: nadam (3 trials: 2 pruned, 1 out of memory, " \
        "stopped by epoch 0)" in r["summary"]  # how its trials ended, one by one


def test_one_run_gets_the_t_quantile_of_the_noise_estimates_degrees_of_freedom() -> None:
    """The noise is estimated from adam's three runs (2 degrees of freedom): sgd's one run is
    known to within 4.30 sigma, not 1.96 (with 1.96, sgd's interval [0.870, 0.910] cleared
    adam's [0.925, 0.975] and adam was called the winner)."""
    hist = confirmed("adam", [0.950, 0.960, 0.940]) + [trial("sgd", 0.89, 1e-2)]
    r = rank_families(hist, "maximize")
    sgd = by_name(r)["sgd"]["expected"]
    assert r["noise"]["dof"] == 2 and sgd["kind"] == "noise"
    assert sgd["high"] - sgd["low"] == pytest.approx(2 * t975(2) * 0.01)
    assert "4.3 x the task's seed-to-seed noise" in sgd["source"]
    assert r["verdict"] == "tied" and r["leaders"] == ["adam", "sgd"]


def test_an_interval_is_never_shown_past_what_the_metric_can_be() -> None:
    """Three runs at 1.0, 1.0, 0.97: the t-interval reaches 1.04, an accuracy nobody can reach;
    shown cut at 1.0, with the verdict and the sd behind it unchanged."""
    hist = confirmed("adam", [1.0, 1.0, 0.97]) + confirmed("sgd", [0.96, 0.95, 0.97])
    raw, cut = rank_families(hist, "maximize"), rank_families(hist, "maximize",
                                                               metric="val_accuracy")
    assert by_name(raw)["adam"]["expected"]["high"] > 1.0
    assert by_name(cut)["adam"]["expected"]["high"] == 1.0
    assert by_name(cut)["adam"]["expected"]["sd"] == by_name(raw)["adam"]["expected"]["sd"]
    assert (cut["verdict"], cut["leaders"]) == (raw["verdict"], raw["leaders"])
    # An R^2 is bounded above only, a loss below (on the log scale it is positive anyway).
    low = rank_families(confirmed("adam", [0.5, -0.4, 0.2]) + confirmed("sgd", [0.1, 0.2, 0.15]),
                        "maximize", metric="val_r2")
    assert by_name(low)["adam"]["expected"]["low"] < -1


def test_a_family_stopped_early_but_already_as_good_as_a_leader_is_said_to_be_possibly_so() -> None:
    """rmsprop was pruned at epoch 9 of 10 at 0.952: a trial's value is its best so far, so
    it would have ended at least there, above adam's expected 0.95. The answer keeps adam's
    verdict among the families ranked but must not read as if rmsprop were behind it."""
    hist = confirmed("adam", [0.95, 0.951, 0.949]) + confirmed("sgd", [0.90, 0.905, 0.895])
    stopped = {"rmsprop": {"n_trials": 2, "max_stop_epoch": 9, "best_intermediate_value": 0.952},
               "nadam": {"n_trials": 1, "max_stop_epoch": 3, "best_intermediate_value": 0.80},
               "adamw": {"n_trials": 1, "max_stop_epoch": 1, "best_intermediate_value": None}}
    r = rank_families(hist, "maximize", incomplete=stopped)
    assert {n["optimizer"]: n["may_lead"] for n in r["not_ranked"]} == \
        {"adamw": False, "nadam": False, "rmsprop": True}
    assert r["verdict"] == "winner"
    assert "yet already within the 95% interval of adam, the best leader (0.9475 or better), " \
        "so possibly as good as the leaders (a complete run would tell): rmsprop (0.952 by " \
        "epoch 9)" in r["summary"] and "nadam (0.8" not in r["summary"]
    # A loss: stopped at 0.20, at most what it would have ended at, below adam's 0.30.
    losses = confirmed("adam", [0.30, 0.31, 0.29]) + confirmed("sgd", [0.5, 0.52, 0.48])
    r = rank_families(losses, "minimize", incomplete={
        "rmsprop": {"n_trials": 1, "max_stop_epoch": 2, "best_intermediate_value": 0.20}})
    assert r["not_ranked"][0]["may_lead"]


def test_a_family_stopped_early_is_held_to_the_best_leader_not_to_one_tied_by_its_wide_interval(
) -> None:
    """sgd's two runs, 0.5 and 0.9, give it an interval wide enough to tie with adam at 0.95:
    rmsprop, stopped at 0.75, is above sgd's expected 0.70 but far below adam's interval, so it
    is not said to be possibly as good as the leaders (until 2026-12-06 it was)."""
    hist = confirmed("adam", [0.95, 0.951, 0.949]) + confirmed("sgd", [0.5, 0.9])
    stopped = {"rmsprop": {"n_trials": 1, "max_stop_epoch": 1, "best_intermediate_value": 0.75},
               "nadam": {"n_trials": 1, "max_stop_epoch": 4, "best_intermediate_value": 0.948}}
    r = rank_families(hist, "maximize", metric="val_accuracy", incomplete=stopped)
    assert r["verdict"] == "tied" and r["leaders"] == ["adam", "sgd"]
    assert by_name(r)["sgd"]["expected"]["value"] < 0.75
    assert {n["optimizer"]: n["may_lead"] for n in r["not_ranked"]} == \
        {"nadam": True, "rmsprop": False}
    assert "possibly as good as the leaders (a complete run would tell): nadam (0.948 by " \
        "epoch 4)" in r["summary"] and "rmsprop (0.75" not in r["summary"]
    # No noise measured (one run each): the bar is the best leader's value itself.
    r = rank_families(confirmed("adam", [0.95]) + confirmed("sgd", [0.90]), "maximize",
                      incomplete=stopped)
    assert r["verdict"] == "not_separated"
    assert [n["may_lead"] for n in r["not_ranked"]] == [False, False]
    r = rank_families(confirmed("adam", [0.95]) + confirmed("sgd", [0.90]), "maximize",
                      incomplete={"nadam": {"n_trials": 1, "max_stop_epoch": 4,
                                            "best_intermediate_value": 0.95}})
    assert r["not_ranked"][0]["may_lead"]
    assert "yet already as good as adam's value, the best leader's (0.95)" in r["summary"]


def test_a_family_tied_only_by_its_own_wide_interval_is_said_not_to_be_shown_as_good() -> None:
    """sgd's runs at 0.5 and 0.9 tie it with adam at 0.95 (a t-interval over two runs is wide):
    the tie stands, but the answer says sgd is in it only by its own interval's width, not as
    good. rmsprop, with adam's value inside its interval, is tied in the plain sense."""
    hist = (confirmed("adam", [0.95, 0.951, 0.949]) + confirmed("sgd", [0.5, 0.9])
            + confirmed("rmsprop", [0.945, 0.952, 0.948]))
    r = rank_families(hist, "maximize", metric="val_accuracy")
    assert r["verdict"] == "tied" and set(r["leaders"]) == {"adam", "rmsprop", "sgd"}
    assert r["tied_by_width"] == ["sgd"]
    assert "in the tie only because its own interval reaches into adam's, its expected value " \
        "outside adam's interval, so not shown to be as good (more runs would tell): sgd at " \
        "0.7 " in r["summary"]
    # Families whose values sit inside each other's intervals: nothing to add.
    plain = rank_families(confirmed("adam", [0.95, 0.951, 0.949])
                          + confirmed("rmsprop", [0.945, 0.952, 0.948]), "maximize")
    assert plain["verdict"] == "tied" and plain["tied_by_width"] == []
    assert "only because its own interval" not in plain["summary"]
    # A loss: sgd's two runs at 0.2 and 1.0 against adam's 0.30: outside its interval, worse.
    losses = confirmed("adam", [0.30, 0.31, 0.29]) + confirmed("sgd", [0.2, 1.0])
    r = rank_families(losses, "minimize")
    assert r["verdict"] == "tied" and r["tied_by_width"] == ["sgd"]
    # Two such families: said of both; past SUMMARY_NAMES, counted.
    two = rank_families(hist + confirmed("nadam", [0.6, 0.95]), "maximize", metric="val_accuracy")
    assert two["tied_by_width"] == ["nadam", "sgd"]
    assert "in the tie only because their own intervals reach into adam's, their expected " \
        "values outside adam's interval, so not shown to be as good (more runs would tell): " \
        "nadam at 0.775 [0, 1] over 2 runs, sgd at 0.7 " in two["summary"]
    many = rank_families(hist + [t for i, f in enumerate(("nadam", "adamw", "radam", "adamax"))
                                 for t in confirmed(f, [0.6 - i / 100, 0.95])], "maximize")
    assert len(many["tied_by_width"]) == 5 > SUMMARY_NAMES
    assert "(more runs would tell): 5 families (tied_by_width lists them)" in many["summary"]
    # Not "wide": radam's 12 runs give a narrow interval (0.0012), its value just below
    # adam's; its interval reaching adam's is what ties them, and that is what is said (it
    # said "its own interval is wide" of such a family on mlp/digits, over 12 runs).
    vals = [0.942 + d for d in (0.001, -0.001, 0.0005, -0.0005, 0.0015, -0.0015, 0.0, 0.001,
                                -0.001, 0.0002, -0.0002, 0.0)]
    narrow = rank_families(confirmed("adam", [0.95, 0.953, 0.947]) + confirmed("radam", vals),
                           "maximize")
    x = by_name(narrow)["radam"]["expected"]
    assert narrow["tied_by_width"] == ["radam"] and x["n"] == 12 and x["high"] - x["low"] < 0.002
    assert "in the tie only because its own interval reaches into adam's, its expected value " \
        "outside adam's interval" in narrow["summary"] and "is wide" not in narrow["summary"]


def test_minimize_direction() -> None:
    r = rank_families(confirmed("adam", [0.30, 0.31, 0.29]) + confirmed("sgd", [0.5, 0.52, 0.48]),
                      "minimize")
    assert r["ranking"][0]["optimizer"] == "adam" and r["ranking"][0]["rank"] == 1


def test_confirmed_configuration_beats_a_lucky_single_trial() -> None:
    # adam: config A seen once at 0.966; config B confirmed at 0.963 over 4 seeds.
    # Seed noise (from sgd's repeats) is 0.01: A's one run is not better than B beyond noise.
    hist = ([trial("adam", 0.966, 3e-3, key="A")]
            + [trial("adam", v, 1e-3, key="B", confirm=i > 0)
               for i, v in enumerate([0.963, 0.962, 0.964, 0.963])]
            + confirmed("sgd", [0.90, 0.91, 0.92, 0.89, 0.88]))
    adam = by_name(rank_families(hist, "maximize"))["adam"]
    assert adam["params"] == {"adam.lr": 1e-3}  # B, not the lucky A
    assert adam["evidence"]["best_configuration_runs"] == 4
    assert adam["best_trial_value"] == 0.966  # still reported as the best seen


def test_a_single_run_ahead_by_less_than_the_interval_does_not_displace_a_confirmed_one() -> None:
    """`tuner run --model mlp --dataset breast_cancer --trials 24 --epochs 6 --baseline-runs 3`:
    AdaDelta's configuration confirmed over three seeds (0.9737, 0.9649, 0.9649) and another
    run once at 0.9737 (the top value any run reached, 111 of 114 validation examples), pooled
    noise 0.0132. Chosen on mean - sigma/sqrt(n), the single run went above by 0.0003; AdaDelta
    was then shown at 0.9737 over 1 run and listed first in the tie for that value. On the lower
    end of the pooled-noise interval (t x sigma / sqrt(n)), the confirmed configuration is
    AdaDelta's."""
    hist = ([trial("adadelta", v, 2.372, key="C", confirm=i > 0)
             for i, v in enumerate([0.9737, 0.9649, 0.9649])]
            + [trial("adadelta", 0.9737, 6.138, key="one")]
            + confirmed("nadam", [0.9737, 0.9649, 0.9649, 0.9649], lr=0.0207)
            + confirmed("adamw", [0.9386, 0.9649, 0.9211, 0.9211]))
    r = rank_families(hist, "maximize")
    assert r["noise"]["sigma"] == pytest.approx(0.0132, abs=1e-3)
    adadelta = by_name(r)["adadelta"]
    assert adadelta["params"] == {"adadelta.lr": 2.372}
    assert adadelta["expected"]["n"] == 3
    # A run far enough ahead still goes above: more than t x sigma x (1 - 1/sqrt(3)) (0.013).
    far = rank_families(hist[:3] + [trial("adadelta", 0.99, 6.138, key="one")] + hist[4:],
                        "maximize")
    assert by_name(far)["adadelta"]["params"] == {"adadelta.lr": 6.138}


def test_tie_within_noise_broken_by_robustness() -> None:
    # adam is a hair better on average but works at one lr only; rmsprop is good over 2 decades.
    hist = (confirmed("adam", [0.951, 0.955, 0.947], lr=1e-3)
            + [trial("adam", 0.70, 1e-2), trial("adam", 0.60, 1e-4)]
            + confirmed("rmsprop", [0.949, 0.953, 0.945], lr=1e-3)
            + [trial("rmsprop", 0.945, 1e-2), trial("rmsprop", 0.944, 1e-4)])
    r = rank_families(hist, "maximize")
    assert r["ties"] == [["rmsprop", "adam"]]
    assert [e["optimizer"] for e in r["ranking"]] == ["rmsprop", "adam"]
    rms, adam = by_name(r)["rmsprop"], by_name(r)["adam"]
    assert rms["robustness"]["lr_decades"] == pytest.approx(2.0)
    assert adam["robustness"]["lr_decades"] == pytest.approx(0.0)
    # adam's narrow range is measured (two other learning rates did worse); a family that ran
    # one learning rate has none, and says so.
    assert adam["robustness"]["n_learning_rates"] == 3
    assert adam["robustness"]["meaning"] == (  # it said "span 0.00 decades of learning rate"
        "only trials at one learning rate (0.001) came within 0.0191 of the family's best; "
        "trials at others did worse")
    assert rms["robustness"]["meaning"].startswith("trials within 0.0191 of the family's best "
                                                   "span 2.00 decades of learning rate; no trial")
    one = by_name(rank_families(confirmed("adam", [0.95, 0.96], lr=1e-3), "maximize"))["adam"]
    assert one["robustness"]["n_learning_rates"] == 1 and one["robustness"]["meaning"] == \
        "the family's complete trials ran one learning rate: no range was measured"
    assert rms["tied_with"] == ["adam"]
    assert "rmsprop and adam are tied" in r["summary"] and "2.00 decades" in r["summary"]
    assert r["robustness_tolerance"]["relative"] == 0.02


def test_tie_without_a_wider_lr_range_lists_the_better_value_first() -> None:
    # Every family was run near one learning rate only: robustness says nothing, so the cheap but
    # worse momentum must not come first (as it did, on optimizer state alone).
    hist = ([trial("momentum", v, 1e-2, key="m", confirm=i > 0, bytes_=4.0)
             for i, v in enumerate([0.806, 0.78])]
            + confirmed("adamw", [0.955, 0.96], lr=0.08)
            + [trial("adamw", 0.957, 0.09, key="a2")]  # 0.05 decades: not a wider range
            + confirmed("rmsprop", [0.944, 0.946], lr=1e-2))
    r = rank_families(hist, "maximize")
    assert r["verdict"] == "tied" and set(r["ties"][0]) == {"adamw", "rmsprop", "momentum"}
    assert [e["optimizer"] for e in r["ranking"]] == ["adamw", "rmsprop", "momentum"]
    assert "adamw is listed first: the best expected value" in r["summary"]
    assert "decades" not in r["summary"].split(";")[1]


def _spanning(opt: str, values: list[float], decades: float) -> list[HistoryTrial]:
    """A confirmed configuration at lr 1e-3, one more good trial `decades` above it, and a
    worse one at lr 1 (the range is measured: `bounded`)."""
    return confirmed(opt, values) + [trial(opt, values[-1], 1e-3 * 10 ** decades),
                                     trial(opt, 0.5, 1.0)]


def test_a_tie_lists_a_worse_value_first_only_for_half_a_decade_more() -> None:
    # nadam's good learning rates span 0.52 decades, adamw's 0.39: 0.13 decades apart, which
    # says nothing, so the better expected value (adamw) comes first. Binned at whole
    # half-decades, 0.52 crossed a bin that 0.39 did not, and nadam was listed first.
    r = rank_families(_spanning("adamw", [0.976, 0.975, 0.977], 0.39)
                      + _spanning("nadam", [0.973, 0.972, 0.974], 0.52), "maximize")
    assert r["verdict"] == "tied"
    assert [round(by_name(r)[f]["robustness"]["lr_decades"], 2) for f in ("adamw", "nadam")] \
        == [0.39, 0.52]
    assert [e["optimizer"] for e in r["ranking"]] == ["adamw", "nadam"]
    assert "adamw is listed first: the best expected value" in r["summary"]


def test_a_tie_puts_a_wider_range_first_only_against_what_it_is_wider_than() -> None:
    # radam has the best value (range 0.3 decades), rmsprop the widest (0.85: half a
    # decade wider than radam's), momentum in between (0.6: not half a decade wider than
    # radam's). rmsprop comes first, then radam (nothing left is half a decade wider), then
    # momentum. Binned, momentum (one whole half-decade) had gone above radam (none).
    r = rank_families(_spanning("radam", [0.9760, 0.9750, 0.9770], 0.3)
                      + _spanning("momentum", [0.9745, 0.9735, 0.9755], 0.6)
                      + _spanning("rmsprop", [0.9740, 0.9730, 0.9750], 0.85), "maximize")
    assert r["verdict"] == "tied" and len(r["leaders"]) == 3
    assert [e["optimizer"] for e in r["ranking"]] == ["rmsprop", "radam", "momentum"]
    assert ("rmsprop is listed first: its good learning rates span 0.85 decades, wider by half "
            "a decade or more than 0.30 for radam (whose trials outside its range did worse), "
            "whose expected value is better") in r["summary"]


def test_a_wider_range_lifts_a_family_only_above_a_range_measured_narrower() -> None:
    """On a team's churn data: adamw ran twice (lr 1e-3, the baseline, and 1.5e-2, both good:
    1.17 decades), proximal's best configuration three times (0.914) beside one more good
    learning rate (0.71 and 0.90: 0.10 decades), and nothing else. adamw was listed first
    (start_from followed it) for a range 'wider' than proximal's, which is only as narrow as
    the learning rates tried. With a worse trial of proximal's outside its range, its
    narrowness is measured and adamw goes first again."""
    hist = ([trial("adamw", 0.8967, 1e-3), trial("adamw", 0.9033, 0.0147)]
            + [trial("proximal", 0.91, 0.71)] + confirmed("proximal", [0.9133, 0.92, 0.91], 0.9)
            + confirmed("rmsprop", [0.92, 0.91, 0.9167, 0.9067], 0.01))
    r = rank_families(hist, "maximize")
    prox = by_name(r)["proximal"]["robustness"]
    assert r["verdict"] == "tied" and {"adamw", "proximal"} <= set(r["leaders"])
    assert by_name(r)["adamw"]["robustness"]["lr_decades"] > prox["lr_decades"] + 0.5
    assert not prox["bounded"] and "how far it extends is not measured" in prox["meaning"]
    assert r["ranking"][0]["optimizer"] == "proximal", r["ranking"]
    assert "proximal is listed first: the best expected value" in r["summary"]
    measured = rank_families(hist + [trial("proximal", 0.80, 0.05)], "maximize")
    assert by_name(measured)["proximal"]["robustness"]["bounded"]
    from cli.render import lr_decades  # `tuner recommend`'s column: "at least" where unmeasured

    assert lr_decades(prox) == "≥0.10"
    assert lr_decades(by_name(measured)["proximal"]["robustness"]) == "0.10"
    assert measured["ranking"][0]["optimizer"] == "adamw"
    assert ("adamw is listed first: its good learning rates span 1.17 decades, wider by half a "
            "decade or more than 0.10 for proximal (whose trials outside its range did worse), "
            "whose expected value is better") in measured["summary"]


def test_a_wider_range_does_not_lift_a_family_outside_the_best_ones_interval() -> None:
    """rmsprop's range is half a decade wider than radam's, but its expected value (0.9700) is
    below radam's interval (0.9735 to 0.9785): it is in the tie only by its own interval's
    width, not shown to be as good, so it is not listed first (start_from would follow it)."""
    r = rank_families(_spanning("radam", [0.9760, 0.9750, 0.9770], 0.3)
                      + _spanning("rmsprop", [0.9750, 0.9650, 0.9700], 0.85), "maximize")
    assert r["verdict"] == "tied" and r["tied_by_width"] == ["rmsprop"]
    assert by_name(r)["rmsprop"]["robustness"]["lr_decades"] > \
        by_name(r)["radam"]["robustness"]["lr_decades"] + 0.5
    assert [e["optimizer"] for e in r["ranking"]] == ["radam", "rmsprop"]
    assert "radam is listed first: the best expected value" in r["summary"]


def test_runs_to_separate_follows_the_interval_rule() -> None:
    # 2 x t975(n - 1) x sd / sqrt(n) < gap: with gap 0.01 and sd 0.004, n = 4 gives 0.0127 and
    # n = 5 gives 0.0099.
    assert runs_to_separate(0.01, 0.004) == 5
    assert runs_to_separate(0.0, 0.004) is None  # no gap seen: nothing more runs could show
    assert runs_to_separate(0.0001, 0.004) is None  # beyond MAX_PROJECTED_RUNS
    # The projection stops where one job's confirmation stops: a suggested confirm_seeds is one
    # the spec accepts.
    assert SearchSpec.model_fields["confirm_seeds"].metadata[-1].le == MAX_PROJECTED_RUNS - 1
    gap = 2 * t975(MAX_PROJECTED_RUNS - 1) * 0.004 / MAX_PROJECTED_RUNS ** 0.5
    assert runs_to_separate(gap * 1.001, 0.004) == MAX_PROJECTED_RUNS
    assert runs_to_separate(gap * 0.999, 0.004) is None


def test_a_tie_says_how_many_runs_would_tell_its_two_best_apart() -> None:
    def runs(mean: float, n: int) -> list[float]:
        return [mean + (0.004 if i % 2 else -0.004) for i in range(n)]

    hist = confirmed("adam", runs(0.950, 4)) + confirmed("rmsprop", runs(0.942, 4))
    r = rank_families(hist, "maximize")
    assert r["verdict"] == "tied"
    sep = r["to_separate"]
    assert sep["families"] == ["adam", "rmsprop"] and sep["gap"] == pytest.approx(0.008)
    n = sep["runs_each"]
    assert 4 < n <= 20 and sep["confirm_seeds"] == n - 1
    assert f"at least {n} runs of each (search.confirm_seeds: {n - 1})" in r["summary"]
    # The projection holds when the gap is real: with that many runs the tie is a winner.
    more = confirmed("adam", runs(0.950, n)) + confirmed("rmsprop", runs(0.942, n))
    assert rank_families(more, "maximize")["verdict"] == "winner"
    # A winner, or no noise estimate, projects nothing.
    assert rank_families(more, "maximize")["to_separate"] is None
    unrepeated = rank_families([trial("adam", 0.95), trial("sgd", 0.94)], "maximize")
    assert unrepeated["verdict"] == "not_separated" and unrepeated["to_separate"] is None


def test_families_level_on_their_values_without_noise_are_said_level_widest_range_first() -> None:
    """Without a noise estimate, families with the same value (an accuracy of 1.0 on a small
    validation set) are said to be level, not one of them to lead; the one whose trials that
    good span the widest range of learning rates is listed first (what `start_from` takes),
    then the cheapest state. They were listed by name: the answer led with adadelta."""
    hist = ([trial("adadelta", 1.0, 2.4, bytes_=8.0)]
            + [trial("momentum", 1.0, lr, bytes_=4.0) for lr in (0.01, 0.03)]
            + [trial("adamw", 1.0, lr, bytes_=8.0) for lr in (1e-3, 1e-2)]
            + [trial("sgd", 0.9)])
    r = rank_families(hist, "maximize", metric="val_accuracy")
    assert r["verdict"] == "not_separated" and r["noise"]["sigma"] is None
    assert [e["optimizer"] for e in r["ranking"]] == ["adamw", "momentum", "adadelta", "sgd"]
    assert r["summary"].startswith(
        "adamw, momentum and adadelta are level on the values seen (1 each; adamw is listed "
        "first: its trials this good span the widest range of learning rates, 1.00 decades) "
        "and not separated: there is no noise estimate (no configuration was run with several "
        "seeds)")
    # The same range: the cheaper state first, to 3 significant digits (a real model's state
    # has a few scalars beside its buffers: it said "4.00734 bytes"); every leader level: said
    # once.
    r = rank_families([trial("adadelta", 1.0, 2.4, bytes_=8.00734)]
                      + [trial("momentum", 1.0, lr, bytes_=4.00734) for lr in (0.01, 0.03)]
                      + [trial("adamw", 1.0, lr, bytes_=8.00734) for lr in (0.01, 0.03)],
                      "maximize")
    assert [e["optimizer"] for e in r["ranking"]] == ["momentum", "adamw", "adadelta"]
    assert r["summary"].startswith(
        "momentum, adamw and adadelta are level on the values seen (1 each; momentum is listed "
        "first: the same range of learning rates and the least optimizer state (4.01 bytes per "
        "parameter)) and not separated")
    # One value ahead: it leads on the values seen, as before.
    r = rank_families([trial("adam", 0.95), trial("sgd", 0.94)], "maximize")
    assert r["summary"].startswith("adam leads on the values seen, but adam and sgd are not "
                                   "separated")


def test_the_same_seed_run_again_by_another_job_is_one_run_not_two() -> None:
    # Three jobs on a task each start their defaults sweep at the same configurations with
    # training.seed 0: each family's start is repeated, not measured three times. Counted as
    # three seeds, the identical values made zero-width intervals and a "winner" by 0.01.
    hist = [trial(opt, v, key=opt, seed=0, job=j)
            for j in ("j1", "j2", "j3") for opt, v in (("adam", 0.95), ("sgd", 0.94))]
    r = rank_families(hist, "maximize")
    assert r["verdict"] == "not_separated" and r["noise"]["sigma"] is None
    adam = by_name(r)["adam"]
    assert adam["expected"]["kind"] == "spread" and adam["evidence"]["n_trials"] == 3
    assert adam["evidence"]["best_configuration_runs"] == 1
    # With real other seeds it is a repeat: the seeds' spread makes the interval, and a seed
    # recorded twice still counts once.
    hist += [trial("adam", v, key="adam", seed=k, confirm=True) for k, v in
             ((1000, 0.946), (1001, 0.954))] + [trial("adam", 0.946, key="adam", seed=1000,
                                                      confirm=True, job="j2")]
    adam = by_name(rank_families(hist, "maximize"))["adam"]
    assert adam["expected"]["kind"] == "t" and adam["expected"]["n"] == 3
    assert adam["expected"]["high"] - adam["expected"]["low"] > 0.01


def test_identical_runs_are_no_certainty_they_get_the_tasks_noise() -> None:
    """Two seeds of adam both at 0.975 (an accuracy on a small validation set moves in steps):
    their sd of 0 made a zero-width interval, and adam was called the winner over sgd, whose
    three runs spread 0.955-0.965. The identical runs measure the metric's resolution, not the
    noise: they get the task's pooled noise over sqrt(2), and the two are tied."""
    hist = confirmed("adam", [0.975, 0.975]) + confirmed("sgd", [0.96, 0.965, 0.955])
    r = rank_families(hist, "maximize")
    adam = by_name(r)["adam"]["expected"]
    sigma, dof = r["noise"]["sigma"], r["noise"]["dof"]
    # the pool is sgd's spread alone: adam's identical runs add no degrees of freedom to it
    assert dof == 2 and sigma == pytest.approx(0.005)
    assert adam["kind"] == "noise" and adam["n"] == 2 and adam["sd"] == pytest.approx(sigma)
    assert adam["high"] - adam["low"] == pytest.approx(2 * t975(2) * sigma / 2 ** 0.5)
    assert "the mean of 2 runs that all gave the same value" in adam["source"]
    assert r["verdict"] == "tied" and r["leaders"] == ["adam", "sgd"]
    # A configuration with a spread of its own keeps its own t-interval.
    assert by_name(r)["sgd"]["expected"]["kind"] == "t"
    # Far enough apart, identical runs still part from the others: caution, not blindness.
    far = confirmed("adam", [0.995, 0.995]) + confirmed("sgd", [0.90, 0.905, 0.895])
    assert rank_families(far, "maximize")["verdict"] == "winner"


def test_identical_runs_do_not_pull_the_pooled_noise_down() -> None:
    """Eight families at 1.0 over four seeds each (30 validation examples), momentum at 0.9667
    over four, one example below, and one configuration with a spread (0.9667, 1.0). The
    identical runs' 24 degrees of freedom with no spread pulled the pooled noise to 0.0044, and
    momentum was called separated from the eight: the failure `own_spread` had stopped for a
    configuration's own interval, back through the pool. Only runs that differ measure it."""
    fams = ["adam", "nadam", "radam", "adamax", "rmsprop", "adagrad", "adadelta", "sgd"]
    hist = [t for i, f in enumerate(fams) for t in confirmed(f, [1.0] * 4, lr=1e-3 * (i + 1))]
    hist += confirmed("momentum", [0.9667] * 4) + confirmed("nesterov", [0.9667, 1.0])
    r = rank_families(hist, "maximize", metric="val_accuracy")
    assert r["noise"]["dof"] == 1 and r["noise"]["sigma"] == pytest.approx(0.0236, abs=1e-4)
    assert r["verdict"] == "tied" and "momentum" in r["leaders"], r["summary"]
    # The eight at 1.0 on every run are at the metric's ceiling: no number of runs orders them,
    # and the answer says so (it read as a tie the noise might yet part).
    assert r["at_ceiling"] == sorted(fams)
    assert ("adadelta, adagrad, adam, adamax, nadam, radam, rmsprop and sgd scored 1, the best "
            "the metric can give, on every run of their best configurations: this validation "
            "set cannot tell them apart, however many runs are made (a larger one could)"
            ) in r["summary"]
    from tuner.recommend import brief
    assert brief({**r, "method": "direct"}).endswith("; 8 at the metric's best possible value)")
    # nesterov reached 1.0 once of two: not at the ceiling; without a metric, no ceiling known
    assert rank_families(hist, "maximize")["at_ceiling"] == []
    # With every repeat identical there is still no noise, and the answer says why.
    same = rank_families(hist[:8] + confirmed("momentum", [0.9667] * 4), "maximize")
    assert same["noise"]["sigma"] is None and same["noise"]["dof"] == 9
    assert same["verdict"] == "not_separated"
    # ... and its one line counts those at the ceiling, as a tie's does (mlp/wine, 3 trials:
    # "not separated (no noise estimate): rmsprop, adamw", both at 1.0 on every run)
    blind = rank_families(hist[:8] + confirmed("momentum", [0.9667] * 4), "maximize",
                          metric="val_accuracy")
    assert blind["verdict"] == "not_separated" and len(blind["at_ceiling"]) == 2
    assert brief({**blind, "method": "direct"}).endswith(
        "(2 at the metric's best possible value)")
    assert "best possible" not in brief({**same, "method": "direct"})


def test_a_family_ranked_on_the_untuned_baseline_alone_says_so() -> None:
    """mlp/breast_cancer with --baseline: adamw's tuned trial was pruned, and its one complete
    run was the baseline's (AdamW at its defaults with cosine), which ranked adamw fifth of a
    tie: read as tuned AdamW's place. The answer says that place is its defaults'."""
    from tuner.space import baseline_values

    base = {**baseline_values(), "adamw.lr": 1e-3}

    def baseline_run(v: float, seed: int) -> HistoryTrial:
        return HistoryTrial(job_id="j", number=next(_n), optimizer="adamw", schedule="cosine",
                            params=base, value=v, config_key="baseline", seed=seed)

    hist = [baseline_run(0.9561, 0)] + confirmed("lookahead", [0.9825, 0.9737, 0.9649, 0.9737])
    r = rank_families(hist, "maximize", metric="val_accuracy")
    assert r["baseline_only"] == ["adamw"] and by_name(r)["adamw"]["evidence"]["baseline_only"]
    assert by_name(r)["adamw"]["evidence"]["n_baseline_runs"] == 1
    assert by_name(r)["lookahead"]["evidence"]["n_baseline_runs"] == 0
    assert by_name(r)["lookahead"]["evidence"]["baseline_only"] is False
    assert ("; adamw's only configuration run to the end is the untuned baseline, AdamW at lr "
            "1e-3 with cosine decay (its defaults, no tuning): its place is that of its "
            "defaults, and says nothing of adamw tuned: no tuned adamw trial ran at this "
            "budget") in r["summary"], r["summary"]
    # its tuned trials stopped early are said, as a family's that never completed are
    stopped = {"adamw": {"n_trials": 1, "n_pruned": 1, "max_stop_epoch": 3,
                         "best_intermediate_value": 0.9649}}
    pruned = rank_families(hist, "maximize", incomplete=stopped)
    assert ("says nothing of adamw tuned: its tuned trials here were stopped before the end "
            "(1 pruned, by epoch 3, best intermediate value 0.9649)") in pruned["summary"]
    assert [n["optimizer"] for n in pruned["not_ranked"]] == []  # ranked, if by its defaults
    # a tuned adamw run to the end as well: the family was tuned, whichever configuration won
    tuned = rank_families(hist + [trial("adamw", 0.95, 3e-3)], "maximize")
    assert tuned["baseline_only"] == [] and "untuned baseline" not in tuned["summary"]
    # the store passes each family's best trials with its counts: two configurations there
    counted = rank_families(hist, "maximize", counts={"adamw": {
        "n_trials": 2, "n_confirmation_runs": 0, "n_configurations": 2, "n_jobs": 1}})
    assert counted["baseline_only"] == []


def test_the_noise_says_which_configurations_it_was_measured_on() -> None:
    """mlp/wine at 8 epochs: the leaders' three seeds all at 1.0 (no spread), so the pooled
    noise is the untuned baseline's alone (AdamW at 1e-3 with cosine, 0.86 to 0.89), and the
    leaders' intervals borrow an untuned configuration's spread. The answer said "seed-to-seed
    spread of repeated configurations"; it names them, the baseline as such."""
    from tuner.space import baseline_values

    base = {**baseline_values(), "adamw.lr": 1e-3}
    hist = [HistoryTrial(job_id="j", number=next(_n), optimizer="adamw", schedule="cosine",
                         params=base, value=v, config_key="baseline", seed=s)
            for s, v in enumerate([0.8889, 0.8889, 0.8611])]
    hist += [trial("rmsprop", 1.0, seed=s) for s in range(3)]
    r = rank_families(hist, "maximize", metric="val_accuracy")
    assert r["noise"]["dof"] == 2 and r["noise"]["source"] == (
        "seed-to-seed spread of 1 repeated configuration whose runs differ: the untuned baseline")
    assert r["at_ceiling"] == []  # one family at 1.0 is a leader, not a tie the set cannot part
    more = rank_families(hist + confirmed("nadam", [0.97, 0.98])
                         + confirmed("nadam", [0.95, 0.96], lr=1e-2), "maximize")
    assert more["noise"]["source"] == ("seed-to-seed spread of 3 repeated configurations whose "
                                       "runs differ: the untuned baseline and nadam")


def test_a_family_stopped_early_is_placed_against_the_leader_at_the_same_epoch() -> None:
    """A pruner stops a trial against the trials beside it, not against the leader: nadam was
    stopped at epoch 2 at 0.70 while adam's best configuration stood at 0.66-0.69 there (it
    ended at 0.95), so nadam is not shown to be behind it, and the answer says so; sgd, at 0.40
    by epoch 1 against adam's 0.50-0.52, was behind. The runs' curves are read once, those of
    the best leader's best configuration only."""
    hist = confirmed("adam", [0.95, 0.951, 0.949]) + confirmed("rmsprop", [0.90, 0.901, 0.899])
    runs = {(t.job_id, t.number): [(1, 0.50 + 0.01 * i), (2, 0.66 + 0.015 * i), (3, t.value)]
            for i, t in enumerate(t for t in hist if t.optimizer == "adam")}
    asked: list[list[str]] = []

    def curves(trials: Any) -> dict[tuple[str, int], list[tuple[int, float]]]:
        asked.append([t.optimizer for t in trials])
        return {(t.job_id, t.number): runs[(t.job_id, t.number)] for t in trials}

    stopped = {"nadam": {"n_trials": 1, "max_stop_epoch": 2, "best_intermediate_value": 0.70},
               "sgd": {"n_trials": 2, "max_stop_epoch": 1, "best_intermediate_value": 0.40}}
    r = rank_families(hist, "maximize", incomplete=stopped, curves=curves)
    assert asked == [["adam", "adam", "adam"]]
    nadam, sgd = r["not_ranked"]
    assert nadam["leader_at_stop"] == {"optimizer": "adam", "epoch": 2, "low": 0.66,
                                       "high": pytest.approx(0.69), "runs": 3}
    assert nadam["level_at_stop"] is True and sgd["level_at_stop"] is False
    assert sgd["leader_at_stop"]["low"] == 0.50 and not nadam["may_lead"]
    assert (
        "; stopped early while level with or ahead of adam's best configuration at the same "
        "epoch (the "
        "pruner judged them against the trials beside them, not against adam), so not shown to "
        "be behind it: nadam (0.7 by epoch 2, adam 0.66-0.69); 10 families not tried") \
        in r["summary"], r["summary"]
    # None level: said in a few words. For a loss the comparison turns round.
    behind = rank_families(hist, "maximize", incomplete={"sgd": stopped["sgd"]}, curves=curves)
    assert ("; never completed a trial: sgd (2 trials, stopped by epoch 1); each was behind "
            "adam's best configuration at the epoch it was stopped, which does not say where "
            "it would have ended;") in behind["summary"]
    # Two of three behind (the third already within the leader's interval, said above): they.
    from tuner.recommend import _level_note

    at = {"optimizer": "nadam", "epoch": 1, "low": 0.86, "high": 0.87, "runs": 2}
    note = _level_note([{"optimizer": "adadelta", "leader_at_stop": at, "level_at_stop": False},
                        {"optimizer": "adafactor", "leader_at_stop": at, "level_at_stop": False},
                        {"optimizer": "radam", "leader_at_stop": at, "level_at_stop": True,
                         "may_lead": True}])
    assert note == ("; adadelta and adafactor were behind nadam's best configuration at the "
                    "epochs they were stopped, which does not say where they would have ended")
    # ... and one within that interval though behind at its epoch: not "each was behind"
    note = _level_note([{"optimizer": "adafactor", "leader_at_stop": at, "level_at_stop": False},
                        {"optimizer": "rmsprop", "leader_at_stop": at, "level_at_stop": False,
                         "may_lead": True}])
    assert note == ("; adafactor was behind nadam's best configuration at the epoch it was "
                    "stopped, which does not say where it would have ended")
    loss = [HistoryTrial(**{**t.__dict__, "value": 1 - t.value}) for t in hist]
    runs.update({(t.job_id, t.number): [(e, 1 - v) for e, v in runs[(t.job_id, t.number)]]
                 for t in loss if t.optimizer == "adam"})
    r = rank_families(loss, "minimize", incomplete={
        "nadam": {**stopped["nadam"], "best_intermediate_value": 0.30}}, curves=curves)
    assert r["not_ranked"][0]["level_at_stop"] is True
    # `tuner recommend` says it on the family's line
    from cli.render import _at_stop

    assert _at_stop(nadam) == (": level with or ahead of adam's best configuration then "
                               "(0.66-0.69), so not "
                               "shown to be behind it")
    assert _at_stop(sgd) == "; adam's best configuration was at 0.5-0.52 by then"
    # Without curves (the corpus, a transfer) nothing is said of it.
    plain = rank_families(hist, "maximize", incomplete=stopped)
    assert "leader_at_stop" not in plain["not_ranked"][0] and "level" not in plain["summary"]


def test_when_every_repeat_gave_the_same_value_no_noise_is_claimed() -> None:
    """Every repeated configuration gave one value on every seed (1.0 and 0.967: one validation
    example of 30): a pooled noise of 0 made every difference certain and called a winner by
    one example. No spread was measured, so nothing is separated, and the answer says why."""
    hist = confirmed("adam", [1.0, 1.0, 1.0]) + confirmed("sgd", [0.9667] * 3)
    r = rank_families(hist, "maximize")
    assert r["noise"]["sigma"] is None and r["noise"]["dof"] == 4
    assert r["noise"]["source"].startswith("none measured: every configuration run with several "
                                           "seeds gave the same value on each (4 repeats)")
    assert r["verdict"] == "not_separated" and "is best" not in r["summary"]
    assert "there is no noise estimate (every configuration run with several seeds gave the " \
        "same value on each, which measures the metric's resolution, not the noise)" in r["summary"]
    assert all(e["expected"]["kind"] == "spread" for e in r["ranking"])


def test_a_family_below_the_leaders_tried_with_one_configuration_is_said_to_be_barely_tuned() -> None:
    """adam was tuned over four configurations, sgd ran one (its sweep start, confirmed): adam is
    the winner over sgd's one configuration, and the answer says sgd was barely tuned, not that
    sgd is worse tuned. rmsprop completed one configuration but five more were stopped early:
    tried six times, it is not."""
    hist = (confirmed("adam", [0.95, 0.951, 0.949]) + [trial("adam", v, lr) for v, lr in
                                                       ((0.94, 2e-3), (0.93, 5e-4), (0.90, 1e-2))]
            + confirmed("sgd", [0.80, 0.801, 0.799]) + confirmed("rmsprop", [0.85, 0.851, 0.849]))
    r = rank_families(hist, "maximize", incomplete={"rmsprop": {"n_trials": 5}})
    assert r["verdict"] == "winner" and r["leaders"] == ["adam"]
    assert r["under_tuned"] == ["sgd"]
    assert [by_name(r)[f]["evidence"]["configurations_tried"] for f in ("adam", "rmsprop", "sgd")] \
        == [4, 6, 1]
    assert "below the leaders but barely tuned (configurations tried, against 4 for adam, so " \
        "they may do better tuned): sgd (1)" in r["summary"]
    # ... also when some family never completed a trial (nearly every job): that note replaced
    # this one, so the answer never said it.
    stopped = {"rmsprop": {"n_trials": 5}, "nadam": {"n_trials": 1, "max_stop_epoch": 1}}
    r = rank_families(hist, "maximize", incomplete=stopped)
    assert r["under_tuned"] == ["sgd"] and [n["optimizer"] for n in r["not_ranked"]] == ["nadam"]
    assert "below the leaders but barely tuned (configurations tried, against 4 for adam, so " \
        "they may do better tuned): sgd (1); never completed a trial: nadam (1 trial, stopped " \
        "by epoch 1)" in r["summary"], r["summary"]
    # Nobody was tuned more than the others: nothing to qualify.
    flat = confirmed("adam", [0.95, 0.951, 0.949]) + confirmed("sgd", [0.80, 0.801, 0.799])
    r = rank_families(flat, "maximize")
    assert r["under_tuned"] == [] and "barely tuned" not in r["summary"]


def test_gap_larger_than_noise_is_not_a_tie() -> None:
    hist = confirmed("adam", [0.95, 0.951, 0.949]) + confirmed("rmsprop", [0.93, 0.931, 0.929])
    r = rank_families(hist, "maximize")
    assert r["ties"] == [] and r["ranking"][0]["tied_with"] == []


def test_without_repeats_the_interval_is_the_spread_of_top_trials() -> None:
    hist = [trial("adam", v, lr) for v, lr in [(0.9, 1e-3), (0.88, 2e-3), (0.7, 1e-1),
                                                (0.85, 5e-4)]]
    r = rank_families(hist, "maximize")
    e = r["ranking"][0]
    assert r["noise"]["sigma"] is None and "confirm_top_k" in r["noise"]["source"]
    assert e["expected"]["low"] == 0.85 and e["expected"]["high"] == 0.9
    assert "not a confidence interval" in e["expected"]["source"]
    assert e["cost"] == {"state_bytes_per_param": 8.0, "seconds_per_epoch": 0.1}


def _profile(tid: int | None, model: str = "mlp", kind: str = "classification",
             n_params: int = 10_000, n_train: int = 1400, shape: tuple[int, ...] = (64,),
             classes: int | None = 10, depth: int = 2) -> TaskProfile:
    return TaskProfile(task_id=tid, model=model, kind=kind, n_params=n_params, depth=depth,
                       input_shape=shape, n_train=n_train, n_classes=classes, batch_size=64,
                       epochs=10)


def test_transfer_picks_the_constructed_nearest_task() -> None:
    query = _profile(None, n_params=9_000, n_train=1200)
    near = _profile(1, n_params=10_000, n_train=1400)
    bigger = _profile(2, n_params=2_000_000, n_train=60_000, shape=(1, 28, 28))
    other_model = _profile(3, model="transformer", n_params=9_000, n_train=1200)
    regression = _profile(4, kind="regression", classes=None, n_params=9_000, n_train=1200)
    found = similar_tasks(query, [bigger, regression, other_model, near])
    assert [f["task_id"] for f in found][:2] == [1, 3]
    assert found[0]["similarity"] > found[1]["similarity"] > 0.25
    assert all(f["task_id"] != 4 for f in found)  # another kind is too far
    assert "model" in found[1]["explanation"]


def test_a_transfer_draws_on_corpus_tasks_nearer_than_the_teams() -> None:
    """A team task just similar enough used to shut the reference corpus out, however much
    nearer the corpus's tasks were (mlp/wine at 0.29 answered for mlp/breast_cancer, where the
    corpus held mlp/breast_cancer itself at 0.67). The corpus's tasks nearer than every task of
    the team's are used beside them; the team's own come first among equally near ones, and
    its nearest is always used."""
    query = _profile(None, n_params=9_000, n_train=1200)
    same = _profile(10, n_params=9_000, n_train=1200)
    close = _profile(11, n_params=10_000, n_train=1400)
    team_far = _profile(1, n_params=20_000, n_train=500, classes=3)  # similarity 0.29
    from_corpus, from_team = transfer_neighbours(query, [team_far], [same, close])
    assert [n["task_id"] for n in from_corpus] == [10, 11]
    assert [n["task_id"] for n in from_team] == [1]
    assert from_corpus[-1]["similarity"] > from_team[0]["similarity"] >= 0.25
    # A team task as near as the corpus's: the team's alone.
    team_same = _profile(2, n_params=9_000, n_train=1200)
    assert transfer_neighbours(query, [team_same, team_far], [same, close]) == (
        [], similar_tasks(query, [team_same, team_far]))
    # Three corpus tasks nearer: two of them and the team's nearest.
    from_corpus, from_team = transfer_neighbours(
        query, [team_far], [same, close, _profile(12, n_params=9_500, n_train=1300)])
    assert len(from_corpus) == 2 and [n["task_id"] for n in from_team] == [1]
    # No team task near enough: the corpus's, down to its lower bar.
    assert transfer_neighbours(query, [], [same, close]) == (
        similar_tasks(query, [same, close]), [])


def test_a_family_a_similar_task_did_not_rank_is_not_scored_its_worst_there() -> None:
    """A family that a similar task never ranked (never tried there, or pruned there before
    completing) scored 0 there, as its worst: an answer drawn partly from a team task where 4 of
    14 families completed put those 4 first. It scores as that task's average family; one
    whose every trial diverged there, as its worst; one no task ranked is named as unknown."""
    wide = rank_families(confirmed("adam", [0.90, 0.901]) + confirmed("sgd", [0.70, 0.701])
                         + confirmed("rmsprop", [0.80, 0.801]), "maximize")
    narrow = rank_families(confirmed("sgd", [0.95, 0.951]) + confirmed("adam", [0.60, 0.601]),
                           "maximize", incomplete={"nadam": {"n_trials": 2, "n_diverged": 2}})
    out = transfer_ranking([({"task_id": 1, "similarity": 0.5}, wide),
                            ({"task_id": 2, "similarity": 0.5}, narrow)])
    scores = {r["optimizer"]: r["score"] for r in out["ranking"]}
    # rmsprop: 0.5 on the first; not tried on the second, so the average family there (sgd 1,
    # adam 0, nadam diverged 0: 1/3). Scored 0 there, it would have been 0.25.
    assert scores["rmsprop"] == pytest.approx((0.5 + 1 / 3) / 2, abs=1e-4)
    assert {r["optimizer"]: r["coverage"] for r in out["ranking"]}["rmsprop"] == 0.5
    assert scores["adam"] == scores["sgd"] == pytest.approx(0.5)
    assert "nadam" not in scores and "nadam" in out["not_tried"]
    assert set(out["not_tried"]) == {"adamw", "adamax", "radam", "nadam", "adagrad", "adadelta",
                                     "adafactor", "lookahead", "momentum", "nesterov", "proximal"}
    assert out["summary"].endswith("; 11 families have no complete trial on any of these "
                                   "tasks, so nothing is predicted of them (not_tried lists "
                                   "them)"), out["summary"]
    # nadam diverged on every trial of the second task: its worst there, so below rmsprop
    # once it is ranked on the first.
    wide2 = rank_families(confirmed("adam", [0.90, 0.901]) + confirmed("sgd", [0.70, 0.701])
                          + confirmed("nadam", [0.80, 0.801]), "maximize")
    out2 = transfer_ranking([({"task_id": 1, "similarity": 0.5}, wide2),
                             ({"task_id": 2, "similarity": 0.5}, narrow)])
    assert {r["optimizer"]: r["score"] for r in out2["ranking"]}["nadam"] == pytest.approx(0.25)


def test_transfer_ranking_weights_by_similarity() -> None:
    a = rank_families(confirmed("adam", [0.9, 0.901]) + confirmed("sgd", [0.8, 0.801]), "maximize")
    b = rank_families(confirmed("sgd", [0.7, 0.701]) + confirmed("adam", [0.6, 0.601]), "maximize")
    out = transfer_ranking([({"task_id": 1, "similarity": 0.9}, a),
                            ({"task_id": 2, "similarity": 0.3}, b)])
    assert [r["optimizer"] for r in out["ranking"]] == ["adam", "sgd"]
    assert out["ranking"][0]["source_task"]["task_id"] == 1
    assert out["ranking"][0]["score"] == pytest.approx(0.75)
    # It says what it is: a prediction, never a measurement of the task asked about.
    assert out["summary"].startswith("adam scores best over the 2 most similar tasks;")
    assert ("; a prediction from similar tasks, not a measurement of this task at this budget: "
            "a job on it measures the families; 12 families have no complete trial") \
        in out["summary"]


def test_a_family_from_equally_similar_splits_starts_from_its_most_confirmed_configuration(
        ) -> None:
    """The task's other data splits are equally similar: a family's configuration came from the
    first listed, whatever its evidence. It comes from the split where its best configuration
    ran over the most seeds (here split 2's adam at lr 1e-2, over 4 runs, not split 1's lucky
    single run at lr 3e-3)."""
    one = rank_families([trial("adam", 0.95, 3e-3)] + confirmed("sgd", [0.8, 0.801]), "maximize")
    four = rank_families(confirmed("adam", [0.93, 0.931, 0.929, 0.93], lr=1e-2)
                         + confirmed("sgd", [0.8, 0.801]), "maximize")
    split = {"similarity": 1.0}
    for order in ([(one, 1), (four, 2)], [(four, 2), (one, 1)]):
        out = transfer_ranking([({**split, "task_id": k}, r) for r, k in order], splits=[1, 2])
        adam = out["ranking"][0]
        assert adam["optimizer"] == "adam" and adam["params"] == {"adam.lr": 1e-2}
        assert adam["source_task"]["task_id"] == 2
    # More similar still wins over more runs (another task, not a split).
    out = transfer_ranking([({"task_id": 1, "similarity": 0.9}, one),
                            ({"task_id": 2, "similarity": 0.5}, four)])
    assert out["ranking"][0]["params"] == {"adam.lr": 3e-3}


def test_a_transferred_tie_is_not_called_one_familys_best() -> None:
    """A family tied on a similar task scores its tie's mean there, so the families of a tie
    share one score; the answer said "rmsprop scores best over the 3 most similar task(s)" of
    the first of ten families with the same score. It says they share it, and why the first is
    listed first; long lists are counted."""
    tie = rank_families(confirmed("adam", [0.90, 0.92]) + confirmed("nadam", [0.91, 0.89])
                        + confirmed("sgd", [0.70, 0.701]), "maximize")
    assert tie["ties"] and {"adam", "nadam"} <= set(tie["leaders"]), tie["ties"]
    out = transfer_ranking([({"task_id": 1, "similarity": 0.9}, tie)])
    scores = {r["optimizer"]: r["score"] for r in out["ranking"]}
    assert scores["adam"] == scores["nadam"] > scores["sgd"]
    first = out["ranking"][0]["optimizer"]
    assert out["summary"].startswith(
        f"adam and nadam share the best score over the most similar task (a family tied "
        f"on a task scores its tie's mean there); {first} is listed first for its own values "
        f"there; on the nearest where it ran it is tied with "), out["summary"]
    many = ["adam", "nadam", "adamw", "radam", "adamax", "rmsprop"]
    wide = rank_families([t for i, f in enumerate(many)
                          for t in confirmed(f, [0.90 + 0.001 * i, 0.92 - 0.001 * i])], "maximize")
    said = transfer_ranking([({"task_id": 1, "similarity": 0.9}, wide)])["summary"]
    assert " and 2 more share the best score" in said and " and 1 more (within the noise)" in said


def test_a_transferred_level_is_not_called_a_tie_within_the_noise() -> None:
    """Families grouped on a similar task with no noise estimate there (`not_separated`: one
    run each, level on the values seen) were told as "tied ... (within the noise)", a noise
    nobody measured. They are said to be level on the values seen there."""
    level = rank_families([trial("adam", 0.9, 1e-3), trial("nadam", 0.9, 2e-3),
                           trial("sgd", 0.7, 1e-2)], "maximize")
    assert level["verdict"] == "not_separated"
    out = transfer_ranking([({"task_id": 1, "similarity": 0.9}, level)])
    other = out["ranking"][1]["optimizer"]
    assert out["ranking"][0]["source_task"]["verdict_there"] == "not_separated"
    assert (f"on the nearest where it ran it is level with {other} on the values seen (not "
            f"separated: no noise estimate there)") in out["summary"], out["summary"]
    assert "within the noise" not in out["summary"]


def test_without_noise_estimate_no_winner_is_claimed() -> None:
    # The reported case: nadam's one lucky trial, rmsprop's better top three, no repeats at all.
    hist = ([trial("nadam", 0.9778, 2e-3), trial("nadam", 0.9667, 1e-3), trial("nadam", 0.9556, 5e-4)]
            + [trial("rmsprop", v, lr) for v, lr in [(0.9722, 1e-3), (0.9722, 2e-3),
                                                      (0.9667, 5e-4)]]
            + [trial("sgd", 0.44, 1e-2)])
    r = rank_families(hist, "maximize")
    # Ranked by the value shown (the best configuration's run), and no claim beyond it.
    assert [e["optimizer"] for e in r["ranking"]][:2] == ["nadam", "rmsprop"]
    assert all(e["value"] == e["expected"]["value"] for e in r["ranking"])
    assert all(e["expected"]["kind"] == "spread" for e in r["ranking"])
    assert r["verdict"] == "not_separated" and r["leaders"] == ["nadam", "rmsprop"]
    assert "best" not in r["summary"] and "not separated" in r["summary"]
    assert "no noise estimate" in r["summary"]
    assert r["ranking"][-1]["optimizer"] == "sgd"


def test_known_noise_never_yields_a_winner_inside_the_noise() -> None:
    import random

    for seed in range(25):
        rng = random.Random(seed)
        # Two families with the same true value and seed noise 0.01, four seeds each.
        hist = (confirmed("adam", [0.9 + rng.gauss(0, 0.01) for _ in range(4)])
                + confirmed("rmsprop", [0.9 + rng.gauss(0, 0.01) for _ in range(4)]))
        r = rank_families(hist, "maximize")
        assert r["verdict"] == "tied", (seed, r["summary"])
        assert r["ties"] == [r["leaders"]] and "tied" in r["summary"]
        assert "is best" not in r["summary"]
        # The same noise with a true gap of 10 sigma: a winner, said plainly.
        hist = (confirmed("adam", [0.95 + rng.gauss(0, 0.01) for _ in range(4)])
                + confirmed("rmsprop", [0.85 + rng.gauss(0, 0.01) for _ in range(4)]))
        r = rank_families(hist, "maximize")
        assert r["verdict"] == "winner" and r["ties"] == [] and r["leaders"] == ["adam"]
        assert r["summary"].startswith("adam is best")


def test_a_family_ranked_lower_whose_interval_reaches_the_leader_is_tied_with_it() -> None:
    """sgd is clearly below adam, but rmsprop's two runs (0.90, 0.94) leave its interval wide
    enough to reach adam's: rmsprop may be as good as adam, so adam is no winner. (Grouping
    only neighbours in value order, rmsprop ranked third and adam was called the winner.)"""
    hist = (confirmed("adam", [0.950, 0.951, 0.949, 0.950])
            + confirmed("sgd", [0.930, 0.931, 0.929, 0.930])
            + confirmed("rmsprop", [0.90, 0.94]))
    r = rank_families(hist, "maximize")
    assert r["verdict"] == "tied" and r["leaders"] == ["adam", "rmsprop"]
    assert r["ties"] == [["adam", "rmsprop"]]
    assert [(e["optimizer"], e["rank"]) for e in r["ranking"]] == [("adam", 1), ("rmsprop", 2),
                                                                    ("sgd", 3)]
    assert by_name(r)["sgd"]["tied_with"] == [] and "is best" not in r["summary"]
    # With rmsprop's runs as tight as the others', adam is clear of every family: a winner.
    hist = hist[:-2] + confirmed("rmsprop", [0.919, 0.921, 0.920, 0.920])
    r = rank_families(hist, "maximize")
    assert r["verdict"] == "winner" and r["leaders"] == ["adam"]
    assert "clear of every other family's (ahead of sgd, the runner-up" in r["summary"]


def test_a_loss_is_ranked_on_its_logarithm() -> None:
    """The reference corpus's linear-quadratic-c10 runs: rmsprop's losses are all ~6e-7,
    adamax's 0.04-0.18. In the loss's units adamax's t-interval reached below 0 (an impossible
    loss) and so rmsprop's, and the two were tied; on the log scale rmsprop is clear of both."""
    rmsprop = [5.908e-07, 6.109e-07, 6.125e-07, 6.102e-07]
    adamax = [0.0356, 0.0526, 0.1832, 0.1037]
    adam = [0.0509, 0.0680, 0.0799, 0.2578]
    hist = confirmed("rmsprop", rmsprop) + confirmed("adamax", adamax) + confirmed("adam", adam)
    r = rank_families(hist, "minimize")
    assert r["noise"]["scale"] == "log" and "log scale" in r["noise"]["source"]
    assert r["verdict"] == "winner" and r["leaders"] == ["rmsprop"]
    x = by_name(r)["adamax"]["expected"]
    assert 0 < x["low"] < min(adamax) and x["high"] > max(adamax) * 0.9
    assert "logarithm" in x["source"]
    # The value shown is the geometric mean of the runs, in the loss's units.
    geo = (0.0356 * 0.0526 * 0.1832 * 0.1037) ** 0.25
    assert x["value"] == pytest.approx(geo) and by_name(r)["adamax"]["value"] == pytest.approx(geo)
    # Robustness on the log scale is relative alone: 1e-5 is not "within 2%" of 6e-7.
    near = hist + [trial("rmsprop", 1e-5, lr=1e-2), trial("rmsprop", 5.95e-7, lr=3e-3)]
    rob = by_name(rank_families(near, "minimize"))["rmsprop"]["robustness"]
    assert rob["lr_range"] == [1e-3, 3e-3] and rob["tolerance"] < 2e-8
    # The same runs as accuracies (maximised) stay on the metric's own scale.
    assert rank_families(hist, "maximize")["noise"]["scale"] == "linear"
    # A loss with a value that is not positive (a custom loss can be negative): linear.
    neg = hist + confirmed("sgd", [-0.01, 0.02], lr=0.1)
    assert rank_families(neg, "minimize")["noise"]["scale"] == "linear"


def test_a_tie_of_losses_is_projected_in_factors() -> None:
    hist = confirmed("adam", [0.10, 0.12, 0.11]) + confirmed("nadam", [0.105, 0.125, 0.118])
    r = rank_families(hist, "minimize")
    sep = r["to_separate"]
    assert r["verdict"] == "tied" and sep["scale"] == "log"
    assert sep["families"] == ["adam", "nadam"]
    # in factors and percent, to four digits: three said "a factor of 1" of a gap of 0.2%
    gap = math.exp(sep["gap"])
    assert f"gap seen between adam and nadam (a factor of {gap:.4g} ({100 * (gap - 1):.2g}%))" \
        in sep["meaning"], sep["meaning"]
    assert as_factor(0.002) == "a factor of 1.002 (0.2%)"
    assert as_factor(math.log(2.5)) == "a factor of 2.5 (150%)"


def test_ties_come_from_interval_kinds_and_bounds() -> None:
    hist = confirmed("adam", [0.95, 0.951, 0.949]) + confirmed("rmsprop", [0.93, 0.931, 0.929])
    r = rank_families(hist, "maximize")
    adam, rmsprop = r["ranking"]
    assert adam["expected"]["kind"] == "t" and r["verdict"] == "winner"
    # The decision reads the interval's kind and bounds, never its prose.
    adam["expected"]["source"] = "not a confidence interval"
    assert separated(adam, rmsprop)
    adam["expected"]["kind"] = "spread"
    assert not separated(adam, rmsprop)


def test_other_budgets_are_not_repeats() -> None:
    # The reported case: the same configurations at 5 and at 2 epochs, both seed 0.
    hist = [trial("sgd", 0.44, setting=("t1", 5, 64)), trial("sgd", 0.23, setting=("t1", 2, 64)),
            trial("rmsprop", 0.961, setting=("t1", 5, 64)),
            trial("rmsprop", 0.90, setting=("t1", 2, 64))]
    r = rank_families(hist, "maximize")
    assert r["noise"]["sigma"] is None  # nothing was pooled as a repeat
    assert all(e["expected"]["low"] >= 0 and e["expected"]["high"] <= 1 for e in r["ranking"])
    assert r["ranking"][0]["optimizer"] == "rmsprop"


def test_families_without_a_complete_trial_are_listed_after_the_ranked_ones() -> None:
    r = rank_families(confirmed("adam", [0.95, 0.951]), "maximize",
                      incomplete={"sgd": {"n_trials": 3, "n_pruned": 3, "n_diverged": 0,
                                          "n_failed": 0, "max_stop_epoch": 1,
                                          "best_intermediate_value": 0.58},
                                  "adam": {"n_trials": 2, "max_stop_epoch": 1}})
    assert [e["optimizer"] for e in r["ranking"]] == ["adam"]
    (sgd,) = r["not_ranked"]
    assert sgd["optimizer"] == "sgd" and sgd["rank"] is None
    assert sgd["evidence"]["best_intermediate_value"] == 0.58
    assert "sgd (3 trials: 3 pruned, stopped by epoch 1)" in r["summary"]
    assert r["verdict"] == "one_family"


def test_transfer_ranking_does_not_separate_families_tied_at_the_source() -> None:
    tied = rank_families(confirmed("adam", [0.9, 0.91, 0.905]) + confirmed("sgd", [0.9, 0.905, 0.91]),
                         "maximize")
    assert tied["verdict"] == "tied"
    out = transfer_ranking([({"task_id": 1, "similarity": 0.9}, tied)])
    scores = {r["optimizer"]: r["score"] for r in out["ranking"]}
    assert scores["adam"] == scores["sgd"]
    assert "tied with" in out["summary"]


def test_learning_rate_moves_with_batch_size() -> None:
    params, f = scale_lr_for_batch("momentum", {"momentum.lr": 0.1, "momentum.momentum": 0.9},
                                   64, 16)
    assert f == 0.25 and params == {"momentum.lr": 0.025, "momentum.momentum": 0.9}
    params, f = scale_lr_for_batch("adam", {"adam.lr": 1e-3}, 64, 256)
    assert f == 2.0 and params["adam.lr"] == pytest.approx(2e-3)
    params, f = scale_lr_for_batch("lookahead", {"lookahead.base": "sgd", "lookahead.sgd.lr": 0.1},
                                   32, 64)
    assert f == 2.0 and params["lookahead.sgd.lr"] == pytest.approx(0.2)
    assert scale_lr_for_batch("adam", {"adam.lr": 1e-3}, 64, 64) == ({"adam.lr": 1e-3}, 1.0)


def test_an_answer_in_a_few_words() -> None:
    """`brief`: what `tuner tasks` and /ui/tasks say of each task's answer."""
    from tuner.recommend import brief

    ranked = [{"optimizer": f, "expected": {"value": v}} for f, v in
              (("adamw", 0.9), ("nadam", 0.89), ("sgd", 0.5))]
    direct = {"method": "direct", "ranking": ranked}
    # On one data split, said so: another split's search may find another family best.
    assert brief({**direct, "verdict": "winner", "leaders": ["adamw"]}) == \
        "adamw is best on one data split: clear of every other family"
    # ... of those ranked, where some family never completed a trial or was never tried
    for unknown in ({"not_ranked": [{"optimizer": "adam"}]}, {"not_tried": ["lion"]}):
        assert brief({**direct, **unknown, "verdict": "winner", "leaders": ["adamw"]}) == \
            "adamw is best of 3 ranked on one data split: clear of the others"
    # Searched on several, the splits say where it stands instead.
    several = {"brief": "on 2 data splits, leading on all: adamw"}
    assert brief({**direct, "verdict": "winner", "leaders": ["adamw"], "splits": several}) == \
        "adamw is best: clear of every other family; on 2 data splits, leading on all: adamw"
    assert brief({**direct, "verdict": "tied", "leaders": ["adamw", "nadam"]}) == \
        "tied within the noise: adamw, nadam (2 of 3 ranked)"
    # leaders in the tie only by their intervals reaching the best one's are counted apart
    assert brief({**direct, "verdict": "tied", "leaders": ["adamw", "nadam", "sgd"],
                  "tied_by_width": ["sgd"]}) == \
        "tied within the noise: adamw, nadam, sgd (3 of 3 ranked; 1 only by interval overlap)"
    assert brief({**direct, "verdict": "tied", "leaders": ["adamw", "nadam", "sgd"],
                  "tied_by_width": ["nadam", "sgd"]}).endswith(
        "(3 of 3 ranked; 2 only by interval overlap)")
    # families tried that never completed are counted; one already within the best leader's
    # interval when stopped may be as good, whatever the verdict (mlp on a diabetes table: the
    # line read "3 of 3 ranked" where 11 never completed, adagrad among them at 0.540)
    stopped = {"not_ranked": [{"optimizer": "adam", "may_lead": True},
                              {"optimizer": "sgd", "may_lead": False}]}
    assert brief({**direct, **stopped, "verdict": "tied", "leaders": ["adamw", "nadam"]}) == (
        "tied within the noise: adamw, nadam (2 of 3 ranked; 2 more never completed a trial); "
        "stopped early yet possibly as good: adam")
    assert brief({**direct, **stopped, "verdict": "winner", "leaders": ["adamw"]}) == (
        "adamw is best of 3 ranked on one data split: clear of the others; stopped early yet "
        "possibly as good: adam")
    assert "possibly" not in brief({"method": "transfer", "ranking": ranked, **stopped})
    assert brief({**direct, "verdict": "one_family", "leaders": ["adamw"]}) == \
        "only adamw completed a trial"
    assert brief({**direct, "verdict": "not_separated", "leaders": ["adamw", "nadam"]}) == \
        "not separated (no noise estimate): adamw, nadam"
    assert brief({"method": "direct", "ranking": [], "verdict": None}) == "no complete trial yet"
    predicted = {"method": "transfer", "ranking": [{"optimizer": f} for f in
                                                   ("nadam", "adamw", "lion", "sgd")]}
    assert brief(predicted) == "not measured here; predicted order: nadam, adamw, lion, …"
    assert brief({"method": "transfer", "ranking": []}) == "no answer yet"
    # a prior answer's order is the catalogue's: it predicts nothing (it said "predicted order:
    # sgd, momentum, nesterov, …" of literature defaults)
    for ranking in ([], [{"optimizer": f} for f in ("sgd", "momentum", "nesterov", "adam")]):
        assert brief({"method": "prior", "ranking": ranking}) == \
            "nothing measured on this task or a similar one yet"


def _baseline(values: list[float], lr: float = 1e-3) -> list[HistoryTrial]:
    """Runs of AdamW + cosine at its defaults (lr 1e-3: the baseline), one seed each."""
    from tuner.space import baseline_values

    return [HistoryTrial(job_id="j1", number=next(_n), optimizer="adamw", schedule="cosine",
                         params={**baseline_values(), "adamw.lr": lr}, value=v,
                         config_key=f"adamw-cosine-{lr}", seed=i) for i, v in enumerate(values)]


def test_the_leader_is_held_to_the_untuned_default_by_the_rule_that_separates_families() -> None:
    """AdamW at lr 1e-3 with cosine (what most teams train with untuned): the answer says
    whether its leader beats it outside the noise, is level within it, or is behind; and says
    nothing when it was not run. Another AdamW configuration (lr 2e-3) is not the baseline."""
    from tuner.recommend import versus_baseline

    adam = confirmed("adam", [0.97, 0.975, 0.972])
    ranked = rank_families(adam + confirmed("sgd", [0.90, 0.91]), "maximize")
    absent = versus_baseline(adam + _baseline([0.99], lr=2e-3), ranked)
    assert (absent["verdict"], absent["expected"], absent["gain"]) == ("not_run", None, None)
    assert "was not run on this task at this budget" in absent["summary"]
    # ... and how to run it, in the spec or on the command line (it named the spec's field only)
    assert absent["summary"].endswith("(`search.baseline: true` in the spec, or `--baseline`, "
                                      "runs it)"), absent["summary"]

    beaten = versus_baseline(_baseline([0.90, 0.905, 0.91]) + _baseline([0.99], lr=2e-3), ranked)
    assert beaten["verdict"] == "beaten" and beaten["expected"]["n"] == 3
    assert beaten["expected"]["kind"] == "t" and beaten["gain"] == pytest.approx(0.9723 - 0.905, abs=1e-4)
    assert beaten["summary"].startswith("following the answer beats AdamW at lr 1e-3") and \
        beaten["summary"].endswith("outside the noise")  # its own spread: nothing borrowed
    # One run of the baseline: judged with the task's pooled noise, and the answer says that the
    # interval is borrowed from tuned configurations (an untuned one can vary far more).
    once = versus_baseline(_baseline([0.90]), ranked)
    assert once["verdict"] == "beaten" and once["expected"]["kind"] == "noise"
    assert once["summary"].endswith(
        "outside the noise (the baseline ran once, so its interval borrows the task's "
        "seed-to-seed noise, measured on repeated tuned configurations; an untuned one can "
        "vary far more: search.baseline_runs: 5 measures its own)")
    level = versus_baseline(_baseline([0.965, 0.972, 0.968]), ranked)
    assert level["verdict"] == "within_noise" and "not shown to beat it" in level["summary"]
    behind = versus_baseline(_baseline([0.985, 0.99, 0.988]), ranked)
    assert behind["verdict"] == "ahead" and behind["gain"] < 0
    # The leader's configuration is the baseline: tuning found nothing better.
    itself = _baseline([0.95, 0.952])
    assert versus_baseline(itself, rank_families(itself + confirmed("sgd", [0.9, 0.91]),
                                                 "maximize"))["verdict"] == "is_leader"
    # No repeats anywhere: no noise estimate, so neither is called better.
    single = [trial("adam", 0.97)]
    silent = versus_baseline(_baseline([0.90]), rank_families(single, "maximize"))
    assert silent["verdict"] == "not_separated" and silent["summary"].endswith(
        "(the baseline ran once; search.baseline_runs: 5 runs of it, each its own seed, measure "
        "a spread of its own)")
    # A loss, on its logarithm: the leader's lower loss is a positive gain.
    losses = confirmed("adam", [0.10, 0.11, 0.105])
    loss = versus_baseline(_baseline([0.30, 0.31, 0.32]), rank_families(losses, "minimize"))
    assert loss["verdict"] == "beaten" and loss["gain"] == pytest.approx(0.31 - 0.105, abs=2e-3)


def test_a_winner_on_one_data_split_says_what_it_does_not_show() -> None:
    """A search on one data split calls adam the winner: on linear/digits, 4 of 6 such winners
    were behind on another split's search (benchmarks.split_agreement), so the answer says
    it was measured on one split and how to know more; a tie says nothing more."""
    from tuner.results import answer
    from tuner.trial import TrialRecord

    def run(n: int, opt: str, value: float) -> TrialRecord:
        return TrialRecord(number=n, state="complete", stop_reason="completed", stop_step=3,
                           optimizer=opt, schedule="constant", params={f"{opt}.lr": 1e-3},
                           value=value, epochs_run=3, seed=n % 2)

    budget = {"epochs": 3, "batch_size": 64, "training_seed": 4}
    said = answer([run(0, "adam", 0.95), run(1, "adam", 0.951), run(2, "sgd", 0.85),
                   run(3, "sgd", 0.851)], "maximize", budget=budget)
    assert said["verdict"] == "winner"
    assert said["summary"].endswith(
        "; measured on one data split (training.seed 4) with one search: a search on another "
        "split can find another family best, so search other splits too (`tuner run "
        "--splits 3` runs the search on 3; the answer then says where each family stands on "
        "each) to know whether adam holds"), said["summary"]
    tied = answer([run(0, "adam", 0.95), run(1, "adam", 0.951), run(2, "sgd", 0.9502),
                   run(3, "sgd", 0.9508)], "maximize", budget=budget)
    assert tied["verdict"] == "tied" and "one data split" not in tied["summary"]


def test_a_run_read_across_splits_whose_first_split_completed_nothing_says_the_others(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`tuner run --splits 2` where split 0 completed no trial and split 1 ranked adam: the
    answer is about split 0 (nothing ranked, no configuration to start from), and still says
    where the families stand on split 1, rather than printing nothing."""
    from cli.render import print_run_answer
    from tuner.results import answer_across_splits
    from tuner.trial import TrialRecord

    def run(n: int, state: str, value: float | None) -> TrialRecord:
        return TrialRecord(number=n, state=state, stop_reason=state, stop_step=3 if value else 0,
                           optimizer="adam", schedule="constant", params={"adam.lr": 1e-3},
                           value=value, epochs_run=3 if value else 0, seed=n)

    monkeypatch.setenv("COLUMNS", "300")
    said = answer_across_splits([(0, [run(0, "failed", None)]),
                                 (1, [run(0, "complete", 0.9), run(1, "complete", 0.91)])],
                                "maximize", "val_accuracy",
                                {"epochs": 3, "batch_size": 64, "training_seed": 0})
    assert said["ranking"] == [] and said["start_from"] is None
    assert said["splits"]["families"]["adam"]["not_ranked"] == [0]
    assert said["baseline"]["verdict"] == "not_run"
    print_run_answer(said, "val_accuracy")
    shown = " ".join(capsys.readouterr().out.split())
    assert shown.startswith("answer: no complete trial in this history") and \
        "by data split (each ranked on its own): training.seed 0 (this answer): " in shown and \
        "training.seed 1: one family: adam (2 trials)" in shown, shown


def test_the_best_family_is_held_against_a_model_that_ignores_its_inputs() -> None:
    """A table whose label is 93% one class: every family scored 0.93, what predicting that
    class for every example scores, and the answer said they were level, never that none
    learned anything. The answer now leads with it; a family clear of it is not said to be."""
    from tuner.recommend import in_short, versus_no_skill, with_no_skill

    level = rank_families(confirmed("momentum", [0.93, 0.93]) + confirmed("adam", [0.93, 0.93])
                          + [trial("sgd", 0.19)], "maximize", metric="val_accuracy")
    blind = versus_no_skill(level, 0.93, "val_accuracy", "classification")
    assert blind is not None and blind["verdict"] == "no_better"
    assert blind["clause"] == (
        "the best family, adam, at 0.93, does no better than predicting the training set's most "
        "common class for every example (0.93 on this validation set): no family is shown to "
        "have learned anything from the inputs")
    assert with_no_skill(level["summary"], blind) == f"{blind['clause']}; {level['summary']}"
    assert "; no better than predicting the most common class (0.93)" in in_short(
        {**level, "method": "direct", "no_skill": blind})
    # Ahead on the values seen, its interval reaching it: not shown; clear of it: nothing said.
    near = rank_families(confirmed("adam", [0.94, 0.95, 0.92]), "maximize", metric="val_accuracy")
    shown = versus_no_skill(near, 0.93, "val_accuracy", "classification")
    assert shown is not None and shown["verdict"] == "not_shown" and shown["clause"].endswith(
        "is not shown to do better than predicting the training set's most common class for "
        "every example (0.93 on this validation set): its interval reaches it")
    assert "; not shown to beat predicting the most common class (0.93)" in in_short(
        {**near, "method": "direct", "no_skill": shown})
    assert shown["summary"] == shown["clause"]
    clear = versus_no_skill(near, 0.5, "val_accuracy", "classification")
    assert clear is not None and (clear["verdict"], clear["clause"]) == ("above", "")
    assert clear["summary"] == ("the best family, adam, at 0.9367, is clear of predicting the "
                                "training set's most common class for every example (0.5 on "
                                "this validation set)")
    assert with_no_skill("s", clear) == "s" and "predicting" not in in_short(
        {**near, "method": "direct", "no_skill": clear})
    # With no noise measured (one run each: mlp/wine, 3 trials), above on the values seen, and
    # said so: "clear of" claimed a margin in an answer that could call no family better.
    once = rank_families([trial("rmsprop", 1.0), trial("adamw", 0.72)], "maximize",
                         metric="val_accuracy")
    seen = versus_no_skill(once, 0.3889, "val_accuracy", "classification")
    assert once["noise"]["sigma"] is None and seen is not None and seen["verdict"] == "above"
    assert seen["clause"] == "" and seen["summary"] == (
        "the best family, rmsprop, at 1, is above predicting the training set's most common "
        "class for every example (0.3889 on this validation set) on the values seen, every run "
        "of its best configuration: there is no noise estimate to say by more than the noise")
    # A loss: lower is better, its interval's upper end held against it.
    loss = rank_families(confirmed("adam", [0.80, 0.82, 0.81]), "minimize", metric="val_loss")
    assert versus_no_skill(loss, 0.84, "val_loss", "regression")["verdict"] == "above"  # type: ignore[index]
    worse = versus_no_skill(loss, 0.79, "val_loss", "regression")
    assert worse is not None and worse["verdict"] == "no_better" and "the training set's mean" \
        in worse["clause"]
    # Not known (data read from disk, a team's loop), or a metric it has no meaning for: None.
    assert versus_no_skill(level, None, "val_accuracy", "classification") is None
    assert versus_no_skill(level, 0.5, "val_accuracy", "regression") is None
