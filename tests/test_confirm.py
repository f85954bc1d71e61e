"""The confirmation race on constructed trials: who is confirmed, when it stops (separated,
budget, seeds), and that it waits for a round in flight."""

from __future__ import annotations

import itertools

from tuner.confirm import (
    STOP_BUDGET,
    STOP_NOTHING,
    STOP_SEEDS,
    STOP_SEPARATED,
    RaceTrial,
    candidates,
    confirm_reserve,
    next_round,
)

_n = itertools.count()


def search(opt: str, value: float | None, key: str | None = None) -> RaceTrial:
    n = next(_n)
    return RaceTrial(number=n, optimizer=opt, config_key=key or f"{opt}-{n}", value=value,
                     complete=value is not None, finished=True, params={"optimizer": opt})


def rerun(of: RaceTrial, value: float | None, finished: bool = True) -> RaceTrial:
    return RaceTrial(number=next(_n), optimizer=of.optimizer, config_key=of.config_key,
                     value=value, complete=value is not None and finished, finished=finished,
                     confirm_of=of.number, params=of.params)


def test_reserve_is_a_share_of_the_budget() -> None:
    assert confirm_reserve(30, 3, 0.25) == 7
    assert confirm_reserve(4, 3, 0.25) == 1
    assert confirm_reserve(3, 3, 0.25) == 0  # too small a budget to spare a run
    assert confirm_reserve(30, 0, 0.25) == 0  # confirm_top_k: 0 turns it off
    assert confirm_reserve(2, 3, 0.9) == 1  # the search keeps at least one trial


def test_first_round_confirms_the_best_configuration_of_the_top_families() -> None:
    a1, a2, r1, s1 = search("adam", 0.95), search("adam", 0.96), search("rmsprop", 0.94), \
        search("sgd", 0.90)
    runs, why = next_round([a1, a2, r1, s1, search("sgd", None)], "maximize", top_k=2,
                           max_seeds=3, budget_left=10, base_seed=5)
    assert why is None
    assert [r.confirm_of for r in runs] == [a2.number, r1.number]  # one per family, best first
    assert [r.seed for r in runs] == [1005, 1005]


def _baseline(values: list[float]) -> list[RaceTrial]:
    """The baseline's runs over its seeds: one configuration of AdamW, repeated (a candidate
    where it is AdamW's best)."""
    return [search("adamw", v, key="baseline") for v in values]


def test_a_candidate_the_jobs_own_repeats_already_separate_does_not_race() -> None:
    """The noise is pooled over every repeated configuration of the job, as the answer pools it:
    the baseline's five runs over its seeds measure it before any candidate ran twice. With the
    candidates' runs alone there was none, so `make demo`'s first round ran AdaGrad at 0.28
    beside AdamW at 0.97, and its two scattered runs (a t-interval over two, 12.7 sd/sqrt(2)
    each side) took a third."""
    base = _baseline([0.903, 0.917, 0.914, 0.900, 0.911])
    w, r, g = search("adamw", 0.972), search("rmsprop", 0.961), search("adagrad", 0.278)
    runs, why = next_round([*base, w, r, g], "maximize", top_k=3, max_seeds=3, budget_left=7,
                           base_seed=0)
    assert why is None and [x.confirm_of for x in runs] == [w.number, r.number]
    # Every other candidate separated already: the leader still runs once more (its search run
    # is the best of many, lucky by selection), then the race stops.
    low = _baseline([0.803, 0.817, 0.814, 0.800, 0.811])  # AdamW's best: one more candidate
    a, s = search("adam", 0.95), search("sgd", 0.5)
    runs, why = next_round([*low, a, s], "maximize", top_k=3, max_seeds=3, budget_left=7,
                           base_seed=0)
    assert why is None and [x.confirm_of for x in runs] == [a.number]
    runs, why = next_round([*low, a, s, rerun(a, 0.951)], "maximize", top_k=3, max_seeds=3,
                           budget_left=6, base_seed=0)
    assert runs == [] and why == STOP_SEPARATED


def test_a_candidate_run_over_several_seeds_in_the_search_counts_every_run() -> None:
    """The baseline as AdamW's best configuration: its five runs are its values, as the answer
    counts them (it raced as one run, and ran again as if it had none over other seeds)."""
    base = _baseline([0.950, 0.946, 0.952, 0.948, 0.951])
    a = search("adam", 0.962)
    cands = candidates([*base, a], "maximize", top_k=2)
    assert [len(c.values) for c in cands] == [1, 5]
    # it has its confirm_seeds' worth of runs: only adam runs again
    runs, why = next_round([*base, a], "maximize", top_k=2, max_seeds=3, budget_left=7,
                           base_seed=0)
    assert why is None and [x.confirm_of for x in runs] == [a.number]
    # the leader separated from the rest, measured over its seeds already: nothing to run
    runs, why = next_round([*base, search("sgd", 0.5)], "maximize", top_k=2, max_seeds=3,
                           budget_left=7, base_seed=0)
    assert runs == [] and why == STOP_SEPARATED


def test_race_stops_once_the_leader_is_separated() -> None:
    a, r = search("adam", 0.95), search("rmsprop", 0.80)
    trials = [a, r, rerun(a, 0.951), rerun(r, 0.801)]
    runs, why = next_round(trials, "maximize", top_k=2, max_seeds=3, budget_left=10, base_seed=0)
    assert runs == [] and why == STOP_SEPARATED


def test_race_stops_only_when_the_answer_would_call_the_leader_separated() -> None:
    """Two runs each: the pooled noise (0.0058) parted adam from rmsprop, but the answer's
    t-interval over adam's two runs (0.95, 0.96) reaches rmsprop's: the race used to stop
    ("separated") with the answer calling them tied; it races on."""
    from tuner.recommend import HistoryTrial, rank_families

    a, r, s = search("adam", 0.95), search("rmsprop", 0.90), search("sgd", 0.80)
    trials = [a, r, s, rerun(a, 0.96), rerun(r, 0.91), rerun(s, 0.80)]
    runs, why = next_round(trials, "maximize", top_k=3, max_seeds=3, budget_left=10,
                           base_seed=0)
    assert why is None and [x.confirm_of for x in runs] == [a.number, r.number]
    answer = rank_families([HistoryTrial(job_id="j", number=t.number, optimizer=t.optimizer or "",
                                         schedule=None, params={}, value=float(t.value or 0),
                                         config_key=t.config_key or "", seed=t.number)
                            for t in trials], "maximize")
    assert answer["verdict"] == "tied" and answer["leaders"][:2] == ["adam", "rmsprop"]
    # A loss, on its logarithm: 1e-6 against 0.05-0.2 is apart after one round.
    a, r = search("adam", 1e-6), search("rmsprop", 0.05)
    trials = [a, r, rerun(a, 1.1e-6), rerun(a, 0.9e-6), rerun(r, 0.1), rerun(r, 0.2)]
    runs, why = next_round(trials, "minimize", top_k=2, max_seeds=3, budget_left=10,
                           base_seed=0)
    assert runs == [] and why == STOP_SEPARATED


def test_race_goes_on_while_the_leaders_overlap_then_stops_at_the_budget_or_seeds() -> None:
    a, r = search("adam", 0.95), search("rmsprop", 0.945)
    trials = [a, r, rerun(a, 0.93), rerun(r, 0.96)]
    runs, why = next_round(trials, "maximize", top_k=2, max_seeds=3, budget_left=1, base_seed=0)
    assert why is None and len(runs) == 1  # only one run left in the budget: the leader's
    assert runs[0].seed == 1001  # its second extra seed
    runs, why = next_round(trials, "maximize", top_k=2, max_seeds=3, budget_left=0, base_seed=0)
    assert runs == [] and why == STOP_BUDGET
    runs, why = next_round(trials, "maximize", top_k=2, max_seeds=1, budget_left=5, base_seed=0)
    assert runs == [] and why == STOP_SEEDS


def test_race_waits_for_a_round_in_flight_and_needs_a_complete_trial() -> None:
    a, r = search("adam", 0.95), search("rmsprop", 0.945)
    runs, why = next_round([a, r, rerun(a, None, finished=False)], "maximize", top_k=2,
                           max_seeds=3, budget_left=5, base_seed=0)
    assert runs == [] and why is None
    runs, why = next_round([search("adam", None)], "maximize", top_k=2, max_seeds=3,
                           budget_left=5, base_seed=0)
    assert runs == [] and why == STOP_NOTHING


def test_identical_runs_race_on_with_the_tasks_noise() -> None:
    """The race parts candidates by the answer's rule: the leader's two identical runs are no
    zero-width certainty (until 2026-12-05 the race stopped here, 'separated')."""
    a, s = search("adam", 0.975), search("sgd", 0.96)
    trials = [a, s, rerun(a, 0.975), rerun(s, 0.965), rerun(s, 0.955)]
    runs, why = next_round(trials, "maximize", top_k=2, max_seeds=3, budget_left=10, base_seed=0)
    assert why is None and [r.confirm_of for r in runs] == [a.number, s.number]
    # Every run of every candidate identical: no noise measured, so nobody is separated.
    a, s = search("adam", 0.975), search("sgd", 0.9667)
    runs, why = next_round([a, s, rerun(a, 0.975), rerun(s, 0.9667)], "maximize", top_k=2,
                           max_seeds=3, budget_left=10, base_seed=0)
    assert why is None and len(runs) == 2


def test_minimize_direction() -> None:
    a, r = search("adam", 0.30), search("rmsprop", 0.10)
    runs, _ = next_round([a, r], "minimize", top_k=1, max_seeds=3, budget_left=5, base_seed=0)
    assert [x.confirm_of for x in runs] == [r.number]


def stopped(opt: str, steps: dict[int, float]) -> RaceTrial:
    """A search trial pruned after the epochs `steps` gives (its best value so far by each)."""
    n = next(_n)
    return RaceTrial(number=n, optimizer=opt, config_key=f"{opt}-{n}", value=None,
                     complete=False, finished=True, params={"optimizer": opt, "n": n},
                     intermediate=steps)


def test_a_family_stopped_while_level_with_the_leader_gets_a_second_look() -> None:
    """mlp on a team's diabetes table: rmsprop pruned at epoch 1 inside the leader's interval,
    and the answer could only say a complete run would tell. The race first runs each family
    stopped early while level with the leader's runs at that epoch to the end, then races it
    like a search run."""
    lead = RaceTrial(number=next(_n), optimizer="adam", config_key="adam-best", value=0.95,
                     complete=True, finished=True, params={"optimizer": "adam"},
                     intermediate={1: 0.80, 2: 0.90, 3: 0.95})
    other = RaceTrial(number=next(_n), optimizer="sgd", config_key="sgd-1", value=0.90,
                      complete=True, finished=True, params={"optimizer": "sgd"},
                      intermediate={1: 0.60, 2: 0.80, 3: 0.90})
    ahead = stopped("rmsprop", {1: 0.85})            # ahead of the leader at epoch 1
    level = stopped("nadam", {1: 0.70, 2: 0.92})     # ahead at epoch 2, by less
    behind = stopped("momentum", {1: 0.70})          # behind it at epoch 1
    ranked = stopped("sgd", {1: 0.99})               # sgd completed a trial: ranked already
    diverged = stopped("adagrad", {})                # no epoch where it stood (race_trials)
    trials = [lead, other, ahead, level, behind, ranked, diverged]
    runs, why = next_round(trials, "maximize", top_k=3, max_seeds=3, budget_left=7,
                           base_seed=5)
    assert why is None
    assert [(r.confirm_of, r.seed, r.params) for r in runs] == [
        (ahead.number, 1005, ahead.params), (level.number, 1005, level.params)]
    # off: the race as before (the leader and sgd confirmed)
    plain, _ = next_round(trials, "maximize", top_k=3, max_seeds=3, budget_left=7,
                          base_seed=5, second_look=False)
    assert [r.confirm_of for r in plain] == [lead.number, other.number]
    # within a third of the reserve, the furthest ahead first; the rest stays with the race
    one, _ = next_round(trials, "maximize", top_k=3, max_seeds=3, budget_left=3, base_seed=5)
    assert [r.confirm_of for r in one] == [ahead.number]
    none, _ = next_round(trials, "maximize", top_k=3, max_seeds=3, budget_left=2, base_seed=5)
    assert [r.confirm_of for r in none] == [lead.number, other.number]
    # the race waits for the looks in flight, and never looks at a family twice
    looks = [RaceTrial(number=next(_n), optimizer=t.optimizer, config_key=t.config_key,
                       value=None, complete=False, finished=False, confirm_of=t.number,
                       params=t.params) for t in (ahead, level)]
    assert next_round(trials + looks, "maximize", top_k=3, max_seeds=3, budget_left=5,
                      base_seed=5) == ([], None)
    # rmsprop's look ends ahead of the leader, nadam's behind: rmsprop races as a search run
    done = [RaceTrial(number=lk.number, optimizer=lk.optimizer, config_key=lk.config_key,
                      value=v, complete=True, finished=True, confirm_of=lk.confirm_of,
                      params=lk.params, intermediate={3: v})
            for lk, v in zip(looks, (0.97, 0.6), strict=True)]
    runs, why = next_round(trials + done, "maximize", top_k=3, max_seeds=3, budget_left=5,
                           base_seed=5)
    assert why is None and [r.confirm_of for r in runs][:2] == [done[0].number, lead.number]
    assert all(r.confirm_of not in (ahead.number, level.number) for r in runs)


def test_second_looks_for_a_loss() -> None:
    lead = RaceTrial(number=next(_n), optimizer="adam", config_key="adam-best", value=0.5,
                     complete=True, finished=True, params={"optimizer": "adam"},
                     intermediate={1: 0.9, 2: 0.5})
    ahead, behind = stopped("rmsprop", {1: 0.85}), stopped("sgd", {1: 1.2})
    runs, _ = next_round([lead, ahead, behind], "minimize", top_k=3, max_seeds=3,
                         budget_left=5, base_seed=0)
    assert [r.confirm_of for r in runs] == [ahead.number]


def test_second_looks_are_read_from_a_real_study_and_enqueued_there() -> None:
    """`confirm_round` on an Optuna study: the pruned trials' epochs are read from their
    intermediate values, a diverged trial (pruned with NaN at its last epoch) is no family's
    standing, and the look is enqueued as a confirmation run of the pruned trial; once it has
    run, the job's note names it."""
    import math

    import optuna

    from tuner.attrs import ATTR_CONFIG, ATTR_CONFIRM_OF
    from tuner.confirm import confirm_note, looked_at
    from tuner.search import confirm_round, race_trials
    from tuner.spec import JobSpec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    dist = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    state = optuna.trial.TrialState

    def add(opt: str, x: float, steps: dict[int, float], done: bool) -> None:
        study.add_trial(optuna.trial.create_trial(
            params={"x": x}, distributions=dist, intermediate_values=steps,
            state=state.COMPLETE if done else state.PRUNED,
            value=steps[max(steps)] if done else None,
            user_attrs={ATTR_CONFIG: {"optimizer": opt, "schedule": "constant",
                                      "params": {f"{opt}.lr": x}}}))

    add("adam", 0.1, {1: 0.80, 2: 0.90, 3: 0.95}, True)
    add("rmsprop", 0.2, {1: 0.85}, False)                  # ahead at epoch 1: looked at
    add("nadam", 0.3, {1: 0.90, 2: math.nan}, False)       # diverged: not
    add("sgd", 0.4, {1: 0.50}, False)                      # behind: not
    spec = JobSpec.model_validate({"task": {"model": {"name": "mlp"},
                                            "dataset": {"name": "iris"}},
                                   "training": {"epochs": 3, "seed": 2}})
    assert confirm_round(study, spec, budget_left=7) == (1, None)
    (look,) = study.get_trials(states=(state.WAITING,))
    assert look.user_attrs[ATTR_CONFIRM_OF] == 1
    assert look.system_attrs["fixed_params"] == {"x": 0.2}  # the pruned trial's configuration
    assert look.user_attrs["seed"] == 1002
    # run to the end (as a worker would), it is the family's second look
    trial = study.ask()
    assert trial.number == look.number
    trial.set_user_attr(ATTR_CONFIG, {"optimizer": "rmsprop", "schedule": "constant",
                                      "params": {"rmsprop.lr": 0.2}})
    study.tell(trial, 0.97)
    assert looked_at(race_trials(study.get_trials())) == ["rmsprop"]
    assert confirm_note(7, 30, "the reserved share of the budget is spent", ["rmsprop"]) == (
        "confirmation: 7 runs (23% of the budget), 1 of them a second look at a family "
        "stopped early while level with the leader, run to the end (rmsprop); stopped: the "
        "reserved share of the budget is spent")
    # with second looks off the round confirms the leader alone
    off = JobSpec.model_validate({**spec.model_dump(), "search": {"second_look": False}})
    fresh = optuna.create_study(direction="maximize")
    for t in study.get_trials()[:4]:
        fresh.add_trial(t)
    assert confirm_round(fresh, off, budget_left=7) == (1, None)
    (again,) = fresh.get_trials(states=(state.WAITING,))
    assert again.user_attrs[ATTR_CONFIRM_OF] == 0
