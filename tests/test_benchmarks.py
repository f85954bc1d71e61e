"""Each benchmark script runs at a tiny size (the real runs are not tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import warm_start


def test_warm_start_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "warm.json"
    result = warm_start.main(["--smoke", "--out", str(out)])
    saved = json.loads(out.read_text())
    (task,) = saved["tasks"].values()
    assert set(task["ratio_warm_over_cold"]) == {"trials", "epochs"}
    assert task["per_seed"][0]["warm"]["trials"] >= 1
    assert result["tolerance"] == 0.005
    seed = task["per_seed"][0]
    assert len(seed["cold"]["curve"]) == 4 and len(seed["warm"]["curve"]) >= seed["warm"]["trials"]
    # Scoring saved runs against one target: two copies of a run score as the run itself.
    other = tmp_path / "warm2.json"
    other.write_text(out.read_text())
    scored = warm_start.main(["--score", str(out), str(other), "--out",
                              str(tmp_path / "scored.json")])
    (both,) = scored["tasks"].values()
    for name in ("warm", "warm2"):
        for k in ("cold", "warm"):
            assert both[name][k]["trials"] == seed[k]["trials"]
            assert both[name][k]["censored"] == int(seed[k]["censored"])


# Three benchmarks (search efficiency, overhead, packing) start a local Ray in this process when
# none is up and leave it up; the session's fixture must come first, or its own ray.init fails
# ("called ray.init twice") for every later test of the worker that needs it (seen when one
# ran before any other Ray test in a pytest worker).
@pytest.mark.usefixtures("ray_session")
def test_search_efficiency_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import search_efficiency

    res = search_efficiency.main(["--smoke", "--out", str(tmp_path / "se.json")])
    (task,) = res["tasks"].values()
    assert set(task["methods"]) == {"random", "tpe", "ray_asha", "service_hyperband",
                                    "service_literature", "service_portfolio",
                                    "service_apart", "service_asha",
                                    "service_wilcoxon", "service_similar", "adamw_only"}
    for m in task["methods"].values():
        assert m["median"] >= 1 and 0 <= m["reached"] <= 1 and len(m["curves"]) == 1
        assert 0 < len(m["curves"][0]) <= res["epoch_budget"]  # the same budget for every run
    assert task["methods"]["random"]["ratio_vs_random"] in (1.0, None)
    # Scoring saved runs together: every file's methods against one target, running nothing.
    other = tmp_path / "se2.json"
    other.write_text((tmp_path / "se.json").read_text())
    scored = search_efficiency.main(["--score", str(tmp_path / "se.json"), str(other),
                                     "--out", str(tmp_path / "scored.json")])
    (both,) = scored["tasks"].values()
    assert both["target"] == task["target"]
    assert set(both["methods"]) == {f"{m} ({f})" for m in task["methods"] for f in ("se", "se2")}
    for m, s in task["methods"].items():
        assert both["methods"][f"{m} (se2)"]["epochs"] == s["epochs"]
    # The default against Ray Tune ASHA and against AdamW alone at each budget: 2 x 2 pairs of
    # files each; a file against its own copy cannot be told apart.
    assert len(both["versus"]) == 8 and len(task["versus"]) == 2
    assert [v["peer"] for v in task["versus"]] == ["ray_asha", "adamw_only"]
    for v in both["versus"]:
        assert set(v["at"]) == {str(e) for e in search_efficiency.ANYTIME}
        assert all(0 <= a["p"] <= 1 and len(a["median"]) == 2 for a in v["at"].values())


def test_versus_tells_a_gap_from_the_noise() -> None:
    from benchmarks.search_efficiency import versus

    def runs(level: float, n: int = 8) -> dict[str, Any]:
        return {"curves": [[level + 0.001 * (i % 3)] * 60 for i in range(n)]}

    apart = versus({"service_hyperband": runs(0.95), "ray_asha": runs(0.97)})[0]["at"]["50"]
    assert apart["p"] < 0.01 and apart["median"] == pytest.approx([0.951, 0.971])
    same = versus({"service_hyperband": runs(0.95), "ray_asha": runs(0.95)})[0]["at"]["50"]
    assert same["p"] == 1.0 and "wins" not in same
    # Paired (run k of both on the same split): run by run, 8 wins of 8, and 0/8/0 against itself.
    apart = versus({"service_hyperband": runs(0.97), "ray_asha": runs(0.95)},
                   paired=True)[0]["at"]["50"]
    assert (apart["wins"], apart["ties"], apart["losses"]) == (8, 0, 0)
    assert apart["p_paired"] < 0.01
    same = versus({"service_hyperband": runs(0.95), "ray_asha": runs(0.95)},
                  paired=True)[0]["at"]["50"]
    assert (same["wins"], same["ties"], same["losses"], same["p_paired"]) == (0, 8, 0, 1.0)


@pytest.mark.usefixtures("ray_session")
def test_overhead_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import overhead

    res = overhead.main(["--smoke", "--out", str(tmp_path / "oh.json")])
    for k in ("a_inprocess", "b_optuna_pg", "c_service"):
        assert res[k]["n"] == 4 and res[k]["wall_s"] > 0
    assert res["ratios"]["c_over_b"] > 0


@pytest.mark.usefixtures("ray_session")
def test_packing_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import packing

    res = packing.main(["--smoke", "--out", str(tmp_path / "p.json")])
    assert [r["k"] for r in res["rows"]] == [1, 2] and res["unit"] in ("GPU", "core")
    assert all(r["trials"] == 2 and r["trials_per_hour"] > 0 for r in res["rows"])


def test_api_scale_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import api_scale

    res = api_scale.main(["--smoke", "--out", str(tmp_path / "api.json")])
    assert res["n_trials"] == 4000 and set(res["by_workers"]) == {"1", "2"}
    for endpoints in res["by_workers"].values():  # `tuner api --workers 2` serves as well
        assert len(endpoints) == 4
        for r in endpoints.values():
            assert r["errors"] == 0 and r["n"] > 0 and r["p95_ms"] >= r["p50_ms"] > 0
    q = res["queries"]
    assert q["recommend_cached_ms"] > 0 and q["history_top_per_family_rows"] > 0


def test_recommendation_quality_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import recommendation_quality as rq

    res = rq.main(["--smoke", "--out", str(tmp_path / "rq.json")])
    (task,) = res["tasks"]
    assert task["advice"]["family"] is not None  # other corpus tasks inform it
    assert task["advice"]["similar"] and all(name != task["task"]
                                             for name, _ in task["advice"]["similar"])
    assert set(task["normalised_regret"]) == set(rq.METHODS)
    assert all(v >= 0 for v in task["normalised_regret"].values())
    assert task["values"]["adamw_1e-3_cosine"] is not None
    (warm,) = res["warm_start"]
    assert warm["median"]["cold"] >= 1 and warm["median"]["warm"] >= 1


def test_transfer_sources_benchmark_smoke(tmp_path: Path) -> None:
    """Its rules answer from the held-out task's neighbours only, and its emulation of the old
    scoring (a family a task did not rank scored 0 there) is what `transfer_ranking` does with
    a family that diverged on every trial there."""
    from benchmarks import transfer_sources as ts
    from tuner.corpus import load
    from tuner.recommend import transfer_ranking

    res = ts.main(["--smoke", "--out", str(tmp_path / "ts.json")])
    for history in ("full", "partial"):
        s = res["summary"][history]
        assert s["answers"] == 4 and set(ts.RULES) <= set(s)
        assert all(0 <= s[r]["mean_regret"] <= 1 for r in ts.RULES)
    corpus = load()
    assert corpus is not None
    task = corpus.tasks[0]
    partial = ts.team_ranking(task, ["adam", "sgd"])
    assert {e["optimizer"] for e in partial["ranking"]} == {"adam", "sgd"}
    other = corpus.tasks[1].ranking()
    n1, n2 = {"task_id": 1, "similarity": 0.5}, {"task_id": 2, "similarity": 0.5}
    old = {r["optimizer"]: r["score"]
           for r in transfer_ranking([(n1, ts.as_worst(partial)), (n2, other)])["ranking"]}
    new = {r["optimizer"]: r["score"]
           for r in transfer_ranking([(n1, partial), (n2, other)])["ranking"]}
    only_other = next(f for f in new if f not in ("adam", "sgd"))
    assert old[only_other] < new[only_other]


def test_sweep_rest_order_benchmark_smoke(tmp_path: Path) -> None:
    """Both orders sweep the same number of families, never a ranked one, and the nearest
    order is the service's: `corpus_order`'s answer, with the task's dataset left out."""
    from benchmarks import sweep_rest_order as sro

    res = sro.main(["--smoke", "--out", str(tmp_path / "sro.json")])
    assert len(res["rows"]) == 2
    for row in res["rows"]:
        for name in ("corpus_wide", "nearest"):
            reached = row[name]["families"]
            assert len(reached) == 4 and not set(reached) & set(row["ranked"])
            assert 0 <= row[name]["regret"] <= 1
        assert row["near_task"]  # mlp tasks have mlp neighbours on other datasets


def test_verdict_rules_call_a_gap_outside_the_noise_only() -> None:
    from benchmarks.verdict_calibration import RULES, judge

    apart, close = ([0.90, 0.91, 0.92], [0.80, 0.81, 0.82]), ([0.90, 0.92, 0.94], [0.89, 0.91, 0.93])
    for name, rule in RULES.items():
        assert rule(*apart, 0.01, 20), name
        assert not rule(*close, 0.01, 20), name
    # Set A calls adam ahead of sgd, and fresh seeds reverse it: counted, and the winner fails.
    a = {"adam": [0.90, 0.91, 0.92], "sgd": [0.80, 0.81, 0.82]}
    fresh = {"adam": [0.80, 0.80], "sgd": [0.85, 0.86]}
    j = judge(RULES["welch"], a, 0.01, 20, fresh, "maximize")
    assert (j["calls"], j["reversed"], j["winner"], j["winner_held"], j["covered"]) == \
        (1, 1, "adam", False, False)


def test_verdict_calibration_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import verdict_calibration as vc

    res = vc.main(["--smoke", "--out", str(tmp_path / "vc.json")])
    (task,) = res["tasks"]
    assert set(task["fresh"]) == set(task["set_a"]) and len(task["set_a"]) == 14
    assert all(len(v) == 2 for v in task["fresh"].values())  # the fresh seeds ran
    # The service's own rule, re-applied here, names the service's leaders, every one of them.
    assert set(task["rules"]["t_intervals"]["leaders"]) == set(task["service_leaders"])
    assert set(res["summary"]) == set(vc.RULES)
    # Judged again from the file, nothing trained: the same calls.
    again = vc.main(["--rescore", str(tmp_path / "vc.json"), "--out", str(tmp_path / "re.json")])
    assert again["summary"] == res["summary"] and again["tasks"][0]["rules"] == task["rules"]
    # the family listed first, judged on the fresh runs: 0 (the best) to 1 (the worst)
    first = again["first_listed"]
    assert first["family"][task["task"]] == task["service_leaders"][0]
    assert 0.0 <= first["regret"][task["task"]] <= 1.0 and first == res["first_listed"]
    # Leaders in the tie only by their interval reaching the best one's, against the others, each
    # judged against the best leader on the fresh runs.
    width = again["tied_by_width"]
    assert task["service_bar"] in task["service_leaders"]
    assert width["tied_by_width"]["n"] == len(task["service_tied_by_width"])
    assert width["tied_by_width"]["n"] + width["other_leaders"]["n"] == \
        len(task["service_leaders"]) - 1
    assert width == res["tied_by_width"]


def test_verdict_calibration_on_new_splits_trains_each_fresh_run_on_its_own_split(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import verdict_calibration as vc
    from tuner import objective

    splits: list[int] = []
    real = objective.load_dataset

    def spy(name: str, params: dict[str, Any], seed: int, **kw: Any) -> Any:
        splits.append(seed)
        return real(name, params, seed, **kw)

    monkeypatch.setattr(objective, "load_dataset", spy)
    res = vc.main(["--smoke", "--vary-split", "--out", str(tmp_path / "vs.json")])
    assert res["vary_split"] is True
    (task,) = res["tasks"]
    assert all(len(v) == 2 for v in task["fresh"].values())
    # Every family's two fresh runs on the same two new splits (paired), never the corpus's.
    fresh = vc.FRESH_SEED_OFFSET
    assert sorted(set(splits)) == [fresh, fresh + 1] and len(splits) == 2 * 14


def test_the_calibrations_leaders_are_every_family_not_separated_from_the_first() -> None:
    """As the service groups a tie: sgd, separated from adam, is out; rmsprop, ranked below
    sgd but with an interval wide enough to reach adam's, is in."""
    from benchmarks.verdict_calibration import RULES, judge

    a = {"adam": [0.950, 0.951, 0.949, 0.950], "sgd": [0.930, 0.931, 0.929, 0.930],
         "rmsprop": [0.90, 0.94]}
    fresh = {"adam": [0.95], "sgd": [0.93], "rmsprop": [0.92]}
    j = judge(RULES["t_intervals"], a, 0.01, 20, fresh, "maximize")
    assert j["leaders"] == ["adam", "rmsprop"] and j["winner"] is None


def test_the_calibrations_service_rule_gives_identical_runs_the_pooled_noise() -> None:
    """momentum's four runs at 1.0 and adamw's at 0.967 (one validation example of 30): the
    rule until 2026-12-05 (t_own_sd) gave both zero-width intervals and called them separated;
    the service's rule gives them the pooled noise of the repeats (here sgd's), and does not."""
    from benchmarks.verdict_calibration import RULES, judge

    a = {"momentum": [1.0] * 4, "adamw": [0.9667] * 4, "sgd": [0.70, 0.80, 0.70, 0.80]}
    fresh = {"momentum": [1.0], "adamw": [0.9667], "sgd": [0.75]}
    old = judge(RULES["t_own_sd"], a, None, 0, fresh, "maximize")
    new = judge(RULES["t_intervals"], a, None, 0, fresh, "maximize")
    assert old["leaders"] == ["momentum"] and old["winner"] == "momentum"
    assert new["leaders"] == ["momentum", "adamw"] and new["winner"] is None
    # Every repeat identical: no noise measured, so the service's rule separates nothing.
    flat = {"momentum": [1.0] * 4, "adamw": [0.9667] * 4}
    assert judge(RULES["t_intervals"], flat, None, 0, fresh, "maximize")["calls"] == 0


def test_data_digest_benchmark_smoke(tmp_path: Path) -> None:
    import os

    from benchmarks import data_digest

    before = os.environ.get("TUNER_DATA_ROOT")
    res = data_digest.main(["--smoke", "--out", str(tmp_path / "dd.json")])
    assert set(res["cases"]) == {"full read", "other process", "one file added"}
    assert res["cases"]["full read"]["ratio_to_full_read"] == 1.0
    assert all(len(c["runs_s"]) == 2 for c in res["cases"].values())
    assert os.environ.get("TUNER_DATA_ROOT") == before  # the service's settings left as found


def test_no_skill_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import no_skill

    res = no_skill.main(["--smoke", "--out", str(tmp_path / "ns.json")])
    assert len(res["tasks"]) == 3 and sum(res["verdicts"].values()) == 3
    # linear on iris: a ranked family far above predicting the most common class (a third)
    iris = res["tasks"][0]
    assert iris["task"] == "linear-iris" and iris["no_skill"] == pytest.approx(1 / 3)
    assert iris["verdict"] == "above" and iris["expected"] > 0.9
    # the value the shipped corpus keeps for transfer answers is the one computed from the data
    assert res["stored_agrees"] == 3 and iris["stored"] == pytest.approx(1 / 3)


def test_streaming_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import streaming

    res = streaming.main(["--smoke", "--out", str(tmp_path / "st.json")])
    assert [r["path"] for r in res["rows"]] == ["memory", "stream_0_workers", "stream_2_workers"]
    assert all(r["samples_per_s"] > 0 for r in res["rows"])
    assert res["rows"][0]["ratio_vs_memory"] == 1.0


def test_trainable_overhead_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import trainable_overhead

    res = trainable_overhead.main(["--smoke", "--out", str(tmp_path / "to.json")])
    assert [r["path"] for r in res["rows"]] == ["builtin_loop", "trainable"]
    assert all(r["seconds"] > 0 for r in res["rows"])
    assert res["rows"][0]["ratio_vs_builtin"] == 1.0


def test_sweep_starts_benchmark_runs_held_out(tmp_path: Path) -> None:
    from benchmarks import sweep_starts

    out = tmp_path / "starts.json"
    sweep_starts.main(["--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["tasks"] == 26 and set(saved["kinds"]) == {"literature", "corpus", "portfolio"}
    for kind in saved["kinds"].values():
        means = [kind[str(k)]["mean_best"] for k in sweep_starts.KS]
        assert means == sorted(means) and means[0] > 0 and means[-1] <= 1  # no worse with more
    # Held out: the starts of a dataset's tasks come from the corpus without that dataset, so
    # the first trial is not the best on every task.
    assert saved["kinds"]["corpus"]["1"]["near_share"] < 1


def test_sweep_cap_runs_that_many_families() -> None:
    from benchmarks.search_efficiency import base_spec, capped_sweep
    from tuner.search import sweep_plan

    spec = base_spec("mlp", "digits", {"hidden": [64]}, 9, pruner="hyperband")
    assert len(sweep_plan(spec).families) == 14
    for k in (1, 4, 7):
        plan = sweep_plan(capped_sweep(spec, k))
        assert len(plan.families) == k and len(plan.left_out) == 14 - k


def test_vary_training_seed_trains_each_run_on_its_own_split(tmp_path: Path) -> None:
    import torch

    from benchmarks import search_efficiency as se
    from tuner.objective import Objective

    spec = se.base_spec("linear", "breast_cancer", {}, 2)
    assert se.with_training_seed(spec, 3).training.seed == 3 and spec.training.seed == 0
    # Run 3 validates on other examples than run 0: its own split of the data.
    split0, split3 = Objective(spec).data, Objective(se.with_training_seed(spec, 3)).data
    assert split0.X_val.shape == split3.X_val.shape
    assert not torch.equal(split0.X_val, split3.X_val)
    res = se.main(["--smoke", "--methods", "random", "--vary-training-seed",
                   "--out", str(tmp_path / "se.json")])
    (task,) = res["tasks"].values()
    assert res["vary_training_seed"] and len(task["methods"]["random"]["curves"][0]) > 0


def test_corpus_held_out_leaves_out_a_dataset_or_one_task() -> None:
    """What the service learns from the corpus in a benchmark (sweep starts, transfer) must not
    have been measured on the task the benchmark scores: by dataset, or leave-one-task-out."""
    from benchmarks._common import corpus_held_out
    from tuner import corpus

    full = corpus.load()
    assert full is not None
    ids = {t.id for t in full.tasks}
    assert {"mlp-digits-w32", "mlp-digits-w256", "linear-iris"} <= ids
    with corpus_held_out() as hold_out:
        hold_out(task="mlp-digits-w32")
        without_task = corpus.load()
        assert without_task is not None
        assert {t.id for t in without_task.tasks} == ids - {"mlp-digits-w32"}
        hold_out("digits")
        without_digits = corpus.load()
        assert without_digits is not None
        left = {t.id for t in without_digits.tasks}
        assert "linear-iris" in left and not any("digits" in i for i in left)
    assert corpus.load() is full  # the environment is as it was


def test_learning_rates_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import learning_rates

    res = learning_rates.main(["--smoke", "--out", str(tmp_path / "lr.json")])
    every, latest = res["cases"]["every trial"], res["cases"]["latest per family"]
    assert every["ratio_time"] == every["ratio_bytes"] == 1.0
    # 1,500 points per family against 1,000: the capped answer is two thirds the size or less
    assert latest["bytes"] < 0.7 * every["bytes"] and len(latest["runs_s"]) == 2


def test_task_list_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import task_list

    res = task_list.main(["--smoke", "--out", str(tmp_path / "tl.json")])
    cases = res["cases"]
    assert res["same_counts"] and cases["every task, trials counted"]["ratio_bytes"] == 1.0
    # 120 tasks, the page shows 100 of them: five sixths of the bytes or less
    assert cases["a page of 100, job counters"]["ratio_bytes"] < 0.85
    assert cases["every task, job counters"]["bytes"] == cases["every task, trials counted"]["bytes"]


def test_job_figures_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import job_figures

    res = job_figures.main(["--smoke", "--out", str(tmp_path / "jf.json")])
    before, now = res["cases"]["before"], res["cases"]["now"]
    assert before["ratio_time"] == before["ratio_bytes"] == 1.0
    assert now["bytes"] < before["bytes"] and len(now["runs_s"]) == 2  # 500 of 600 curves


def test_baseline_check_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import baseline_check

    res = baseline_check.main(["--smoke", "--out", str(tmp_path / "bc.json")])
    (run,) = res["runs"]
    assert run["verdict"] in ("beaten", "within_noise", "ahead", "not_separated", "is_leader")
    assert len(run["fresh_leader"]) == len(run["fresh_baseline"]) == 2
    (task,) = res["tasks"].values()
    assert task["runs"] == 1 and sum(task["verdicts"].values()) == 1
    assert res["fresh_on"] == run["fresh_on"] == "the same split"


def test_baseline_check_on_new_splits_smoke(tmp_path: Path) -> None:
    """--new-splits: the fresh re-runs train on splits no search saw (each run's its own,
    `run_config(vary_split=True)`, tested with the verdict calibration); it runs and says so."""
    from benchmarks import baseline_check

    res = baseline_check.main(["--smoke", "--new-splits", "--out", str(tmp_path / "bc.json")])
    (run,) = res["runs"]
    assert res["fresh_on"] == run["fresh_on"] == "new splits"
    assert len(run["fresh_leader"]) == len(run["fresh_baseline"]) == 2


def test_second_look_benchmark_smoke(tmp_path: Path) -> None:
    """Both arms run the same job; the race-only arm takes no second look, and a family
    looked at is ranked in its answer."""
    from benchmarks import second_look

    res = second_look.main(["--smoke", "--out", str(tmp_path / "sl.json")])
    looks, plain = res["runs"]
    assert (looks["arm"], plain["arm"]) == ("second_look", "race_only") and not plain["looked"]
    # a family looked at has a complete run: the answer ranks it
    assert set(looks["looked"]) <= set(looks["ranked"])
    assert set(looks["looked_leading"]) == set(looks["looked"]) & set(looks["leaders"])
    assert looks["epochs_trained"] > 0 and plain["n_ranked"] == len(plain["ranked"]) >= 1
    assert set(res["summary"]) == {"mlp/diabetes second_look", "mlp/diabetes race_only"}


def test_pruned_families_benchmark_smoke(tmp_path: Path) -> None:
    """Each pruned-only family of the answer is run to the end again, from its best pruned
    trial, and judged against the leader's interval; the counts add up."""
    from benchmarks import pruned_families

    res = pruned_families.main(["--smoke", "--out", str(tmp_path / "pf.json")])
    (run,) = res["runs"]
    assert run["families"], run  # the 8-trial job leaves families pruned
    for f in run["families"]:
        assert f["stop_step"] < 3 and f["state_here"] in ("complete", "diverged"), f
        assert f["final"] is None or f["state_here"] == "complete"
        assert not f["ahead"] or f["reached"], f  # ahead of the value is inside the interval
    (task,) = res["tasks"].values()
    assert task["pruned_only_families"] == len(run["families"])
    assert task["reached"] == sum(f["reached"] for f in run["families"])
    assert task["flagged_of_reached"] <= min(task["reached"], task["flagged"])


def test_split_agreement_benchmark_smoke(tmp_path: Path) -> None:
    """Two splits of one task, each answered on its own, read across as the service's `splits`
    reads them; each split held out in turn is judged by the other; the counts add up."""
    from benchmarks import split_agreement

    res = split_agreement.main(["--smoke", "--out", str(tmp_path / "sa.json")])
    assert [r["split"] for r in res["runs"]] == [0, 1]
    (task,) = res["tasks"].values()
    assert task["splits"] == 2 and task["first_behind"] <= 2
    assert task["winner_behind"] <= min(task["winners"], task["first_behind"])
    # held out: each split judged by the other alone (one split reads across to nothing)
    assert task["held_out_every"] == [0, 0] and task["held_out_first"][1] == 0
    every = task["lead_on_every_split"]
    assert all(f in r["leaders"] for r in res["runs"] for f in every), (every, res["runs"])


def test_split_agreement_reads_a_task_across_its_splits() -> None:
    """The benchmark's reading, on three made-up splits: adam first on split 0 and behind on
    split 1; split 2 held out, the families leading on both others judged by its leaders."""
    from benchmarks.split_agreement import read_task

    def run(split: int, verdict: str, leaders: list[str], ranked: list[str]) -> dict[str, Any]:
        return {"task": "t", "split": split, "verdict": verdict, "leaders": leaders,
                "ranking": [{"optimizer": f} for f in ranked], "n_complete": 4}

    runs = [run(0, "tied", ["adam", "sgd"], ["adam", "sgd", "rmsprop"]),
            run(1, "winner", ["sgd"], ["sgd", "adam"]),
            run(2, "tied", ["sgd", "rmsprop"], ["sgd", "rmsprop", "adam"])]
    got = read_task(runs)
    assert got["lead_on_every_split"] == ["sgd"] and got["mean_leaders"] == pytest.approx(5 / 3)
    # adam, first on split 0, is behind on 1 and 2; sgd, first on 1 and 2, behind nowhere
    assert (got["first_behind"], got["winners"], got["winner_behind"]) == (1, 1, 0)
    assert got["start_from_moved"] == 1  # split 0's start moves to sgd, a leader everywhere
    # held out 0: sgd leads on 1 and 2 and on 0; held out 1: sgd, and 1's leader is sgd;
    # held out 2: sgd (on 0 and 1) leads on 2
    assert got["held_out_every"] == [3, 3]
    # firsts of the rest among the held-out split's leaders: (sgd, sgd) on 0: yes, yes;
    # (adam, sgd) on 1: no, yes; (adam, sgd) on 2: no, yes
    assert got["held_out_first"] == [4, 6]
