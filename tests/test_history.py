"""Recommendations from the stored history (both databases): direct, transfer, prior, team
isolation; confirmation runs and warm-started searches through the real dispatcher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from sqlalchemy import select, update

from tuner.errors import SpecError
from tuner.recommendations import recommend
from tuner.spec import JobSpec
from tuner.store.auth import get_or_create_team
from tuner.store.db import session_factory
from tuner.store.jobs import create_job, get_job
from tuner.store.models import RecommendationCache, TrialRow
from tuner.store.trials import record_trial
from tuner.tasks import inspect_task
from tuner.trial import TrialRecord
from workers.dispatcher import Dispatcher, DispatcherConfig


def queue(url: str, team: str, spec: dict[str, Any]) -> tuple[str, int]:
    js = JobSpec.model_validate(spec)
    with session_factory(url)() as s:
        t = get_or_create_team(s, team)
        job = create_job(s, t.id, js, inspect_task(js))[0]
        return job.id, t.id


def write(url: str, job_id: str, rows: list[tuple[str, float, float]],
          state: str = "complete", stop_step: int = 3, seeds: list[int] | None = None) -> None:
    """Constructed trials: (optimizer, lr, value), complete unless `state` says otherwise, with
    training seed 0 unless `seeds` gives one per row."""
    with session_factory(url)() as s:
        start = len(s.scalars(select(TrialRow).where(TrialRow.job_id == job_id)).all())
        for i, (opt, lr, value) in enumerate(rows):
            rec = TrialRecord(number=start + i, state=state, stop_reason=state,
                              stop_step=stop_step, optimizer=opt, schedule="constant",
                              params={f"{opt}.lr": lr}, value=value, epochs_run=3,
                              state_bytes_per_param=8.0 if opt.startswith("adam") else 0.0,
                              seconds_per_epoch=0.05, seed=seeds[i] if seeds else 0)
            assert record_trial(s, job_id, rec)


def write_baseline(url: str, job_id: str, runs: list[tuple[float, float, int]]) -> None:
    """Constructed runs of AdamW + cosine at its defaults but for the learning rate: (lr, value,
    seed); at lr 1e-3 they are the baseline's (search.baseline), and marked so as its runs are."""
    from tuner.space import baseline_values

    with session_factory(url)() as s:
        start = len(s.scalars(select(TrialRow).where(TrialRow.job_id == job_id)).all())
        for i, (lr, value, seed) in enumerate(runs):
            assert record_trial(s, job_id, TrialRecord(
                number=start + i, state="complete", stop_reason="completed", stop_step=3,
                optimizer="adamw", schedule="cosine", epochs_run=3, value=value, seed=seed,
                params={**baseline_values(), "adamw.lr": lr}, baseline=lr == 1e-3))


def task_spec(model: str, dataset: str, **kw: Any) -> dict[str, Any]:
    return {"task": {"model": {"name": model}, "dataset": {"name": dataset}},
            "training": {"epochs": 3}, "budget": {"n_trials": 4}, **kw}


def test_direct_transfer_prior_and_isolation(migrated_url: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")  # the team's own history alone
    j1, team_a = queue(migrated_url, "a", task_spec("mlp", "iris"))
    j2, _ = queue(migrated_url, "a", task_spec("mlp", "iris"))
    write(migrated_url, j1, [("adam", 1e-3, 0.95), ("sgd", 1e-2, 0.80), ("adam", 1e-1, 0.4)])
    write(migrated_url, j2, [("adam", 2e-3, 0.96), ("rmsprop", 1e-3, 0.90)])
    _, team_b = queue(migrated_url, "b", task_spec("linear", "diabetes"))
    with session_factory(migrated_url)() as s:
        direct = recommend(s, team_a, model="mlp", dataset="iris")
        assert direct["method"] == "direct" and "5 complete trials in 2 jobs" in \
            direct["explanation"]
        adam = direct["ranking"][0]
        assert adam["optimizer"] == "adam" and adam["evidence"]["n_jobs"] == 2
        assert adam["evidence"]["latest"] is not None and adam["cost"]["state_bytes_per_param"] == 8
        assert [e["optimizer"] for e in direct["ranking"]] == ["adam", "rmsprop", "sgd"]

        # wine was never run by team a: the answer borrows from iris, the nearest task.
        transfer = recommend(s, team_a, model="mlp", dataset="wine")
        assert transfer["method"] == "transfer"
        (near,) = transfer["similar_tasks"]
        assert near["dataset"] == "iris" and 0.25 < near["similarity"] <= 1
        assert "mlp/iris" in transfer["explanation"]
        assert transfer["ranking"][0]["optimizer"] == "adam"
        assert transfer["ranking"][0]["source_task"]["task_id"] == near["task_id"]

        # team b sees none of team a's history: no direct, no transfer from a's tasks.
        for rec in (recommend(s, team_b, model="mlp", dataset="iris"),
                    recommend(s, team_b, model="linear", dataset="diabetes")):
            assert rec["method"] == "prior" and "not measured" in rec["note"]
            assert all(r["value"] is None for r in rec["ranking"])


def test_cached_answers_are_served_until_the_history_changes(migrated_url: str) -> None:
    job, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    write(migrated_url, job, [("adam", 1e-3, 0.90), ("sgd", 1e-2, 0.80)])
    marker = {"method": "direct", "ranking": [], "marker": True}
    with session_factory(migrated_url)() as s:
        first = recommend(s, team, model="mlp", dataset="iris")
        fresh = recommend(s, team, model="mlp", dataset="iris", cache=False)
        assert first == fresh and first["ranking"][0]["optimizer"] == "adam"
        (row,) = s.scalars(select(RecommendationCache)).all()
        assert row.method == "direct" and row.body == first
        # A read with the same history is answered from the cache: plant a marker to see it.
        s.execute(update(RecommendationCache).values(body=marker))
        s.commit()
        assert recommend(s, team, model="mlp", dataset="iris") == marker
        # A transfer answer (wine borrows from iris) is cached too, under the team's version.
        transfer = recommend(s, team, model="mlp", dataset="wine")
        assert transfer["method"] == "transfer" and transfer["ranking"][0]["optimizer"] == "adam"
        s.execute(update(RecommendationCache).where(RecommendationCache.method == "transfer")
                  .values(body=marker))
        s.commit()
        assert recommend(s, team, model="mlp", dataset="wine") == marker
    # One recorded trial makes both answers out of date: they are computed again, with it.
    write(migrated_url, job, [("rmsprop", 1e-3, 0.99)])
    with session_factory(migrated_url)() as s:
        direct = recommend(s, team, model="mlp", dataset="iris")
        assert direct == recommend(s, team, model="mlp", dataset="iris", cache=False)
        assert direct["ranking"][0]["optimizer"] == "rmsprop" and "marker" not in direct
        transfer = recommend(s, team, model="mlp", dataset="wine")
        assert transfer["ranking"][0]["optimizer"] == "rmsprop" and "marker" not in transfer
        # A new task of the team changes the team's version too (a transfer may now use it).
        s.execute(update(RecommendationCache).values(body=marker))
        s.commit()
    queue(migrated_url, "a", task_spec("linear", "iris"))
    with session_factory(migrated_url)() as s:
        assert "marker" not in recommend(s, team, model="mlp", dataset="wine")
        assert recommend(s, team, model="mlp", dataset="iris") == marker  # its history is as it was
    # A job with other training settings re-describes the task: its cached answer goes too.
    queue(migrated_url, "a", task_spec("mlp", "iris", training={"epochs": 5}))
    with session_factory(migrated_url)() as s:
        fresh = recommend(s, team, model="mlp", dataset="iris")
        assert "marker" not in fresh and fresh["tasks"][0]["features"]["epochs"] == 5


def test_jobs_repeating_a_configuration_with_the_same_seed_give_one_run(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three jobs whose sweeps ran the same two configurations with seed 0: one run each, so
    no noise estimate and no winner (counted as three seeds, 0.95 x 3 against 0.94 x 3 had
    zero-width intervals: a "winner")."""
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    for _ in range(3):
        job, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
        write(migrated_url, job, [("adam", 1e-3, 0.95), ("sgd", 1e-2, 0.94)])
    with session_factory(migrated_url)() as s:
        rec = recommend(s, team, model="mlp", dataset="iris")
    assert rec["method"] == "direct" and rec["verdict"] == "not_separated"
    assert rec["noise"]["sigma"] is None
    assert {e["evidence"]["best_configuration_runs"] for e in rec["ranking"]} == {1}


def test_a_configuration_is_read_with_all_its_runs(migrated_url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A configuration run again by later jobs with new seeds (no confirmation run) is read
    with every run, not only those among its family's best 20: cut by value, adam's lr 1e-3
    kept its lucky 0.95 and lost its 0.70 and 0.69, and was called the winner over sgd."""
    from tuner.store.history import TOP_PER_FAMILY, Budget, history

    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    job, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    others = [("adam", 1e-5 * (i + 2), 0.80 + 0.004 * i) for i in range(TOP_PER_FAMILY + 2)]
    write(migrated_url, job, [("adam", 1e-3, 0.95), ("adam", 1e-3, 0.70), ("adam", 1e-3, 0.69),
                              ("sgd", 1e-2, 0.90), ("sgd", 1e-2, 0.89), ("sgd", 1e-2, 0.91),
                              *others], seeds=[0, 1, 2, 0, 1, 2] + [0] * len(others))
    with session_factory(migrated_url)() as s:
        task_id = get_job(s, job).task_id
        read = history(s, [task_id], Budget(3, 64))
        rec = recommend(s, team, task_id=task_id)
    lucky = [t.value for t in read if t.optimizer == "adam" and t.params["adam.lr"] == 1e-3]
    assert sorted(lucky) == [0.69, 0.70, 0.95]
    assert len([t for t in read if t.optimizer == "adam"]) == TOP_PER_FAMILY + 2
    assert rec["verdict"] != "winner", rec["summary"]
    adam = next(e for e in rec["ranking"] if e["optimizer"] == "adam")
    # Judged on its three runs: the mean 0.78, never its lucky 0.95. (On the lower end of its
    # pooled-noise interval, 0.78 - 2.78 x 0.104 / sqrt(3) = 0.61, it stays above the single
    # runs of the other configurations, at most 0.888 - 2.78 x 0.104 = 0.60.)
    assert adam["params"] == {"adam.lr": 1e-3}
    assert adam["expected"]["n"] == 3 and adam["expected"]["value"] == pytest.approx(0.78)
    # How much it was tuned counts every configuration, not those among its best 20 read
    assert adam["evidence"]["configurations_tried"] == TOP_PER_FAMILY + 3
    assert adam["evidence"]["n_configurations"] == TOP_PER_FAMILY + 3


def test_a_family_stopped_early_is_placed_against_the_leaders_stored_curves(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer reads the best leader's runs' stored pruning history (their best so far by
    epoch) and says where each family that never completed stood at the epoch it was stopped:
    nadam, pruned at epoch 1 at 0.62 where adam's runs stood at 0.55-0.60, is level with it."""
    from tuner.trial import StepRecord

    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    job, team = queue(migrated_url, "a", task_spec("mlp", "iris"))

    def run(n: int, opt: str, lr: float, curve: list[float], state: str = "complete",
            seed: int = 0) -> TrialRecord:
        best = [max(curve[:i + 1]) for i in range(len(curve))]
        return TrialRecord(number=n, state=state, stop_reason=state, stop_step=len(curve),
                           optimizer=opt, schedule="constant", params={f"{opt}.lr": lr},
                           value=best[-1], epochs_run=len(curve), seed=seed,
                           steps=[StepRecord(step=i + 1, value=v, best_value=b)
                                  for i, (v, b) in enumerate(zip(curve, best, strict=True))])

    with session_factory(migrated_url)() as s:
        for rec in (run(0, "adam", 1e-3, [0.55, 0.80, 0.95]),
                    run(1, "adam", 1e-3, [0.60, 0.82, 0.96], seed=1),
                    run(2, "sgd", 1e-2, [0.40, 0.70, 0.90]),
                    run(3, "sgd", 1e-2, [0.42, 0.71, 0.91], seed=1),
                    run(4, "nadam", 1e-3, [0.62], state="pruned"),
                    run(5, "rmsprop", 1e-3, [0.30, 0.50], state="pruned")):
            assert record_trial(s, job, rec)
    with session_factory(migrated_url)() as s:
        rec = recommend(s, team, model="mlp", dataset="iris")
    nadam, rmsprop = rec["not_ranked"]
    assert nadam["leader_at_stop"] == {"optimizer": "adam", "epoch": 1, "low": 0.55,
                                       "high": 0.60, "runs": 2} and nadam["level_at_stop"]
    assert rmsprop["leader_at_stop"]["low"] == 0.80 and not rmsprop["level_at_stop"]
    assert "so not shown to be behind it: nadam (0.62 by epoch 1, adam 0.55-0.6)" \
        in rec["summary"], rec["summary"]


def test_tasks_with_other_parameters_are_never_ranked_together(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """mlp with hidden [4] and with [128] on iris are two tasks: a question by model and dataset
    name is answered about the task of the latest job, the other listed. Ranked together, adam
    on the wide network was called the winner over sgd on the narrow one."""
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    small, big = task_spec("mlp", "iris"), task_spec("mlp", "iris")
    small["task"]["model"]["params"] = {"hidden": [4]}
    big["task"]["model"]["params"] = {"hidden": [128]}
    j_small, team = queue(migrated_url, "a", small)
    j_big, _ = queue(migrated_url, "a", big)
    write(migrated_url, j_small, [("sgd", 1e-2, 0.60), ("sgd", 1e-2, 0.61)], seeds=[0, 1])
    write(migrated_url, j_big, [("adam", 1e-3, 0.95), ("adam", 1e-3, 0.96)], seeds=[0, 1])
    with session_factory(migrated_url)() as s:
        small_id, big_id = get_job(s, j_small).task_id, get_job(s, j_big).task_id
        by_name = recommend(s, team, model="mlp", dataset="iris")
        narrow = recommend(s, team, task_id=small_id)
    assert [t["id"] for t in by_name["tasks"]] == [big_id]
    assert [t["id"] for t in by_name["other_tasks"]] == [small_id]
    assert by_name["verdict"] == "one_family" and by_name["leaders"] == ["adam"]
    assert f"(task {small_id}): their trials are not pooled" in by_name["explanation"]
    assert narrow["other_tasks"] == [] and [e["optimizer"] for e in narrow["ranking"]] == ["sgd"]


def test_an_answer_cached_by_an_earlier_format_is_computed_again(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """After an upgrade that changes how answers are computed, the unchanged history must not
    keep serving the old answer (as the tie-order fix would otherwise have been)."""
    from tuner import recommendations
    from tuner.recommendations import cached_json

    job, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    write(migrated_url, job, [("adam", 1e-3, 0.90), ("sgd", 1e-2, 0.80)])
    with session_factory(migrated_url)() as s:
        task_id = get_job(s, job).task_id
        recommend(s, team, task_id=task_id)
        s.execute(update(RecommendationCache).values(body={"method": "direct", "marker": True}))
        s.commit()
        assert recommend(s, team, task_id=task_id)["marker"]  # same format: served from cache
        monkeypatch.setattr(recommendations, "ANSWER_FORMAT", recommendations.ANSWER_FORMAT + 1)
        assert cached_json(s, team, task_id) is None
        fresh = recommend(s, team, task_id=task_id)
        assert "marker" not in fresh and fresh["ranking"][0]["optimizer"] == "adam"
        assert json.loads(cached_json(s, team, task_id) or "{}") == fresh
        # The earlier format's row is gone: nothing would ever read it again.
        keys = s.scalars(select(RecommendationCache.key)).all()
        assert [json.loads(k)[0] for k in keys] == [recommendations.ANSWER_FORMAT]


def test_a_cached_direct_answer_is_served_as_its_stored_json(migrated_url: str) -> None:
    """The API's one-query path: the stored text of a current direct answer, else None."""
    from tuner.recommendations import cached_json

    job, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    _, other = queue(migrated_url, "b", task_spec("mlp", "iris"))
    write(migrated_url, job, [("adam", 1e-3, 0.90), ("sgd", 1e-2, 0.80)])
    with session_factory(migrated_url)() as s:
        task_id = get_job(s, job).task_id
        assert cached_json(s, team, task_id) is None  # nothing cached yet
        answer = recommend(s, team, task_id=task_id)
        raw = cached_json(s, team, task_id)
        assert raw is not None and json.loads(raw) == answer
        assert cached_json(s, other, task_id) is None  # another team: never
        assert cached_json(s, team, task_id, epochs=7) is None  # another question
    write(migrated_url, job, [("rmsprop", 1e-3, 0.99)])  # the history moved on: stale
    with session_factory(migrated_url)() as s:
        assert cached_json(s, team, task_id) is None
        assert recommend(s, team, task_id=task_id)["ranking"][0]["optimizer"] == "rmsprop"
        assert json.loads(cached_json(s, team, task_id) or "{}")["ranking"][0][
            "optimizer"] == "rmsprop"


def _dispatcher(url: str) -> Dispatcher:
    return Dispatcher(DispatcherConfig.from_settings(url, poll_s=0.3, heartbeat_interval=1,
                                                     grace_period=3, stop_grace_s=2))


@pytest.mark.usefixtures("ray_session")
def test_confirmation_race_measures_noise(migrated_url: str) -> None:
    # 6 trials, half reserved for the race: 3 search trials, then the best configuration of
    # each of the top 2 families re-run with new seeds until separated or the reserve is spent.
    spec = task_spec("mlp", "iris", budget={"n_trials": 6, "parallelism": 2},
                     space={"optimizers": ["adam", "rmsprop", "sgd"]},
                     search={"confirm_top_k": 2, "confirm_seeds": 2, "confirm_share": 0.5,
                             "pruner": "none", "sweep_share": 0.5})  # every family at defaults
    job_id, team = queue(migrated_url, "a", spec)
    with session_factory(migrated_url)() as s:
        job = get_job(s, job_id)
        assert (job.n_trials, job.confirm_budget) == (3, 3)
    _dispatcher(migrated_url).run(once=True)
    with session_factory(migrated_url)() as s:
        job = get_job(s, job_id)
        assert job.status == "completed", job.error
        assert job.n_confirm in (2, 3) and job.n_done == 3 + job.n_confirm
        assert job.confirm_note and "stopped:" in job.confirm_note
        rows = s.scalars(select(TrialRow).where(TrialRow.job_id == job_id)).all()
        confirms = [r for r in rows if r.confirm_of is not None]
        assert len(confirms) == job.n_confirm and len({r.confirm_of for r in confirms}) == 2
        originals = {r.number: r for r in rows if r.confirm_of is None}
        assert len({originals[r.confirm_of].optimizer for r in confirms}) == 2  # two families
        for r in confirms:
            assert r.config_key == originals[r.confirm_of].config_key  # same configuration
            assert r.seed in (1000, 1001) and r.state == "complete"
        rec = recommend(s, team, model="mlp", dataset="iris")
        summary = get_job(s, job_id)
    assert rec["noise"]["sigma"] is not None and rec["noise"]["dof"] >= 2
    assert sum(e["evidence"]["n_confirmation_runs"] for e in rec["ranking"]) == job.n_confirm
    assert rec["verdict"] in ("winner", "tied", "one_family")  # a noise estimate: never unseparated
    for e in rec["ranking"]:  # with a noise estimate every interval is a confidence interval
        runs = e["evidence"]["best_configuration_runs"]
        assert e["expected"]["kind"] == ("t" if runs >= 2 else "noise")
    assert summary.confirm_budget == 3


def test_budgets_are_never_pooled(migrated_url: str) -> None:
    # The reported case: the same configurations at 5 and at 2 epochs, both seed 0.
    j5, team = queue(migrated_url, "a", task_spec("mlp", "iris", training={"epochs": 5}))
    j2, _ = queue(migrated_url, "a", task_spec("mlp", "iris", training={"epochs": 2}))
    write(migrated_url, j5, [("sgd", 1e-2, 0.44), ("rmsprop", 1e-3, 0.961)])
    write(migrated_url, j2, [("sgd", 1e-2, 0.23), ("rmsprop", 1e-3, 0.90)])
    write(migrated_url, j2, [("adam", 1e-1, 0.58)], state="pruned", stop_step=1)
    with session_factory(migrated_url)() as s:
        latest = recommend(s, team, model="mlp", dataset="iris")
        at5 = recommend(s, team, model="mlp", dataset="iris", epochs=5)
        at7 = recommend(s, team, model="mlp", dataset="iris", epochs=7)
    assert latest["method"] == "direct" and latest["budget"] == {
        "epochs": 2, "batch_size": 64, "early_stopping_patience": None, "precision": "fp32",
        "training_seed": 0, "training_format": 1}
    assert latest["other_budgets"] == [{"epochs": 5, "batch_size": 64,
                                        "early_stopping_patience": None, "precision": "fp32",
                                        "training_seed": 0, "training_format": 1, "n_complete_trials": 2}]
    assert latest["noise"]["sigma"] is None  # nothing pooled as a repeat across budgets
    assert [(e["optimizer"], e["value"]) for e in latest["ranking"]] == [("rmsprop", 0.90),
                                                                          ("sgd", 0.23)]
    assert all(0 <= e["expected"]["low"] <= e["expected"]["high"] <= 1
               for e in latest["ranking"])
    assert latest["verdict"] == "not_separated" and "is best" not in latest["summary"]
    (adam,) = latest["not_ranked"]  # tried, never completed: still answered
    assert adam["optimizer"] == "adam" and adam["evidence"]["max_stop_epoch"] == 1
    assert adam["evidence"]["best_intermediate_value"] == 0.58
    (task,) = latest["tasks"]
    assert (task["n_jobs"], task["n_trials"]) == (2, 5)
    assert at5["budget"]["epochs"] == 5 and at5["ranking"][0]["value"] == 0.961
    assert "adam" not in {n["optimizer"] for n in at5["not_ranked"]}
    # Only pruned trials at a budget: the answer comes from elsewhere, and still reports them.
    j9, _ = queue(migrated_url, "a", task_spec("mlp", "iris", training={"epochs": 9}))
    write(migrated_url, j9, [("sgd", 1e-2, 0.31)], state="pruned", stop_step=2)
    with session_factory(migrated_url)() as s:
        at9 = recommend(s, team, model="mlp", dataset="iris", epochs=9)
    assert at9["method"] == "transfer" and at9["budget"]["epochs"] == 9
    assert [(n["optimizer"], n["evidence"]["max_stop_epoch"]) for n in at9["not_ranked"]] == \
        [("sgd", 2)]
    # A budget never run: transfer from the same task at its other budgets, said so.
    assert at7["method"] == "transfer" and at7["source"] == "team history"
    assert {n["task_id"] for n in at7["similar_tasks"]} == {task["id"]}
    assert {n["budget"]["epochs"] for n in at7["similar_tasks"]} == {2, 5}
    assert "mlp/iris at 5 epochs, batch size 64 (" in at7["explanation"]


def test_the_answer_holds_its_leader_to_the_untuned_default_at_its_budget(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """AdamW at lr 1e-3 with cosine (search.baseline) read from the store: its runs at the
    answer's budget only, and only at its configuration (AdamW + cosine at another learning
    rate is not it); a seed run twice by two jobs is one run."""
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    j3, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    j5, _ = queue(migrated_url, "a", task_spec("mlp", "iris", training={"epochs": 5}))
    write(migrated_url, j3, [("adam", 1e-3, v) for v in (0.97, 0.975, 0.972)], seeds=[0, 1, 2])
    with session_factory(migrated_url)() as s:
        before = recommend(s, team, model="mlp", dataset="iris", epochs=3)
    assert before["baseline"]["verdict"] == "not_run", before["baseline"]

    def baseline(job: str, runs: list[tuple[float, float, int]]) -> None:
        write_baseline(migrated_url, job, runs)

    baseline(j3, [(1e-3, 0.90, 0), (1e-3, 0.91, 1), (1e-3, 0.905, 2), (1e-3, 0.90, 0),
                  (2e-3, 0.93, 3)])
    baseline(j5, [(1e-3, 0.99, 0), (1e-3, 0.995, 1)])  # another budget: never pooled
    with session_factory(migrated_url)() as s:
        at3 = recommend(s, team, model="mlp", dataset="iris", epochs=3)
        at5 = recommend(s, team, model="mlp", dataset="iris", epochs=5)
    b3 = at3["baseline"]
    assert (b3["verdict"], b3["leader"], b3["expected"]["n"]) == ("beaten", "adam", 3), b3
    assert b3["expected"]["value"] == pytest.approx(0.905) and b3["gain"] > 0.06
    assert at5["baseline"]["verdict"] == "is_leader", at5["baseline"]  # the only family there
    # At 5 epochs adamw's only configuration is the baseline's: its place is its defaults'; at
    # 3 it also ran at 2e-3, so it was tuned (a little), whichever configuration is its best.
    assert at5["baseline_only"] == ["adamw"] and at3["baseline_only"] == []
    assert at5["ranking"][0]["evidence"]["baseline_only"] is True
    # adamw's trials counted with how many were the baseline's runs (the store's count: a seed
    # run twice by two jobs is two trials, one run)
    adamw3 = next(e for e in at3["ranking"] if e["optimizer"] == "adamw")
    assert (adamw3["n_trials"], adamw3["evidence"]["n_baseline_runs"]) == (5, 4)
    assert at5["ranking"][0]["evidence"]["n_baseline_runs"] == 2
    from cli.render import _trials

    assert _trials(adamw3) == "5 (4 baseline)" and _trials({"n_trials": 3}) == "3"
    assert "says nothing of adamw tuned" in at5["summary"] and "untuned baseline, " not in \
        at3["summary"]


def test_early_stopping_is_part_of_the_budget(migrated_url: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A run stopped early is cut short: never a repeat of, nor ranked with, one trained for all
    its epochs. Pooled, adam's seed-0 run without early stopping (0.95) and with patience 1
    (0.80) counted as one run at 0.875, and its patience-1 run at seed 1 as its second seed."""
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    full, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    early, _ = queue(migrated_url, "a", task_spec(
        "mlp", "iris", training={"epochs": 3, "early_stopping_patience": 1}))
    write(migrated_url, full, [("adam", 1e-3, 0.95), ("sgd", 1e-2, 0.90)])
    write(migrated_url, early, [("adam", 1e-3, 0.80), ("adam", 1e-3, 0.82)], seeds=[0, 1])
    with session_factory(migrated_url)() as s:
        task_id = get_job(s, full).task_id
        latest = recommend(s, team, task_id=task_id)
        without = recommend(s, team, task_id=task_id, early_stopping_patience=0)
        by_epochs = recommend(s, team, task_id=task_id, epochs=3)
        again = recommend(s, team, task_id=task_id, early_stopping_patience=1)
        job = get_job(s, early)
        assert job is not None and job.early_stopping_patience == 1
    assert latest["budget"] == {"epochs": 3, "batch_size": 64, "early_stopping_patience": 1,
                                "precision": "fp32", "training_seed": 0, "training_format": 1}
    assert "early stopping after 1 epochs" in latest["explanation"]
    assert latest["other_budgets"] == [{"epochs": 3, "batch_size": 64,
                                        "early_stopping_patience": None, "precision": "fp32",
                                        "training_seed": 0, "training_format": 1, "n_complete_trials": 2}]
    (adam,) = latest["ranking"]
    assert adam["evidence"]["best_configuration_runs"] == 2 and adam["value"] == pytest.approx(0.81)
    assert without["budget"]["early_stopping_patience"] is None
    assert [(e["optimizer"], e["value"]) for e in without["ranking"]] == [("adam", 0.95),
                                                                           ("sgd", 0.90)]
    assert without["noise"]["sigma"] is None  # nothing pooled across the two budgets
    assert by_epochs["budget"] == latest["budget"]  # the parts not given: the latest budget's
    assert again == latest


def test_precision_is_part_of_the_budget(migrated_url: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A run under bf16 autocast is another run than one in fp32: never a repeat of it, nor
    ranked with it. Pooled, adam's fp32 run (0.95) and its bf16 runs (0.80, 0.82) made one
    configuration of three seeds, and sgd (0.90, fp32) was ranked against their mix."""
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    fp32, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    bf16, _ = queue(migrated_url, "a", {**task_spec("mlp", "iris", training={
        "epochs": 3, "precision": "bf16"}), "resources": {"gpus_per_trial": 1}})
    write(migrated_url, fp32, [("adam", 1e-3, 0.95), ("sgd", 1e-2, 0.90)])
    write(migrated_url, bf16, [("adam", 1e-3, 0.80), ("adam", 1e-3, 0.82)], seeds=[1, 2])
    with session_factory(migrated_url)() as s:
        task_id = get_job(s, fp32).task_id
        latest = recommend(s, team, task_id=task_id)
        full = recommend(s, team, task_id=task_id, precision="fp32")
        again = recommend(s, team, task_id=task_id, precision="bf16")
        by_epochs = recommend(s, team, task_id=task_id, epochs=3)
        job = get_job(s, bf16)
        assert job is not None and job.precision == "bf16"
        assert get_job(s, fp32).precision == "fp32"  # type: ignore[union-attr]
        with pytest.raises(SpecError, match="precision: unknown 'fp8'; valid choices: fp32, bf16"):
            recommend(s, team, task_id=task_id, precision="fp8")
    assert latest["budget"] == {"epochs": 3, "batch_size": 64, "early_stopping_patience": None,
                                "precision": "bf16", "training_seed": 0, "training_format": 1}
    assert latest["explanation"].startswith("from 2 complete trials in 1 job of this task at "
                                            "3 epochs, batch size 64, bf16")
    assert latest["other_budgets"] == [{"epochs": 3, "batch_size": 64,
                                        "early_stopping_patience": None, "precision": "fp32",
                                        "training_seed": 0, "training_format": 1, "n_complete_trials": 2}]
    (adam,) = latest["ranking"]
    assert adam["evidence"]["best_configuration_runs"] == 2 and adam["value"] == pytest.approx(0.81)
    assert [(e["optimizer"], e["value"]) for e in full["ranking"]] == [("adam", 0.95),
                                                                        ("sgd", 0.90)]
    assert full["noise"]["sigma"] is None  # nothing pooled across the two precisions
    assert by_epochs["budget"] == latest["budget"] and again == latest


def test_the_training_seed_which_draws_the_split_is_part_of_the_budget(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job's training.seed draws the train/validation split: two seeds are two validation
    sets. Pooled, rmsprop, run only under seed 1 (an easier split: 0.97), was the `winner` over
    adam and sgd measured under seed 0, for its split alone."""
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    first, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    other, _ = queue(migrated_url, "a", task_spec("mlp", "iris", training={"epochs": 3,
                                                                           "seed": 1}))
    write(migrated_url, first, [("adam", 1e-3, 0.90), ("adam", 1e-3, 0.901),
                                ("sgd", 1e-2, 0.85), ("sgd", 1e-2, 0.851)], seeds=[0, 1, 0, 1])
    write(migrated_url, other, [("rmsprop", 1e-3, 0.97), ("rmsprop", 1e-3, 0.971)],
          seeds=[0, 1])
    with session_factory(migrated_url)() as s:
        task_id = get_job(s, first).task_id
        latest = recommend(s, team, task_id=task_id)
        split0 = recommend(s, team, task_id=task_id, training_seed=0)
        assert get_job(s, other).training_seed == 1  # type: ignore[union-attr]
    assert latest["budget"]["training_seed"] == 1
    assert "training.seed 1 (its own data split)" in latest["explanation"]
    assert [e["optimizer"] for e in latest["ranking"]] == ["rmsprop"]
    assert [e["optimizer"] for e in split0["ranking"]] == ["adam", "sgd"]
    assert split0["verdict"] == "winner" and split0["budget"]["training_seed"] == 0
    assert [b["training_seed"] for b in split0["other_budgets"]] == [1]
    # Beside split 1, the answer says where adam stands there; alone (split 1's job left out),
    # that one split's search is all it measured.
    with session_factory(migrated_url)() as s:
        alone = recommend(s, team, task_id=task_id, training_seed=0, exclude_job=other)
    assert split0["splits"] is not None and "measured on one data split" not in split0["summary"]
    assert alone["splits"] is None and alone["summary"].endswith(
        "; measured on one data split (training.seed 0) with one search: a search on another "
        "split can find another family best, so search other splits too (`tuner submit "
        "--splits 3` submits the job on 3; the answer then says where each family stands on "
        "each) to know whether adam holds"), alone["summary"]
    # What the trials left out differ in, said: "at other budgets" read as other epochs.
    assert "; 2 trials that differ in data split (training.seed) are not pooled with them" \
        in split0["explanation"]
    # ... and which split it is, the default one too (seed 0 went unnamed beside that)
    assert "at 3 epochs, batch size 64, training.seed 0 (its own data split); 2 trials" \
        in split0["explanation"], split0["explanation"]
    # The CLI lists the other budget with its seed, the default one included.
    from cli.render import _budget_parts
    assert _budget_parts(split0["other_budgets"][0], "/", split0["budget"]) == "/training.seed 1"
    assert _budget_parts(latest["other_budgets"][0], "/", latest["budget"]) == "/training.seed 0"


def test_the_answer_says_where_its_families_stand_on_the_tasks_other_splits(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A team that searched a task on three data splits asks whether the answer holds beyond
    its split. Each split is ranked on its own (never pooled): adam, the winner on split 0, is
    behind sgd on split 1, and rmsprop, never run on split 0, is tied with adam on split 2.
    The answer says so, in its fields, its summary and its words in brief."""
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    jobs = {}
    for seed in (2, 1, 0):  # split 0's job last: the most recent, so the default answer's
        jobs[seed], team = queue(migrated_url, "a", task_spec("mlp", "iris", training={
            "epochs": 3, "seed": seed}))
    write(migrated_url, jobs[2], [("adam", 1e-3, 0.95), ("adam", 1e-3, 0.951),
                                  ("rmsprop", 1e-3, 0.95), ("rmsprop", 1e-3, 0.952)],
          seeds=[0, 1, 0, 1])
    write(migrated_url, jobs[1], [("adam", 1e-3, 0.80), ("adam", 1e-3, 0.801),
                                  ("sgd", 1e-2, 0.88), ("sgd", 1e-2, 0.881)], seeds=[0, 1, 0, 1])
    write(migrated_url, jobs[0], [("adam", 1e-3, 0.90), ("adam", 1e-3, 0.901),
                                  ("sgd", 1e-2, 0.85), ("sgd", 1e-2, 0.851)], seeds=[0, 1, 0, 1])
    from tuner.recommend import brief

    with session_factory(migrated_url)() as s:
        task_id = get_job(s, jobs[0]).task_id  # type: ignore[union-attr]
        split0 = recommend(s, team, task_id=task_id)
        split2 = recommend(s, team, task_id=task_id, training_seed=2)
    assert split0["budget"]["training_seed"] == 0 and split0["verdict"] == "winner"
    sp = split0["splits"]
    assert sp["training_seeds"] == [0, 1, 2]
    assert [(x["training_seed"], x["verdict"], x["leaders"], x["n_complete_trials"])
            for x in sp["per_split"]] == [(0, "winner", ["adam"], 4), (1, "winner", ["sgd"], 4),
                                          (2, "tied", ["rmsprop", "adam"], 4)]
    assert sp["families"]["adam"] == {"leads": [0, 2], "behind": [1], "not_separated": [],
                                      "not_ranked": []}
    assert sp["families"]["rmsprop"] == {"leads": [2], "behind": [], "not_separated": [],
                                         "not_ranked": [0, 1]}
    assert sp["lead_on_every_split"] == []
    assert sp["lead_on_most"] == {"families": ["adam"], "splits": 2}
    assert split0["summary"].endswith(
        "; across the team's 3 data splits at this budget (training.seed 0, this answer's, "
        "and 1, 2; each ranked on its own, never pooled): no family leads on every split (adam "
        "on 2 of 3); adam, the winner on this split, is behind on training.seed 1 (leaders "
        "there: sgd on training.seed 1); leading on another split, not on this one: sgd "
        "(training.seed 1), rmsprop (training.seed 2); not tried on this split, tried on "
        "another: rmsprop (training.seed 2)"), split0["summary"]
    assert "12 families not tried on this data split at this budget" in split0["summary"]
    assert brief(split0) == "adam is best of 2 ranked: clear of the others; on 3 data " \
                            "splits, none leads on all (adam on 2 of 3)"
    # Asked about split 2: its own split first, the others the most recent first.
    assert split2["splits"]["training_seeds"] == [2, 0, 1]
    assert "rmsprop, listed first on this split, is not ranked on training.seed 0, 1" \
        in split2["summary"], split2["summary"]
    assert "this split's other leaders not leading on every split: adam" in split2["summary"]
    assert split2["summary"].endswith("; not tried on this split, tried on another: sgd "
                                      "(training.seed 0, 1)"), split2["summary"]
    # `tuner recommend` lists the splits, and its last line says it in brief.
    from cli.render import print_recommendation

    print_recommendation(split0)
    shown = " ".join(capsys.readouterr().out.split())  # as one line, wherever it wrapped
    assert " by data split (each ranked on its own): training.seed 0 (this answer): winner: " \
           "adam (4 trials); training.seed 1: winner: sgd (4 trials); training.seed 2: tied: " \
           "rmsprop, adam (4 trials) in short: adam is best of 2 ranked: clear of the others; on 3 data " \
           "splits, none leads on all (adam on 2 of 3); " in shown, shown


def test_the_untuned_default_is_held_to_each_splits_leader_on_that_split(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A task searched with the baseline on four data splits: adam, the answer's family, beats
    it on split 0, is level with it within the noise on split 1, completed no trial on split 2
    and is behind it on split 3. The answer (split 0) said "following the answer beats AdamW
    ... on this task" from one validation set; it says so of its split, and on how many of the
    splits where both ran adam beat it (not each split's own leader: sgd on split 2, which the
    answer does not advise). Split by split, adam is the subject: "ahead of it" on 0, "behind
    it" on 3 (it said "beaten" on 0 and "ahead of it" on 3, the baseline's words)."""
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    jobs = {}
    for seed in (3, 2, 1, 0):
        jobs[seed], team = queue(migrated_url, "a", task_spec("mlp", "iris", training={
            "epochs": 3, "seed": seed}))
    write(migrated_url, jobs[0], [("adam", 1e-3, 0.95), ("adam", 1e-3, 0.951)], seeds=[0, 1])
    write_baseline(migrated_url, jobs[0], [(1e-3, 0.80, 0), (1e-3, 0.81, 1)])
    write(migrated_url, jobs[1], [("adam", 1e-3, 0.93), ("adam", 1e-3, 0.94)], seeds=[0, 1])
    write_baseline(migrated_url, jobs[1], [(1e-3, 0.925, 0), (1e-3, 0.935, 1)])
    write(migrated_url, jobs[2], [("sgd", 1e-2, 0.85), ("sgd", 1e-2, 0.851)], seeds=[0, 1])
    write_baseline(migrated_url, jobs[2], [(1e-3, 0.70, 0)])
    write(migrated_url, jobs[3], [("adam", 1e-3, 0.80), ("adam", 1e-3, 0.81)], seeds=[0, 1])
    write_baseline(migrated_url, jobs[3], [(1e-3, 0.95, 0), (1e-3, 0.951, 1)])
    with session_factory(migrated_url)() as s:
        rec = recommend(s, team, task_id=get_job(s, jobs[0]).task_id,  # type: ignore[union-attr]
                        training_seed=0)
    b = rec["baseline"]
    assert rec["budget"]["training_seed"] == 0 and b["verdict"] == "beaten", b
    assert b["splits"]["optimizer"] == "adam"
    assert [(x["training_seed"], x["verdict"]) for x in b["splits"]["per_split"]] \
        == [(0, "beaten"), (3, "ahead"), (2, "not_ranked"), (1, "within_noise")]
    assert (b["splits"]["beaten_on"], b["splits"]["run_on"]) == ([0], [0, 3, 1])
    assert b["summary"].startswith("following the answer beats AdamW at lr 1e-3 with cosine "
                                   "decay (its defaults, no tuning) on this data split of the "
                                   "task: adam (constant) is ahead by 0.145"), b["summary"]
    assert b["summary"].endswith(
        "; split by split, adam (the answer's family, its best configuration on each split) "
        "against it there, by each split's own runs and noise: ahead of it, outside the noise on "
        "training.seed 0; within the noise on training.seed 1; behind it, outside the noise on "
        "training.seed 3; not ranked (no complete trial) on training.seed 2"), b["summary"]
    from cli.render import print_recommendation

    print_recommendation(rec)
    shown = " ".join(capsys.readouterr().out.split())
    assert "; following it beats AdamW at lr 1e-3 with cosine, outside the noise on this " \
           "split; adam beat AdamW at lr 1e-3 with cosine on 1 of the 3 data splits where both " \
           "ran" in shown, shown
    # One split alone (the others' jobs left out): no `splits`, as before.
    with session_factory(migrated_url)() as s:
        alone = recommend(s, team, task_id=get_job(s, jobs[0]).task_id,  # type: ignore[union-attr]
                          training_seed=0, exclude_job=jobs[1])
    assert alone["baseline"]["splits"]["run_on"] == [0, 3]  # splits 2 and 3 are still there
    with session_factory(migrated_url)() as s:
        only = recommend(s, team, task_id=get_job(s, jobs[2]).task_id,  # type: ignore[union-attr]
                         training_seed=1, exclude_job=jobs[0])
    assert only["baseline"]["verdict"] == "within_noise"
    assert only["baseline"]["splits"]["beaten_on"] == [] and \
        only["baseline"]["splits"]["brief"] == ("adam beat AdamW at lr 1e-3 with cosine on 0 of "
                                                "the 2 data splits where both ran")


def test_a_new_split_is_told_of_the_tasks_other_splits_not_of_similar_tasks(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A task searched on splits 0 to 3, asked about split 5 (or a job submitted there): the
    answer is a prediction from the task's own other splits, all four, and says so, where it
    said "the 3 most similar tasks" (three of the four) and the job's sweep note "its other
    training budgets" (the same epochs and batch size)."""
    from tuner.store.jobs import job_spec

    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    zero, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    one, _ = queue(migrated_url, "a", task_spec("mlp", "iris", training={"epochs": 3, "seed": 1}))
    write(migrated_url, zero, [("adam", 1e-3, 0.95), ("adam", 1e-3, 0.951),
                               ("sgd", 1e-2, 0.90), ("sgd", 1e-2, 0.901)], seeds=[0, 1, 0, 1])
    write(migrated_url, one, [("adam", 1e-3, 0.93), ("adam", 1e-3, 0.931),
                              ("sgd", 1e-2, 0.93), ("sgd", 1e-2, 0.932)], seeds=[0, 1, 0, 1])
    more = [queue(migrated_url, "a", task_spec("mlp", "iris", training={"epochs": 3, "seed": sd}))[0]
            for sd in (2, 3)]
    for j in more:
        write(migrated_url, j, [("adam", 1e-3, 0.94), ("sgd", 1e-2, 0.92)])
    new, _ = queue(migrated_url, "a", task_spec("mlp", "iris", training={"epochs": 3, "seed": 5},
                                                 budget={"n_trials": 8}))
    with session_factory(migrated_url)() as s:
        for j in (zero, one, *more):
            get_job(s, j).status = "completed"  # type: ignore[union-attr]
        s.commit()
        task_id = get_job(s, zero).task_id  # type: ignore[union-attr]
        rec = recommend(s, team, task_id=task_id, training_seed=5)
        elsewhere = recommend(s, team, task_id=task_id, epochs=7)  # not a split: other epochs
        job = get_job(s, new)
        d = _dispatcher(migrated_url)
        plan = d._sweep(job, job_spec(job), d._ranking(job, job_spec(job)), [])  # type: ignore[arg-type]
    assert rec["method"] == "transfer" and sorted(rec["from_splits"]) == [0, 1, 2, 3]
    seeds = ", ".join(map(str, rec["from_splits"]))
    assert rec["summary"].startswith(
        f"adam scores best over 4 other data splits of this task at this budget (training.seed "
        f"{seeds}); a prediction from the task's other data splits, not a measurement on this "
        f"one (each split's validation set is its own): a job on this split measures the "
        f"families; 12 families have no complete trial on any of these splits"), rec["summary"]
    assert rec["explanation"] == (
        f"no history for this task on this data split (training.seed 5) at this budget; ranked "
        f"from its other data splits at this budget, each ranked on its own (never pooled): "
        f"training.seed {seeds}")
    # `tuner recommend` names the split each family's configuration comes from
    from cli.render import print_recommendation

    monkeypatch.setenv("COLUMNS", "200")
    print_recommendation(rec)
    shown = capsys.readouterr().out
    assert "from split" in shown and f"task {task_id} (" not in shown, shown
    split_of = rec["ranking"][0]["source_task"]["budget"]["training_seed"]
    assert f"training.seed {split_of}" in shown.split("\n")[4], shown
    assert elsewhere["method"] == "transfer" and elsewhere["from_splits"] is None
    assert "most similar tasks" in elsewhere["summary"], elsewhere["summary"]
    assert plan is not None and plan.notes()[0].startswith(
        f"defaults sweep, in this order (this task's ranking on its other data splits at this "
        f"budget (training.seed {seeds}) in your team's history): adam, sgd"), plan.notes()


def test_start_from_is_a_leader_that_leads_on_every_split(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """rmsprop and adam are tied on split 0, rmsprop listed first (the better value, within the
    noise); on split 1 adam is the winner and rmsprop behind. The configuration to start from
    is adam's, the leader shown behind on neither split, and the summary says why."""
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    one, team = queue(migrated_url, "a", task_spec("mlp", "wine", training={"epochs": 3,
                                                                            "seed": 1}))
    zero, _ = queue(migrated_url, "a", task_spec("mlp", "wine"))
    write(migrated_url, one, [("adam", 1e-3, 0.90), ("adam", 1e-3, 0.901),
                              ("rmsprop", 1e-3, 0.85), ("rmsprop", 1e-3, 0.851)],
          seeds=[0, 1, 0, 1])
    write(migrated_url, zero, [("rmsprop", 2e-3, 0.95), ("rmsprop", 2e-3, 0.952),
                               ("adam", 3e-3, 0.95), ("adam", 3e-3, 0.951)], seeds=[0, 1, 0, 1])
    write_baseline(migrated_url, zero, [(1e-3, 0.80, 0)])
    with session_factory(migrated_url)() as s:
        rec = recommend(s, team, task_id=get_job(s, zero).task_id)  # type: ignore[union-attr]
    assert rec["budget"]["training_seed"] == 0 and rec["verdict"] == "tied"
    assert rec["leaders"] == ["rmsprop", "adam"] and rec["splits"]["lead_on_every_split"] == ["adam"]
    assert rec["splits"]["lead_on_most"] is None  # said only when none leads on every split
    assert (rec["start_from"]["optimizer"], rec["start_from"]["params"]) == ("adam",
                                                                            {"adam.lr": 3e-3})
    # `tuner recommend` says it, as it lists rmsprop first
    from cli.render import print_recommendation

    monkeypatch.setenv("COLUMNS", "200")
    print_recommendation(rec)
    assert "start from: adam with constant, lr=0.003" in capsys.readouterr().out
    # Following the answer is training adam: adam is held to the untuned default.
    assert (rec["baseline"]["leader"], rec["baseline"]["splits"]["optimizer"]) == ("adam", "adam")
    assert rec["baseline"]["summary"].startswith(
        "following the answer beats AdamW at lr 1e-3 with cosine decay (its defaults, no tuning) "
        "on this data split of the task: adam (constant)"), rec["baseline"]["summary"]
    assert "rmsprop, listed first on this split, is behind on training.seed 1 (leaders there: " \
           "adam on training.seed 1); adam, also among this split's leaders, leads on every " \
           "split: start_from is its configuration" in rec["summary"], rec["summary"]
    # Without split 1's job (as the dispatcher asks, leaving a job out), split 0 stands alone:
    # no splits (not a split 1 with no trials), and start_from is the family listed first.
    with session_factory(migrated_url)() as s:
        alone = recommend(s, team, task_id=get_job(s, zero).task_id,  # type: ignore[union-attr]
                          training_seed=0, exclude_job=one)
    assert alone["splits"] is None and alone["start_from"]["optimizer"] == "rmsprop"


def test_another_releases_training_code_is_another_budget(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of an earlier release's training code (a job recorded at another
    `TRAINING_FORMAT`) are not repeats of this release's: adam's 0.80 under the old code and
    its 0.95 now are not one configuration of two seeds. The old runs are another budget of
    the task, said so; the current ones are what the answer is about."""
    from sqlalchemy import update

    from tuner.spec import TRAINING_FORMAT
    from tuner.store.models import Job

    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    old, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    now, _ = queue(migrated_url, "a", task_spec("mlp", "iris"))
    with session_factory(migrated_url)() as s:
        assert get_job(s, now).training_format == TRAINING_FORMAT  # type: ignore[union-attr]
        s.execute(update(Job).where(Job.id == old).values(training_format=TRAINING_FORMAT - 1))
        s.commit()
    write(migrated_url, old, [("adam", 1e-3, 0.80), ("sgd", 1e-2, 0.70)], seeds=[1, 1])
    write(migrated_url, now, [("adam", 1e-3, 0.95), ("sgd", 1e-2, 0.90)])
    with session_factory(migrated_url)() as s:
        task_id = get_job(s, now).task_id
        latest = recommend(s, team, task_id=task_id)
        earlier = recommend(s, team, task_id=task_id, training_format=TRAINING_FORMAT - 1)
    assert latest["budget"]["training_format"] == TRAINING_FORMAT
    assert [(e["optimizer"], e["value"]) for e in latest["ranking"]] == [("adam", 0.95),
                                                                          ("sgd", 0.90)]
    assert latest["noise"]["sigma"] is None  # nothing pooled across the two releases
    assert [(b["training_format"], b["n_complete_trials"]) for b in latest["other_budgets"]] \
        == [(TRAINING_FORMAT - 1, 2)]
    assert [e["value"] for e in earlier["ranking"]] == [0.80, 0.70]
    assert "another release's training code" in earlier["explanation"]


def _corpus_file(path: Path) -> Path:
    """A two-task reference corpus: adam clearly ahead of sgd on an mlp/iris-like task."""
    from tuner.trial import config_key

    js = JobSpec.model_validate(task_spec("mlp", "iris"))
    f = inspect_task(js).to_json()
    features = {k: v for k, v in f.items() if k not in ("fingerprint", "metric", "direction")}
    rows = []
    for opt, lr, values in (("adam", 3e-3, [0.96, 0.955, 0.962, 0.958]),
                            ("sgd", 0.1, [0.80, 0.81, 0.79, 0.805])):
        params = {f"{opt}.lr": lr}
        for i, v in enumerate(values):
            rows.append({"n": len(rows), "o": opt, "s": "cosine", "p": params, "v": v,
                         "k": config_key(opt, "cosine", params), "c": int(i > 0),
                         "seed": 1000 + i, "b": 8.0, "t": 0.01})
    raw = {"format": 1, "built": {"command": "test"},
           "tasks": [{"id": "mlp-iris-ref", "spec": {**js.model_dump(mode="json")},
                      "metric": "val_accuracy", "direction": "maximize", "features": features,
                      "trials": rows, "unfinished": {}}]}
    out = path / "corpus.json"
    out.write_text(json.dumps(raw))
    return out


def test_reference_corpus_answers_a_new_team_and_cannot_be_written(
        migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = _corpus_file(tmp_path)
    before = corpus.read_bytes()
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", str(corpus))
    _, newcomer = queue(migrated_url, "new", task_spec("linear", "diabetes"))
    with session_factory(migrated_url)() as s:
        rec = recommend(s, newcomer, model="mlp", dataset="wine")
        regression = recommend(s, newcomer, model="linear", dataset="diabetes")
    assert rec["method"] == "transfer" and rec["source"] == "reference corpus"
    assert rec["similar_tasks"][0]["corpus_task"] == "mlp-iris-ref"
    assert rec["similar_tasks"][0]["source"] == "reference corpus"
    assert [r["optimizer"] for r in rec["ranking"]] == ["adam", "sgd"]
    assert rec["start_from"] == {"optimizer": "adam", "schedule": "cosine",
                                 "params": {"adam.lr": 3e-3},
                                 "from": rec["ranking"][0]["source_task"],
                                 "lr_scaling": None}  # same batch size there
    assert "reference corpus" in rec["explanation"]
    # The corpus cannot inform a regression task: a clearly labelled prior.
    assert regression["method"] == "prior" and "not measured" in regression["note"]
    # A team's own history comes first; its trials never reach the corpus or another team.
    j, team_a = queue(migrated_url, "a", task_spec("mlp", "iris"))
    write(migrated_url, j, [("sgd", 0.1, 0.97), ("adam", 3e-3, 0.5)])
    with session_factory(migrated_url)() as s:
        own = recommend(s, team_a, model="mlp", dataset="wine")
        again = recommend(s, newcomer, model="mlp", dataset="wine", cache=False)
    assert own["source"] == "team history" and own["ranking"][0]["optimizer"] == "sgd"
    assert again == rec
    assert corpus.read_bytes() == before


def test_a_team_task_further_away_does_not_shut_out_a_nearer_corpus_task(
        migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A team's one task just similar enough (mlp/wine, asked about mlp/iris) used to be the
    whole answer, though the corpus held a task with mlp/iris's very features. Both are used,
    the nearer first; a family the team's task did not rank is not scored its worst there."""
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", str(_corpus_file(tmp_path)))
    j, team = queue(migrated_url, "c", task_spec("mlp", "wine"))
    write(migrated_url, j, [("sgd", 0.1, 0.97), ("sgd", 0.1, 0.96), ("rmsprop", 1e-3, 0.5),
                            ("rmsprop", 1e-3, 0.51)], seeds=[0, 1, 0, 1])
    with session_factory(migrated_url)() as s:
        rec = recommend(s, team, model="mlp", dataset="iris", epochs=3)
    assert rec["method"] == "transfer" and rec["source"] == "team history and reference corpus"
    corpus_task, wine = rec["similar_tasks"]
    assert corpus_task["corpus_task"] == "mlp-iris-ref" and wine["dataset"] == "wine"
    assert corpus_task["similarity"] > wine["similarity"] >= 0.25
    assert ("the reference corpus's mlp-iris-ref (1.00), nearer than any of the team's, and the "
            "team's mlp/wine at 3 epochs") in rec["explanation"], rec["explanation"]
    scores = {r["optimizer"]: r["score"] for r in rec["ranking"]}
    # adam: best on the nearest (1), not tried on wine: the average family there (0.5)
    assert rec["ranking"][0]["optimizer"] == "adam"
    sim, wsim = corpus_task["similarity"], wine["similarity"]
    assert scores["adam"] == pytest.approx((sim + 0.5 * wsim) / (sim + wsim), abs=1e-4)
    assert scores["sgd"] == pytest.approx(wsim / (sim + wsim), abs=1e-4)
    assert "rmsprop" in scores and len(rec["not_tried"]) == 11


@pytest.mark.usefixtures("ray_session")
def test_warm_start_similar_seeds_from_the_reference_corpus(
        migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", str(_corpus_file(tmp_path)))
    job, _ = queue(migrated_url, "new", task_spec(
        "mlp", "wine", budget={"n_trials": 2}, space={"optimizers": ["adam", "rmsprop"]},
        search={"warm_start": "similar", "confirm_top_k": 0}))
    _dispatcher(migrated_url).run(once=True)
    with session_factory(migrated_url)() as s:
        assert get_job(s, job).status == "completed"
        first = s.scalars(select(TrialRow).where(TrialRow.job_id == job)
                          .order_by(TrialRow.number)).first()
    assert first is not None and first.warm_start and first.optimizer == "adam"
    assert first.schedule == "cosine" and first.params["adam.lr"] == pytest.approx(3e-3)


@pytest.mark.usefixtures("ray_session")
def test_warm_start_at_a_new_batch_size_moves_the_learning_rate(migrated_url: str) -> None:
    """The task ran at batch size 64; a job at 256 with `warm_start: task` is seeded from the
    ranking at its own budget: this task's configurations from the other budget, adam's
    learning rate moved by sqrt(256 / 64) = 2 (seeded as tuned at 64 before)."""
    first, _ = queue(migrated_url, "a", task_spec("mlp", "iris"))
    write(migrated_url, first, [("adam", 3e-3, 0.97), ("rmsprop", 2e-3, 0.93)])
    second, _ = queue(migrated_url, "a", task_spec(
        "mlp", "iris", training={"epochs": 3, "batch_size": 256}, budget={"n_trials": 4},
        space={"optimizers": ["adam", "rmsprop"]},
        search={"warm_start": "task", "confirm_top_k": 0, "sweep_share": 0.5}))
    with session_factory(migrated_url)() as s:
        get_job(s, first).status = "completed"
        s.commit()
    _dispatcher(migrated_url).run(once=True)
    with session_factory(migrated_url)() as s:
        job = get_job(s, second)
        assert job.status == "completed" and job.notes
        notes = list(job.notes)
        rows = s.scalars(select(TrialRow).where(TrialRow.job_id == second)
                         .order_by(TrialRow.number)).all()
    assert [(r.optimizer, r.warm_start) for r in rows[:2]] == [("adam", True), ("rmsprop", True)]
    assert notes[0] == ("warm start first (search.warm_start: task, from this task's history): "
                        "the best known configuration of adam, rmsprop")
    assert notes[1].startswith("defaults sweep, in this order (this task's ranking at its other "
                               "training budgets in your team's history): adam, rmsprop")
    assert rows[0].params["adam.lr"] == pytest.approx(6e-3, rel=1e-6)
    assert rows[1].params["rmsprop.lr"] == pytest.approx(4e-3, rel=1e-6)


def test_the_sweep_goes_on_past_the_teams_ranking_in_the_corpus_order_for_the_task(
        migrated_url: str) -> None:
    """The task's history ranks 2 families; a new job's sweep of 4 runs them first, then the 2
    the reference corpus's tasks most similar to this one rank best, as a first job on the task
    would have (they came in the corpus's order over all its tasks)."""
    from tuner.recommendations import corpus_order
    from tuner.search import sweep_plan
    from tuner.store.jobs import job_spec

    first, _ = queue(migrated_url, "a", task_spec("mlp", "iris"))
    write(migrated_url, first, [("adam", 3e-3, 0.97), ("rmsprop", 2e-3, 0.93)])
    spec = JobSpec.model_validate(task_spec("mlp", "iris", budget={"n_trials": 16}))
    second, _ = queue(migrated_url, "a", spec.model_dump())
    with session_factory(migrated_url)() as s:
        get_job(s, first).status = "completed"
        s.commit()
        job = get_job(s, second)
        d = _dispatcher(migrated_url)
        plan = d._sweep(job, job_spec(job), d._ranking(job, job_spec(job)), [])
        near = [f for f in corpus_order(s, job.task_id, spec.training.epochs,
                                        spec.training.batch_size) if f not in ("adam", "rmsprop")]
    assert plan is not None and plan.families == ["adam", "rmsprop", *near[:2]]
    assert plan.notes()[0].startswith(
        "defaults sweep, in this order (this task's ranking in your team's history, then the "
        "reference corpus's tasks most similar to this one): "
        f"adam, rmsprop, {near[0]}, {near[1]} at")
    # ... which is not the corpus's order over all its tasks, where the sweep went on before
    assert sweep_plan(spec, ["adam", "rmsprop"]).families[2:] != near[:2]


@pytest.mark.usefixtures("ray_session")
def test_warm_start_seeds_task_and_similar(migrated_url: str) -> None:
    first, _ = queue(migrated_url, "a", task_spec("mlp", "iris"))
    write(migrated_url, first, [("adam", 3e-3, 0.97), ("rmsprop", 2e-3, 0.93),
                                ("sgd", 0.2, 0.90), ("adamw", 1e-3, 0.5)])
    # The spec lists momentum first; the sweep runs the families in the task's ranking.
    warm = task_spec("mlp", "iris", budget={"n_trials": 6},
                     space={"optimizers": ["momentum", "rmsprop", "adam"]},
                     search={"warm_start": "task", "sweep_share": 0.5})
    second, _ = queue(migrated_url, "a", warm)
    near = task_spec("mlp", "wine", budget={"n_trials": 3},
                     space={"optimizers": ["adam", "sgd"]}, search={"warm_start": "similar"})
    third, _ = queue(migrated_url, "a", near)
    with session_factory(migrated_url)() as s:  # only the constructed job counts as history
        get_job(s, first).status = "completed"
        s.commit()
    _dispatcher(migrated_url).run(once=True)
    with session_factory(migrated_url)() as s:
        j2, j3 = get_job(s, second), get_job(s, third)
        assert j2.status == j3.status == "completed"
        rows2 = s.scalars(select(TrialRow).where(TrialRow.job_id == second)
                          .order_by(TrialRow.number)).all()
        rows3 = s.scalars(select(TrialRow).where(TrialRow.job_id == third)
                          .order_by(TrialRow.number)).all()
    # Seeds first (best per family, only families this job searches), then the defaults sweep.
    assert [(r.optimizer, r.warm_start) for r in rows2[:2]] == [("adam", True), ("rmsprop", True)]
    assert rows2[0].params["adam.lr"] == pytest.approx(3e-3)
    assert [(r.optimizer, r.defaults_sweep) for r in rows2[2:5]] == [
        ("adam", True), ("rmsprop", True), ("momentum", True)]
    assert j2.notes is not None and j2.notes[:2] == [
        "warm start first (search.warm_start: task, from this task's history): the best known "
        "configuration of adam, rmsprop",
        "defaults sweep, in this order (this task's ranking in your team's history): adam, "
        "rmsprop, momentum at the configuration that scored best over the reference corpus's "
        "tasks"]
    assert not any(r.warm_start for r in rows2[2:])
    (name,) = [n for n in optuna.get_all_study_names(migrated_url) if n.endswith(f"job-{second}")]
    study = optuna.load_study(study_name=name, storage=migrated_url)
    assert study.trials[0].user_attrs.get("warm_start") is True
    # What the study is, for tools that read it directly (optuna-dashboard).
    assert name.split("/")[1:3] == ["mlp", "iris"]
    assert {k: study.user_attrs[k] for k in ("job_id", "model", "dataset", "metric")} == {
        "job_id": second, "model": "mlp", "dataset": "iris", "metric": "val_accuracy"}
    assert study.user_attrs["param_names"]["adam.one_minus_beta1"] == "adam.beta1 = 1 - value"
    # similar: wine borrows iris's best adam and sgd configurations.
    assert [(r.optimizer, r.warm_start) for r in rows3[:2]] == [("adam", True), ("sgd", True)]
    assert rows3[1].params["sgd.lr"] == pytest.approx(0.2)


def test_seeds_used_per_configuration_at_one_budget(migrated_url: str) -> None:
    """What a new job must not run again: each configuration's seeds on the task at its budget,
    other jobs only (the dispatcher passes them to the new study)."""
    from tuner.store.history import Budget, seeds_used
    from tuner.trial import config_key

    j1, _ = queue(migrated_url, "a", task_spec("mlp", "iris"))
    j2, _ = queue(migrated_url, "a", task_spec("mlp", "iris"))
    j3, _ = queue(migrated_url, "a", task_spec("mlp", "iris", training={"epochs": 5}))
    write(migrated_url, j1, [("adam", 1e-3, 0.95), ("sgd", 1e-2, 0.94)])
    write(migrated_url, j2, [("adam", 1e-3, 0.95)], state="pruned")  # any state ran
    write(migrated_url, j3, [("rmsprop", 1e-3, 0.9)])  # another budget: another question
    adam = config_key("adam", "constant", {"adam.lr": 1e-3})
    sgd = config_key("sgd", "constant", {"sgd.lr": 1e-2})
    with session_factory(migrated_url)() as s:
        task_id = get_job(s, j1).task_id
        assert seeds_used(s, task_id, Budget(3, 64)) == {adam: [0], sgd: [0]}
        assert seeds_used(s, task_id, Budget(3, 64), exclude_job=j1) == {adam: [0]}
        assert seeds_used(s, task_id, Budget(9, 64)) == {}
        # A long history: only the most recent pairs (j2's adam came after j1's sgd).
        assert seeds_used(s, task_id, Budget(3, 64), limit=1) == {adam: [0]}


def test_the_learning_rate_picture_shows_each_familys_latest_trials(migrated_url: str) -> None:
    """A task with a long history answers each family's most recent complete trials, a bounded
    number of them, and says how many each family has."""
    from tuner.recommendations import learning_rates

    job, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    write(migrated_url, job, [("adam", 1e-3 * (i + 1), 0.5 + i / 100) for i in range(5)]
          + [("sgd", 1e-2, 0.7), ("sgd", 2e-2, 0.75)])
    write(migrated_url, job, [("adam", 1e-4, 0.1)], state="pruned")  # not complete: not shown
    with session_factory(migrated_url)() as s:
        task = get_job(s, job).task_id
        capped = learning_rates(s, team, task, per_family=3)
        whole = learning_rates(s, team, task)
    # the three latest of adam's five (written in order of learning rate), sorted by rate
    assert capped["families"]["adam"] == [[3e-3, 0.52], [4e-3, 0.53], [5e-3, 0.54]]
    assert capped["families"]["sgd"] == [[1e-2, 0.7], [2e-2, 0.75]]
    assert capped["n_trials"] == {"adam": 5, "sgd": 2} and capped["per_family"] == 3
    assert len(whole["families"]["adam"]) == 5 and whole["n_trials"] == capped["n_trials"]


def test_an_answer_says_what_the_teams_loop_never_used(
        migrated_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A trainable's jobs note at their end what its loop never used of what keeps its runs
    what the budget says (`ctx.split_seed`, `ctx.batch_size`, `ctx.autocast()` in bf16); the
    answer about that budget carries those notes (`loop_notes`) and says so in its summary,
    `tuner recommend` prints them. A job at another budget, and the job's other notes, are not
    carried. (The notes stayed on the job page: the answer, which a team trusts, said nothing.)"""
    from cli.render import print_recommendation
    from tuner.store.jobs import add_notes

    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    loop = {"task": {"trainable": {"name": "digits_loop"}}, "training": {"epochs": 3},
            "budget": {"n_trials": 4}}
    here, team = queue(migrated_url, "a", loop)
    there, _ = queue(migrated_url, "a", {**loop, "training": {"epochs": 4}})
    for job in (here, there):
        write(migrated_url, job, [("adam", 1e-3, 0.90), ("adam", 1e-3, 0.91),
                                  ("sgd", 1e-2, 0.80), ("sgd", 1e-2, 0.81)], seeds=[0, 1, 0, 1])
    split = ("digits_loop never read ctx.split_seed in its 4 trials that ran: its data split "
             "does not follow training.seed, ...")
    batches = "digits_loop never read ctx.batch_size in its 4 trials that ran: ..."
    with session_factory(migrated_url)() as s:
        add_notes(s, here, [split, batches])
        add_notes(s, there, ["digits_loop never entered ctx.autocast() in its 4 trials ..."])
        task_id = get_job(s, here).task_id  # type: ignore[union-attr]
        rec = recommend(s, team, task_id=task_id, epochs=3)
        other = recommend(s, team, task_id=task_id, epochs=4)
    assert rec["loop_notes"] == [split, batches], rec["loop_notes"]
    assert rec["summary"].endswith("; the team's loop never read ctx.split_seed and never read "
                                   "ctx.batch_size in this budget's jobs, so its runs may not "
                                   "be what the budget says (loop_notes)"), rec["summary"]
    assert rec["in_short"].endswith("; its loop's runs may not be what the budget says "
                                    "(loop_notes)"), rec["in_short"]
    assert other["loop_notes"] == ["digits_loop never entered ctx.autocast() in its 4 trials ..."]
    assert "the team's loop never entered ctx.autocast() in this budget's jobs" in \
        other["summary"]
    monkeypatch.setenv("COLUMNS", "300")
    print_recommendation(rec)
    assert f"note: {split}" in capsys.readouterr().out


def test_a_direct_answer_and_a_transfer_from_it_say_when_nothing_was_learned(
        migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """mlp on iris where every family scored a third, what predicting the training set's most
    common class scores on the job's validation set (kept on the job at submit): the direct
    answer leads with it, and an answer at another budget, transferred from this one, says
    that the task it is drawn from ranked failures (it predicted their order without a word)."""
    from tuner.datasets import load_dataset, no_skill

    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    job, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    chance = no_skill(load_dataset("iris", {}, 0), "val_accuracy")
    assert chance is not None
    write(migrated_url, job, [("adam", 1e-3, chance), ("adam", 1e-3, chance - 0.0333),
                              ("sgd", 1e-2, chance - 0.0333), ("sgd", 1e-2, chance)],
          seeds=[0, 1, 0, 1])
    with session_factory(migrated_url)() as s:
        task_id = get_job(s, job).task_id  # type: ignore[union-attr]
        here = recommend(s, team, task_id=task_id)
        there = recommend(s, team, task_id=task_id, epochs=9)
    assert here["method"] == "direct" and here["no_skill"]["verdict"] == "no_better"
    assert here["summary"].startswith(here["no_skill"]["clause"])
    assert there["method"] == "transfer" and (
        f"; on task {task_id} no family did better than a model that ignores its inputs, so its "
        f"order says little of which optimizer learns;") in there["summary"], there["summary"]
    # and its one line too, counting such tasks among those it is drawn from (it said only the
    # predicted order)
    assert there["learned_nothing_on"] == [f"task {task_id}"]
    assert there["in_short"].endswith(
        f", …; on 1 of its {len(there['similar_tasks'])} similar tasks no family beat a model "
        f"that ignores its inputs"), there["in_short"]
    # a transfer from a task whose families learned: nothing said of it
    job2, _ = queue(migrated_url, "a", task_spec("linear", "iris"))
    write(migrated_url, job2, [("adam", 1e-3, 0.95), ("adam", 1e-3, 0.97)], seeds=[0, 1])
    with session_factory(migrated_url)() as s:
        linear = get_job(s, job2).task_id  # type: ignore[union-attr]
        far = recommend(s, team, task_id=linear, epochs=9)
    assert far["method"] == "transfer" and f"task {linear} no family" not in far["summary"]
    assert f"task {linear}" not in far["learned_nothing_on"]


def test_db_backfill_gives_older_jobs_their_no_skill_figure(
        migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    """Jobs recorded before revision 0015 keep no `no_skill`, so answers about their budgets
    never held the best family against a model that ignores its inputs, however long the
    history. `tuner db backfill` computes it from each task's data, once per data split; a
    team's own loop, and a team file rewritten since, are left and said why."""
    import os
    import subprocess
    import sys

    from tuner.config import get_settings
    from tuner.store.models import Job

    monkeypatch.setenv("TUNER_REFERENCE_CORPUS", "none")
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    table = root / "a" / "t.csv"
    table.write_text("x1,x2,y\n" + "".join(f"{i % 7},{i % 3},{i % 2}\n" for i in range(60)))
    monkeypatch.setenv("TUNER_DATA_ROOT", str(root))
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    iris, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    again, _ = queue(migrated_url, "a", task_spec("mlp", "iris"))
    other_split, _ = queue(migrated_url, "a", task_spec("mlp", "iris", training={
        "epochs": 3, "seed": 1}))
    loop, _ = queue(migrated_url, "a", {"task": {"trainable": {"name": "digits_loop"}},
                                        "training": {"epochs": 3}, "budget": {"n_trials": 4}})
    csv = JobSpec.model_validate(task_spec("linear", "file"))
    csv.task.dataset.params = {"path": "t.csv", "target": "y"}  # type: ignore[union-attr]
    with session_factory(migrated_url)() as s:
        rewritten = create_job(s, team, csv, inspect_task(csv, scope="a"))[0].id
        kept = {j.id: j.no_skill for j in s.scalars(select(Job)).all()}
        s.execute(update(Job).values(no_skill=None))  # as a release before 0015 left them
        s.commit()
    assert kept[iris] == kept[again] and kept[iris] is not None and kept[loop] is None
    table.write_text(table.read_text() + "1,1,1\n")  # the team's file changed since
    write(migrated_url, iris, [("adam", 1e-3, 0.97), ("adam", 1e-3, 0.96), ("sgd", 1e-2, 0.9),
                               ("sgd", 1e-2, 0.91)], seeds=[0, 1, 0, 1])
    with session_factory(migrated_url)() as s:
        task_id = get_job(s, iris).task_id  # type: ignore[union-attr]
        before = recommend(s, team, task_id=task_id)
    assert before["no_skill"] is None  # cached so, until the backfill
    cmd = [sys.executable, "-m", "cli", "db", "backfill", "--database-url", migrated_url]
    env = {**os.environ, "TUNER_DATA_ROOT": str(root)}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, check=False)
    said = " ".join(run.stdout.split())
    assert run.returncode == 0, run.stderr
    assert f"task {task_id} (mlp / iris), training.seed 0: no skill {kept[iris]:.4g} for 2 " \
        f"job(s)" in said, said
    assert "training.seed 1: no skill" in said and "filled 3 job(s), left 2" in said, said
    assert "left 1 job(s): a team's own loop: its data is its own" in said
    assert "left 1 job(s): its data or model is not what the jobs ran on" in said
    with session_factory(migrated_url)() as s:
        now = {j.id: j.no_skill for j in s.scalars(select(Job)).all()}
        after = recommend(s, team, task_id=task_id)
    assert {k: now[k] for k in (iris, again, other_split)} == \
        {k: kept[k] for k in (iris, again, other_split)}
    assert now[loop] is None and now[rewritten] is None
    assert after["no_skill"]["value"] == pytest.approx(kept[iris])  # computed again with it
    twice = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env,
                           check=False)
    assert twice.returncode == 0 and "filled 0 job(s), left 2" in " ".join(twice.stdout.split())


def test_a_second_look_is_counted_apart_from_the_confirmation_runs(migrated_url: str) -> None:
    """A run to the end of a trial the pruner stopped (the race's second look) is a
    confirmation run of a trial the answer never had: "radam: 1 trial, 1 confirmation run" read
    as confirming something. The store's evidence and a local run's count them apart
    (`n_second_looks`), and `tuner recommend` and the task page say so."""
    from cli.render import _trials
    from tuner.results import _judged

    job, team = queue(migrated_url, "a", task_spec("mlp", "iris"))
    recs = [TrialRecord(number=0, state="complete", stop_reason="completed", stop_step=3,
                        optimizer="adam", schedule="constant", params={"adam.lr": 1e-3},
                        value=0.95, epochs_run=3, seed=0),
            TrialRecord(number=1, state="pruned", stop_reason="pruned", stop_step=1,
                        optimizer="radam", schedule="constant", params={"radam.lr": 1e-2},
                        value=0.90, epochs_run=1, seed=0),
            TrialRecord(number=2, state="complete", stop_reason="completed", stop_step=3,
                        optimizer="adam", schedule="constant", params={"adam.lr": 1e-3},
                        value=0.94, epochs_run=3, seed=1000, confirm_of=0),
            TrialRecord(number=3, state="complete", stop_reason="completed", stop_step=3,
                        optimizer="radam", schedule="constant", params={"radam.lr": 1e-2},
                        value=0.96, epochs_run=3, seed=1000, confirm_of=1)]
    with session_factory(migrated_url)() as s:
        for r in recs:
            assert record_trial(s, job, r)
        rec = recommend(s, team, model="mlp", dataset="iris")
    assert rec["method"] == "direct", (rec["method"], rec.get("explanation"))
    ev = {e["optimizer"]: e["evidence"] for e in rec["ranking"]}
    assert (ev["radam"]["n_confirmation_runs"], ev["radam"]["n_second_looks"]) == (1, 1)
    assert (ev["adam"]["n_confirmation_runs"], ev["adam"]["n_second_looks"]) == (1, 0)
    local = {e["optimizer"]: e["evidence"] for e in _judged(recs, "maximize", "val_accuracy",
                                                            "local")[1]["ranking"]}
    assert (local["radam"]["n_second_looks"], local["adam"]["n_second_looks"]) == (1, 0)
    radam = next(e for e in rec["ranking"] if e["optimizer"] == "radam")
    assert _trials(radam) == "1 (1 second look)"
    assert _trials({"n_trials": 9, "evidence": {"n_baseline_runs": 5, "n_second_looks": 2}}) \
        == "9 (5 baseline, 2 second looks)"
