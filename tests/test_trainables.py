"""Trainables: a team's own training loop (tests/plugin_pkg, installed through entry points)
through `tuner run` and through the service, with complete, pruned, diverged and failed trials."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tuner.errors import SpecError
from tuner.search import run_search
from tuner.spec import JobSpec
from tuner.tasks import inspect_task

OWN = {"task": {"trainable": {"name": "digits_loop", "params": {"width": 32}}},
       "space": {"optimizers": ["adam", "sgd"], "schedules": ["constant"],
                 # sgd at a tiny rate: it learns nothing, so the pruner has a loser to stop
                 "overrides": {"sgd.lr": {"low": 1e-7, "high": 1e-6}}},
       "training": {"epochs": 4, "batch_size": 64},
       # every family at defaults first (sweep_share 1): the pruner meets sgd at once
       "search": {"pruner": "asha", "confirm_top_k": 0, "sweep_share": 1.0},
       "budget": {"n_trials": 3}}


def spec(**changes: Any) -> JobSpec:
    raw: dict[str, Any] = {k: dict(v) for k, v in OWN.items()}
    for k, v in changes.items():
        raw[k] = {**raw.get(k, {}), **v}
    return JobSpec.model_validate(raw)


def test_spec_names_a_trainable_or_a_model_and_dataset() -> None:
    with pytest.raises(ValueError, match="brings its own model and data"):
        JobSpec.model_validate({"task": {"trainable": {"name": "digits_loop"},
                                         "model": {"name": "mlp"}}})
    with pytest.raises(ValueError, match=r"task\.dataset: required \(or name a task.trainable"):
        JobSpec.model_validate({"task": {"model": {"name": "mlp"}}})
    with pytest.raises(ValueError, match=r"unknown trainable 'nope'.*valid choices: .*digits_loop"):
        JobSpec.model_validate({"task": {"trainable": {"name": "nope"}}})
    # The submit check reads what the trainable declares; nothing is loaded or built.
    f = inspect_task(spec())
    assert (f.kind, f.metric, f.n_classes, f.input_shape) == ("classification", "val_accuracy",
                                                              10, [1, 8, 8])
    with pytest.raises(SpecError, match=r"task\.metric"):
        inspect_task(spec(task={"trainable": {"name": "digits_loop"}, "metric": "val_r2"}))
    # It declares the params it reads (`params`): a typo is refused, at submit and in `tuner
    # run`, naming them (it trained at the default width without a word) ...
    typo = spec(task={"trainable": {"name": "digits_loop", "params": {"widht": 32}}})
    said = ("task.trainable.params: digits_loop does not read 'widht'; valid choices: alive, "
            "smoothing, width")
    with pytest.raises(SpecError) as refused:
        inspect_task(typo)
    assert str(refused.value) == said
    with pytest.raises(SpecError) as refused:
        run_search(typo)
    assert str(refused.value) == said
    # ... and one given as another JSON kind than its default: "32" trained as 32 through the
    # loop's int() but was another task than 32 (another digest); 32.5 trained as 32.
    for given, said in [
            ({"width": "32"}, "task.trainable.params.width: digits_loop reads an integer (its "
                              "default: 64), got '32' (a string)"),
            ({"width": 32.5}, "task.trainable.params.width: digits_loop reads an integer (its "
                              "default: 64), got 32.5 (a number)"),
            ({"width": True}, "task.trainable.params.width: digits_loop reads an integer (its "
                              "default: 64), got True (a boolean)"),
            ({"alive": 1}, "task.trainable.params.alive: digits_loop reads a boolean (its "
                           "default: True), got 1 (an integer)"),
            ({"smoothing": [0.1]}, "task.trainable.params.smoothing: digits_loop reads a number "
                                   "(its default: 0.1), got [0.1] (a list)")]:
        wrong = spec(task={"trainable": {"name": "digits_loop", "params": given}})
        with pytest.raises(SpecError) as refused:
            inspect_task(wrong)
        assert str(refused.value) == said
    with pytest.raises(SpecError, match=r"task\.trainable\.params\.width: .*got '32'"):
        run_search(spec(task={"trainable": {"name": "digits_loop", "params": {"width": "32"}}}))
    # an integer for a number is a number, and the same task as the float (JSON has one kind
    # of number: a JavaScript client writes 1.0 as 1); they were two tasks until 2026-12-07
    ints, floats = (inspect_task(spec(task={"trainable": {
        "name": "digits_loop", "params": {"smoothing": v, "width": 32}}})) for v in (1, 1.0))
    assert ints.fingerprint == floats.fingerprint != floats.written_fingerprint
    # ... and one given at its default is the same task as one left out.
    at_default = inspect_task(spec(task={"trainable": {"name": "digits_loop", "params": {
        "width": 64, "smoothing": 0.1}}}))
    bare = inspect_task(spec(task={"trainable": {"name": "digits_loop", "params": {}}}))
    assert at_default.fingerprint == bare.fingerprint != f.fingerprint
    assert at_default.written_fingerprint != at_default.fingerprint
    # A trainable that declares no params takes any (hangs reads its own).
    inspect_task(spec(task={"trainable": {"name": "hangs", "params": {"marker": "x"}}}))


def test_trainable_runs_with_the_trials_optimizer_pruning_and_record() -> None:
    result = run_search(spec())
    by_state = {r.state: r for r in result.records}
    done = by_state["complete"]
    assert done.optimizer == "adam" and done.stop_step == 4 and done.epochs_run == 4
    assert [s.step for s in done.steps] == [1, 2, 3, 4]
    assert done.value == max(s.value for s in done.steps if s.value is not None) > 0.2  # chance: 0.1
    assert done.seconds_per_epoch > 0 and done.state_bytes_per_param == pytest.approx(8, rel=0.01)
    assert all(s.train_loss is not None and s.val_loss is not None for s in done.steps)
    # the longest it went without progress (what a later job's stall check scales from): at
    # least its first epoch from the loop's start, and every wait between two epochs (each
    # timed at the epoch's report, the epoch's elapsed_s a few microseconds before it: a
    # millisecond's slack; it once failed by 10 microseconds)
    elapsed = [0.0] + [s.elapsed_s or 0.0 for s in done.steps]
    assert done.longest_wait_s is not None and done.longest_wait_s >= max(
        b - a for a, b in itertools.pairwise(elapsed)) - 1e-3 > 0
    pruned = by_state["pruned"]  # sgd at 1e-6, stopped at the first rung
    assert pruned.optimizer == "sgd" and pruned.stop_step < 4
    assert [s.step for s in pruned.steps] == list(range(1, pruned.stop_step + 1))


def test_a_diverging_trainable_is_recorded_diverged() -> None:
    result = run_search(spec(space={"optimizers": ["sgd"], "schedules": ["constant"],
                                    "overrides": {"sgd.lr": {"low": 1e3, "high": 1e4}}},
                             budget={"n_trials": 1}))
    (rec,) = result.records
    assert rec.state == "diverged" and rec.stop_step == 1
    assert "loss" in rec.detail or "became" in rec.detail
    assert len(rec.steps) == 1 and (rec.steps[0].model_extra or {})["partial"] is True


@pytest.mark.parametrize(("trainable", "beats"), [
    ({"name": "digits_loop", "params": {"width": 32}}, 2 * (23 + 1)),
    ({"name": "digits_loop", "params": {"width": 32, "alive": False}}, None),
    ({"name": "hf_text_trainer"}, 2 * (7 + 1))])
def test_a_trainable_that_calls_alive_beats_as_the_built_in_loop_does(
        trainable: dict[str, Any], beats: int | None) -> None:
    """`ctx.alive()` is opt-in: a loop that calls it writes the trial's batch heartbeat (what
    the stall check counts as progress inside an epoch; written here at every call,
    progress_every_s 0): digits_loop after each of its 23 training batches and its evaluation,
    the Hugging Face Trainer's callback at each of its 7 steps and its evaluation batch, each
    of 2 epochs. A loop that does not call it writes none (its `ctx.step` calls are not taken
    for progress) and is judged by its epochs."""
    from tuner.attrs import ATTR_BEATS
    from tuner.objective import Objective
    from tuner.search import create_study

    s = spec(task={"trainable": trainable}, training={"epochs": 2},
             space={"optimizers": ["adam"], "schedules": ["constant"], "overrides": {}},
             budget={"n_trials": 1})
    objective = Objective(s, progress_every_s=0)
    study = create_study(s, objective.direction, None, "alive")
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state.name == "COMPLETE" and len(trial.intermediate_values) == 2
    assert trial.user_attrs.get(ATTR_BEATS) == beats


@pytest.mark.parametrize(("name", "detail"), [
    ("silent", "returned without reporting an epoch"),
    ("crashes", "ValueError: the team's loader lost its shard")])
def test_a_broken_trainable_fails_its_trial_and_the_search_goes_on(name: str,
                                                                  detail: str) -> None:
    result = run_search(spec(task={"trainable": {"name": name}}, budget={"n_trials": 2}))
    assert [r.state for r in result.records] == ["failed", "failed"]
    assert all(detail in r.detail for r in result.records)
    # each keeps the error's traceback, ending where it was raised, with the error
    where = {"silent": 'File "tuner/objective.py"',
             "crashes": 'File "tuner_example_plugin/trainables.py"'}[name]
    for r in result.records:
        assert r.traceback and where in r.traceback.splitlines()[-3], r.traceback
        assert detail in r.traceback.splitlines()[-1], r.traceback


def test_a_tracebacks_files_are_named_under_their_import_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed trial's traceback names each file by its path under the import root it came
    from (what the team's package calls it), not the worker machine's folders; a file under no
    root from its outermost package's folder, or by its name outside any package. It keeps the
    innermost frames (where the error was raised) and the errors it was raised from, and cuts a
    huge one's middle."""
    from tuner.objective import TRACEBACK_FRAMES, short_traceback

    pkg = tmp_path / "site" / "teampkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "loop.py").write_text(
        "def deep(n):\n"
        "    if n == 0:\n"
        "        try:\n"
        "            {}['shard']\n"
        "        except KeyError as e:\n"
        "            raise ValueError('no shard') from e\n"
        "    deep(n - 1)\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    from teampkg.loop import deep  # type: ignore[import-not-found]

    # a package outside sys.path (installed in editable mode, imported through a finder)
    editable = tmp_path / "src" / "team" / "sub"
    editable.mkdir(parents=True)
    for folder in (editable.parent, editable):
        (folder / "__init__.py").write_text("")
    (editable / "fit.py").write_text("def fit(f):\n    f(30)\n")
    outside = compile("from team.sub.fit import fit\ndef call(f):\n    fit(f)\n",
                      str(tmp_path / "elsewhere" / "run.py"), "exec")
    scope: dict[str, Any] = {}
    sys.modules.pop("team", None)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    exec(outside, scope)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path / "src")])
    with pytest.raises(ValueError) as info:
        scope["call"](deep)
    tb = short_traceback(info.value)
    assert str(tmp_path) not in tb, tb
    assert tb.count('File "teampkg/loop.py", line 6, in deep\n') == 1, tb  # where it raised
    assert tb.count('File "teampkg/loop.py", line 4, in deep\n') == 1, tb  # and its cause
    assert "The above exception was the direct cause" in tb, tb
    assert tb.rstrip().endswith("ValueError: no shard"), tb
    # 31 frames deep: the innermost are kept (the recursion's 11 printed as 3, "repeated 8 more
    # times", then the raise); run.py, the outermost, is not among them
    assert TRACEBACK_FRAMES == 12 and "[Previous line repeated 8 more times]\n" in tb, tb
    assert "run.py" not in tb
    info2 = None
    try:
        scope["call"](lambda n: 1 / 0)
    except ZeroDivisionError as e:
        info2 = short_traceback(e)
    assert info2 is not None and 'File "run.py", line 3, in call' in info2, info2
    # An error whose message is huge (a tensor's repr): the frames and its end are kept, the
    # middle cut, within TRACEBACK_CHARS.
    from tuner.trial import TRACEBACK_CHARS

    try:
        scope["call"](lambda n: (_ for _ in ()).throw(ValueError("x" * 50_000 + " the end")))
    except ValueError as e:
        huge = short_traceback(e)
    assert len(huge) <= TRACEBACK_CHARS and 'File "run.py", line 3, in call' in huge, huge[:500]
    assert huge.rstrip().endswith("x the end") and " characters cut ...]\n" in huge
    assert 'File "team/sub/fit.py", line 2, in fit' in info2, info2


@pytest.mark.usefixtures("ray_session")
def test_trainable_through_the_service(migrated_url: str) -> None:
    from tests.test_jobs import assert_consistent_with_optuna, dispatcher, job_of, queue
    from tuner.recommendations import recommend
    from tuner.store.db import session_factory

    job_id = queue(migrated_url, {**OWN, "budget": {"n_trials": 3, "parallelism": 2}})
    dispatcher(migrated_url).run(once=True)
    job = job_of(migrated_url, job_id)
    assert job.status == "completed", job.error
    recs = assert_consistent_with_optuna(migrated_url, job_id)
    # Two trials run at once, so whether the ASHA rung prunes sgd depends on which reports
    # first; pruning itself is asserted in the sequential runs above.
    assert "complete" in {r.state for r in recs} and {r.state for r in recs} <= {
        "complete", "pruned"}
    assert job.task.model_name == "trainable:digits_loop"
    assert not [n for n in job.notes if "split_seed" in n], job.notes  # it draws it from there
    assert job.task.dataset_name == "digits (own pipeline)"
    assert job.task.n_classes == 10
    with session_factory(migrated_url)() as s:
        rec = recommend(s, job.team_id, task_id=job.task_id)
    # The answer follows the evidence: the leader shows the best complete trial's value, and
    # every family with a complete trial is ranked. (Which family leads depends on the race of
    # two parallel trials against the ASHA rungs: one CI run saw adam's default pruned, and a
    # sampled adam and sgd complete at the same chance-level accuracy, a tie the ranking breaks
    # by name.)
    complete = [r for r in recs if r.state == "complete"]
    best = max(r.value for r in complete)
    assert rec["method"] == "direct"
    assert rec["ranking"][0]["value"] == pytest.approx(best)
    assert {e["optimizer"] for e in rec["ranking"]} == {r.optimizer for r in complete}
    leaders = {r.optimizer for r in complete if r.value == pytest.approx(best)}
    assert rec["ranking"][0]["optimizer"] in leaders


def mixed_spec(name: str) -> dict[str, Any]:
    """Three families: adamw learns, sgd at 1e-7 is pruned, momentum at 1e3 diverges."""
    return {"task": {"trainable": {"name": name}},
            "space": {"optimizers": ["adamw", "sgd", "momentum"], "schedules": ["constant"],
                      "overrides": {"sgd.lr": {"low": 1e-7, "high": 1e-6},
                                    "momentum.lr": {"low": 1e3, "high": 1e4}}},
            "training": {"epochs": 3, "batch_size": 32},
            "search": {"pruner": "asha", "confirm_top_k": 0, "sweep_share": 1.0},
            "budget": {"n_trials": 3}}


@pytest.mark.parametrize("name", ["digits_loop", "hf_text_trainer"])
def test_each_example_trainable_through_tuner_run(name: str, tmp_path: Path) -> None:
    """The `tuner run` command itself, in its own process: complete, pruned and diverged."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(mixed_spec(name)))
    run = subprocess.run([str(Path(sys.executable).parent / "tuner"), "run", "--spec",
                          str(path)], check=False, capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "trials: 1 complete, 1 pruned, 1 diverged, 0 failed" in run.stdout, run.stdout
    assert "best trial: adamw" in run.stdout
    # one family completed: the answer says there is nothing to compare it with
    assert "answer: only adamw completed a trial: nothing to compare it with" in run.stdout
    # both examples draw their split from ctx.split_seed, batch by ctx.batch_size and let
    # ctx.report end their trials: nothing to note of them
    assert f"note: {name} never" not in " ".join(run.stderr.split()), run.stderr[-3000:]
    # ... and ends with it in one line, as `tuner recommend` does
    assert " ".join(run.stdout.split()).endswith(
        "in short: only adamw completed a trial; AdamW at lr 1e-3 with cosine not run at this "
        "budget (search.baseline or --baseline runs it)"), run.stdout[-2000:]


def test_tuner_run_stops_when_its_trials_fail_the_same_way(tmp_path: Path) -> None:
    """A loop that raises in its second epoch whatever the configuration: `tuner run` stops
    after 3 such trials (it ran its whole budget), saying why, with the error's traceback
    printed once (Optuna printed it for every trial)."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"task": {"trainable": {"name": "crashes"}},
                                "training": {"epochs": 3}, "budget": {"n_trials": 10}}))
    run = subprocess.run([str(Path(sys.executable).parent / "tuner"), "run", str(path)],
                         check=False, capture_output=True, text=True, timeout=600,
                         cwd=tmp_path)  # the spec as an argument, as `tuner submit` takes it
    assert run.returncode == 2, run.stderr[-3000:]
    assert run.stderr.rstrip().endswith(
        "error: 3 trials failed the same way after 1 epoch, with 3 configurations, and no "
        "trial got further: ValueError: the team's loader lost its shard; a failure that does "
        "not depend on the configuration would fail every trial, so the search stopped there"
    ), run.stderr[-3000:]
    assert run.stderr.count("Traceback") == 1 and run.stderr.count(
        "ValueError: the team's loader lost its shard (as above)") == 2, run.stderr
    assert "failed with value" not in run.stderr


@pytest.mark.usefixtures("ray_session")
def test_the_hugging_face_trainer_through_the_service(migrated_url: str) -> None:
    from tests.test_jobs import assert_consistent_with_optuna, dispatcher, job_of, queue

    job_id = queue(migrated_url, {**mixed_spec("hf_text_trainer"),
                                  "budget": {"n_trials": 3, "parallelism": 2}})
    dispatcher(migrated_url).run(once=True)
    job = job_of(migrated_url, job_id)
    assert job.status == "completed", job.error
    recs = {r.optimizer: r for r in assert_consistent_with_optuna(migrated_url, job_id)}
    assert recs["adamw"].state == "complete" and len(recs["adamw"].steps) == 3
    assert recs["adamw"].value > 0.6  # chance: about 0.5
    assert recs["momentum"].state == "diverged" and recs["momentum"].stop_step == 1
    # sgd learns nothing; pruned unless it finished its first rung before adamw reported
    assert recs["sgd"].state in ("pruned", "complete")
    assert job.task.model_name == "trainable:hf_text_trainer"


def _ran(url: str, spec: dict[str, Any]) -> tuple[Any, list[Any]]:
    """Queue a job, run it through a dispatcher on the test's Ray; the job and its records."""
    from tests.test_jobs import assert_consistent_with_optuna, dispatcher, job_of, queue

    job_id = queue(url, spec)
    dispatcher(url).run(once=True)
    return job_of(url, job_id), assert_consistent_with_optuna(url, job_id)


def _hungry(marker: Path | None, n_trials: int) -> dict[str, Any]:
    params = {"marker": str(marker)} if marker else {}
    return {"task": {"trainable": {"name": "memory_hungry", "params": params}},
            "space": {"optimizers": ["adam"], "schedules": ["constant"]},
            "training": {"epochs": 2, "batch_size": 64},
            "search": {"confirm_top_k": 0},
            "budget": {"n_trials": n_trials}}


def test_what_counts_as_out_of_memory() -> None:
    import torch

    from tuner.objective import memory_error, out_of_memory

    cuda = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nmore")
    assert out_of_memory(cuda) and out_of_memory(MemoryError())
    assert out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 8 GB)"))
    assert not out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not out_of_memory(ValueError("out of memory"))  # not an allocator's error
    assert memory_error(cuda, "cpu") == \
        "out of memory on cpu: OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."


@pytest.mark.usefixtures("ray_session")
def test_a_trial_out_of_memory_runs_again_once(migrated_url: str, tmp_path: Path) -> None:
    """Trials packed on one GPU share its memory, so a trial may find it held by another: its
    device refusing an allocation (a real one, on the CPU here) fails the trial as
    `out_of_memory`, not against the job's failures, and its configuration runs again once. A
    configuration out of memory on its second run too counts as a failure and says what to do,
    a job whose every configuration needs too much ends instead of retrying forever, and the
    answer says that the family was never measured, and why."""
    from tuner.recommendations import recommend
    from tuner.store.db import session_factory
    from tuner.store.jobs import job_summary

    job, recs = _ran(migrated_url, _hungry(tmp_path / "ran", 2))
    assert job.status == "completed", job.error
    first = recs[0]
    assert (first.state, first.stop_reason) == ("failed", "out_of_memory"), first
    assert "out of memory on cpu" in first.detail and "can't allocate memory" in first.detail
    again = [r for r in recs if r.retry_of == first.number]
    assert len(again) == 1 and again[0].state == "complete", recs
    assert again[0].config_key == first.config_key
    # the budget: two trials that ran (the second may be pruned, at its first epoch, by the
    # retry's result); the out-of-memory one took none of it
    assert [r.state == "failed" for r in recs] == [True, False, False], recs

    job, recs = _ran(migrated_url, _hungry(None, 1))
    assert job.status == "failed" and "out of memory" in (job.error or ""), (job.status, job.error)
    assert {(r.state, r.stop_reason) for r in recs} == {("failed", "out_of_memory")}, recs
    firsts = [r for r in recs if r.retry_of is None]
    seconds = [r for r in recs if r.retry_of is not None]
    # each configuration ran twice; the job's one allowed failure, then one more, ended it
    assert len(seconds) == len(firsts) == 2, recs
    assert all(f"out of memory again (trial {r.retry_of} of this job, the same configuration"
               in r.detail for r in seconds), seconds
    assert not any("again" in r.detail for r in firsts)
    with session_factory(migrated_url)() as s:
        assert job_summary(s, job)["failed_reasons"] == {"out_of_memory": 4}
    with session_factory(migrated_url)() as s:
        rec = recommend(s, job.team_id, task_id=job.task_id)
    # nothing completed on this task: the answer is a prediction from the team's similar task
    # (the first job's), and it says that adam ran out of memory on this one
    assert rec["method"] == "transfer" and rec["not_ranked"][0]["optimizer"] == "adam"
    assert rec["not_ranked"][0]["evidence"]["n_out_of_memory"] == 4
    assert "every trial ran out of memory on its device, so nothing is known of their value " \
           "on this task: adam" in rec["summary"], rec["summary"]


@pytest.mark.usefixtures("ray_session")
def test_a_stalled_trial_is_stopped_and_its_job_goes_on(
        migrated_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial that hangs after its first epoch, its process alive (its heartbeat goes on, so
    Optuna never calls it stale): without a stall check its job would never end. The
    dispatcher stops its worker after `budget.stall_s` without an epoch, records it `stalled`
    with the epoch it reported, starts another worker, and the job completes its budget."""
    spec = {**_hungry(None, 2), "task": {"trainable": {
        "name": "hangs", "params": {"marker": str(tmp_path / "hung")}}}}
    # 12 s, not less: the worker started in the hung one's place must reach its first epoch
    # within it (Ray starting a process, torch's import, the data), on a machine whose two
    # cores the other test worker shares
    spec["budget"] = {**spec["budget"], "stall_s": 12}
    spec["search"] = {**spec["search"], "pruner": "none"}  # both trials after it complete
    job, recs = _ran(migrated_url, spec)
    assert job.status == "completed", job.error
    hung = recs[0]
    assert (hung.state, hung.stop_reason) == ("failed", "stalled"), hung
    assert hung.detail.startswith("stalled: no epoch or batch reported for ") and \
        "(limit 12 s: budget.stall_s); its worker was stopped" in hung.detail, hung.detail
    assert [st.step for st in hung.steps] == [1] and hung.epochs_run == 1  # what it reported
    assert [r.state for r in recs] == ["failed", "complete", "complete"], recs  # then its budget
    assert all(r.retry_of is None for r in recs)  # a hang is not run again
    # the job says why its trial failed (the API's job, tuner status)
    from cli.render import print_job
    from tuner.store.db import session_factory
    from tuner.store.jobs import job_summary

    with session_factory(migrated_url)() as s:
        summary = job_summary(s, job)
    assert summary["failed_reasons"] == {"stalled": 1}
    monkeypatch.setenv("COLUMNS", "200")
    print_job(summary)
    assert "progress: 2/2 done (2 complete, 0 pruned, 0 diverged), 1 failed (1 stalled), " \
        "0 running" in capsys.readouterr().out


@pytest.mark.usefixtures("ray_session")
def test_a_hang_before_the_first_epoch_is_timed_from_the_tasks_earlier_jobs(
        migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial that hangs before its job's first epoch (a loader deadlocked on its first
    batch), no `budget.stall_s`: with no epoch seen the job had nothing to scale from and gave
    it a day. An earlier job of the task at the same pace recorded its trials' waits for an
    epoch on this hardware, so the limit is 5 x the longest of them (the ten-minute floor
    lowered here to keep the test short), the trial is stopped `stalled` and the job
    completes."""
    import workers.decisions

    marker = tmp_path / "hung"
    spec = {**_hungry(None, 2), "task": {"trainable": {
        "name": "hangs", "params": {"marker": str(marker), "before_first_epoch": True}}}}
    spec["search"] = {**spec["search"], "pruner": "none"}
    marker.touch()  # the first job never hangs: it records how long its epochs took
    earlier, recs = _ran(migrated_url, spec)
    assert earlier.status == "completed", earlier.error
    assert all(r.longest_wait_s and r.hardware == "cpu" for r in recs), recs
    marker.unlink()  # the next job's first trial hangs before any epoch
    # 12 s, not less: the replacement worker's set-up, on cores another test worker shares
    # (8 s failed once with both test workers training)
    monkeypatch.setattr(workers.decisions, "STALL_MIN", timedelta(seconds=12))
    job, recs = _ran(migrated_url, spec)
    assert job.status == "completed" and job.task_id == earlier.task_id, job.error
    hung = recs[0]
    assert (hung.state, hung.stop_reason, hung.epochs_run) == ("failed", "stalled", 0), hung
    assert "5 x the longest wait for progress (" in hung.detail and "recorded by 1 job of this " \
        "task at this job's batch size, precision, device, loader and resources on cpu)" \
        in hung.detail, hung.detail
    assert [r.state for r in recs] == ["failed", "complete", "complete"], recs


@pytest.mark.usefixtures("ray_session")
def test_a_hang_in_a_new_tasks_first_epoch_is_timed_from_its_batches(
        migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial of a new task (nothing recorded) that hangs in the middle of its first epoch in
    the built-in loop, no `budget.stall_s`: the job had seen no epoch, so it waited a day. Its
    batches went on for a while first, and each beat (a write at most every
    TUNER_PROGRESS_EVERY_S, lowered here) is progress, so the limit is 5 x the longest wait
    between them (the ten-minute floor lowered here to keep the test short): the trial is
    stopped `stalled` with how long it had gone without an epoch or a batch, and the job
    completes."""
    from prometheus_client import REGISTRY

    import workers.decisions
    from tests.test_jobs import assert_consistent_with_optuna, dispatcher, job_of, queue

    def stalled() -> float:
        return REGISTRY.get_sample_value("tuner_dispatcher_trials_stalled_total") or 0.0

    stalled_before = stalled()
    # 12 s, not less: the replacement worker's set-up, on cores another test worker shares
    # (8 s failed once with both test workers training)
    monkeypatch.setattr(workers.decisions, "STALL_MIN", timedelta(seconds=12))
    spec = {"task": {"model": {"name": "tiny_stuck_mid_epoch", "params": {
                "marker": str(tmp_path / "hung"), "after": 12}},
             "dataset": {"name": "digits"}},
            "space": {"optimizers": ["adam"], "schedules": ["constant"]},
            "training": {"epochs": 2, "batch_size": 64},
            "search": {"confirm_top_k": 0, "pruner": "none"}, "budget": {"n_trials": 2}}
    job_id = queue(migrated_url, spec)
    dispatcher(migrated_url, progress_every_s=0.3).run(once=True)
    job, recs = job_of(migrated_url, job_id), assert_consistent_with_optuna(migrated_url, job_id)
    assert job.status == "completed", job.error
    hung = recs[0]
    assert (hung.state, hung.stop_reason, hung.epochs_run) == ("failed", "stalled", 0), hung
    assert hung.detail.startswith("stalled: no epoch or batch reported for ") and \
        "5 x the longest wait for progress (" in hung.detail and " s in this job on cpu" in \
        hung.detail, hung.detail
    assert [r.state for r in recs] == ["failed", "complete", "complete"], recs
    assert stalled() == stalled_before + 1  # /metrics counts it


@pytest.mark.usefixtures("ray_session")
def test_a_worker_hung_holding_the_interpreter_is_stopped(migrated_url: str,
                                                          tmp_path: Path) -> None:
    """A trial that hangs in a computation that never lets go of the interpreter: its heartbeat
    thread cannot run, so Optuna fails it as lost (`worker_lost`) and enqueues it again, but
    its worker is still there, busy forever, and the job would wait for it forever. The
    dispatcher stops that worker after `budget.stall_s` without progress and starts another,
    which runs the retry and the rest of the budget."""
    spec = {**_hungry(None, 2), "task": {"trainable": {
        "name": "hangs", "params": {"marker": str(tmp_path / "hung"), "hold": True}}}}
    # longer than the test dispatcher's heartbeat grace (3 s): the trial is failed as lost
    # first, and only its worker is left to stop
    spec["budget"] = {**spec["budget"], "stall_s": 12}
    spec["search"] = {**spec["search"], "pruner": "none"}
    job, recs = _ran(migrated_url, spec)
    assert job.status == "completed", job.error
    lost = recs[0]
    assert (lost.state, lost.stop_reason) == ("failed", "worker_lost"), lost
    again = [r for r in recs if r.retry_of == lost.number]
    assert len(again) == 1 and again[0].state == "complete", recs
    assert [r.state for r in recs] == ["failed", "complete", "complete"], recs


def test_the_device_path_on_the_cpu() -> None:
    """What a worker and a trial run on, from what Ray assigned and what the spec asks: a GPU
    assigned is cuda (its model named as the hardware), unless the spec says cpu; a spec that
    demands cuda never runs on the CPU silently; bf16 autocast only on cuda."""
    import torch

    from tuner.trainable import TrialContext
    from tuner.training import hardware_name, resolve_device
    from workers.trial_worker import assigned_device

    assert [assigned_device(ids, pref) for ids, pref in [
        ([0], "auto"), ([0.5], "cuda"), ([], "auto"), ([0], "cpu")]] == ["cuda", "cuda", "cpu", "cpu"]
    cuda = torch.device("cuda")
    assert resolve_device("auto", cuda) == cuda and resolve_device("cpu", cuda).type == "cpu"
    assert resolve_device("auto", None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(RuntimeError, match="cuda requested but no GPU is assigned"):
        resolve_device("cuda", torch.device("cpu"))
    assert hardware_name("cpu") == "cpu"
    s = spec(training={"precision": "bf16"})
    ctx = TrialContext(None, s.training, "val_accuracy", torch.device("cpu"))  # type: ignore[arg-type]
    assert ctx.precision == "fp32" and not isinstance(ctx.autocast(), torch.autocast)
    ctx = TrialContext(None, s.training, "val_accuracy", cuda)  # type: ignore[arg-type]
    with warnings.catch_warnings():  # without CUDA here torch warns it will not autocast
        warnings.simplefilter("ignore", UserWarning)
        auto = ctx.autocast()
    assert ctx.precision == "bf16" and isinstance(auto, torch.autocast)
    assert auto.fast_dtype == torch.bfloat16


def test_a_trainables_runs_of_a_job_share_its_data_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every trial of a job, its confirmation runs (seeds training.seed + 1000, ...) included,
    gets the job's training.seed as `ctx.split_seed`, which the example loop draws its split
    from: a run over another seed measures the seed-to-seed noise on the same validation set.
    (The example drew its split from the trial's seed: the confirmation run with seed 1003
    trained and was scored on another split.)"""
    from tuner_example_plugin import trainables

    split_seeds: list[int] = []
    data = trainables._data

    def seen(seed: int) -> Any:
        split_seeds.append(seed)
        return data(seed)

    monkeypatch.setattr(trainables, "_data", seen)
    result = run_search(spec(space={"optimizers": ["adam"], "schedules": ["constant"],
                                    "overrides": {}},
                             training={"epochs": 2, "seed": 3},
                             search={"pruner": "none", "confirm_top_k": 1, "confirm_share": 0.5,
                                     "sweep_share": 1.0},
                             budget={"n_trials": 4}))
    seeds = sorted(r.seed for r in result.records)
    assert seeds[0] == 3 and max(seeds) >= 1003, seeds  # search trials and confirmation runs
    assert split_seeds == [3] * len(result.records), split_seeds
    # no note of the loop's (it read ctx.split_seed): only the race's, as every run ends with
    (race,) = result.late_notes
    assert race.startswith("confirmation: ") and result.summary()["notes"] == result.notes + [race]


def test_a_trainable_that_never_reads_its_split_seed_is_said_to(tmp_path: Path) -> None:
    """A loop that splits its data by `ctx.seed` (as the example did), or has a fixed split,
    never reads `ctx.split_seed`: the job's notes say, at its end, that its split does not
    follow training.seed; `tuner run` prints it after the trials. One trial that reads it is
    enough to say nothing. So for `ctx.batch_size`, and for bf16 on a GPU never applied
    (`ctx.autocast()` never entered, `ctx.precision` never read)."""
    from tuner.trainable import trainable_notes

    raw = {"task": {"trainable": {"name": "sleeps", "params": {"epoch_s": 0.0}}},
           "space": {"optimizers": ["adam"], "schedules": ["constant"]},
           "training": {"epochs": 2}, "search": {"pruner": "none", "confirm_top_k": 0},
           "budget": {"n_trials": 2}}
    result = run_search(JobSpec.model_validate(raw))
    note, batches = result.late_notes  # it reads no data, so never its batch size either
    assert batches.startswith("sleeps never read ctx.batch_size in its 2 trials"), batches
    assert note.startswith("sleeps never read ctx.split_seed in its 2 trials that ran: its data "
                           "split does not follow training.seed"), note
    assert note in result.summary()["notes"]
    epoch = [{"step": 1}]
    assert trainable_notes("loop", [{"loop_used": ["batch_size"], "steps": epoch},
                                    {"loop_used": ["batch_size", "split_seed"],
                                     "steps": epoch}]) == []
    # a loop that batches its own way: its runs are kept under training.batch_size all the same
    (own,) = trainable_notes("loop", [{"loop_used": ["split_seed"], "steps": epoch}])
    assert own.startswith("loop never read ctx.batch_size in its 1 trial that ran: its batches "
                          "are its own size"), own
    assert trainable_notes("loop", [None, {"detail": "failed before the loop ran"},
                                    {"loop_used": [], "steps": []}]) == []  # raised first
    # On a GPU in bf16, a loop that never entered ctx.autocast() trained in fp32 (the record's
    # precision is the context's: bf16 on cuda only).
    gpu = [{"loop_used": ["batch_size", "split_seed"], "steps": epoch, "precision": "bf16"}]
    (note,) = trainable_notes("loop", gpu * 3)
    assert note.startswith("loop never entered ctx.autocast() in its 3 trials in bf16 on a GPU: "
                           "they trained in fp32"), note
    assert trainable_notes("loop", [{**gpu[0], "loop_used": ["autocast", "batch_size",
                                                             "split_seed"]}]) == []
    # ... a loop that reads ctx.precision applies it its own way (the Hugging Face example)
    assert trainable_notes("loop", [{**gpu[0], "loop_used": ["batch_size", "precision",
                                                             "split_seed"]}]) == []
    assert trainable_notes("loop", [{**gpu[0], "precision": "fp32"}]) == []
    # A loop that returned before its epochs, no early stopping asked: shorter runs than the
    # budget says (with a patience, stopping early is the budget's).
    short = [{**gpu[0], "precision": "fp32", "stop_reason": s, "epochs_run": e}
             for s, e in (("early_stopped", 3), ("completed", 8), ("early_stopped", 5))]
    (note,) = trainable_notes("loop", short)
    assert note.startswith("loop never reached training.epochs in 2 of its 3 trials that ran, "
                           "with no training.early_stopping_patience asked: its loop returned "
                           "before the epochs were spent (at most 5)"), note
    assert trainable_notes("loop", short, patience=2) == []
    import torch

    from tuner.trainable import TrialContext

    training = JobSpec.model_validate({**raw, "training": {"precision": "bf16"}}).training
    ctx = TrialContext(None, training, "val_accuracy", torch.device("cpu"))  # type: ignore[arg-type]
    with ctx.autocast():
        pass
    assert ctx.runs_in == "fp32" and ctx.used == {"autocast"}  # the service's read is not one
    assert ctx.split_seed == 0 and ctx.precision == "fp32"
    assert ctx.used == {"autocast", "split_seed", "precision"}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))
    shown = subprocess.run([str(Path(sys.executable).parent / "tuner"), "run", "--spec",
                            str(path)], check=False, capture_output=True, text=True,
                           timeout=300, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "note: sleeps never read ctx.split_seed in its 2 trials that ran" in " ".join(
        shown.stderr.split()), shown.stderr[-3000:]


def test_a_trainable_stops_early_as_the_built_in_loop_does() -> None:
    """`training.early_stopping_patience` is part of the budget an answer is about: a
    trainable's loop ran every epoch under a budget of early stopping, its runs kept as runs
    that stop early. `ctx.report` now stops it when the metric is no better for `patience`
    epochs (after the pruner, as the built-in loop does)."""
    import torch

    from tuner.trainable import StopTrial, TrialContext

    training = spec(training={"epochs": 10, "early_stopping_patience": 2}).training
    ctx = TrialContext(None, training, "val_accuracy", torch.device("cpu"))  # type: ignore[arg-type]
    for value in (0.5, 0.6, 0.55):
        ctx.report(value)
    with pytest.raises(StopTrial, match="early_stopped"):
        ctx.report(0.58)  # two epochs no better than 0.6
    assert ctx.state.stop_reason == "early_stopped" and ctx.state.stop_step == 4
    # Through a search: sgd at 1e-7 learns (next to) nothing, so it stops after an epoch no
    # better, well before its 4.
    result = run_search(spec(space={"optimizers": ["sgd"], "schedules": ["constant"]},
                             training={"epochs": 4, "early_stopping_patience": 1},
                             search={"pruner": "none", "confirm_top_k": 0},
                             budget={"n_trials": 1}))
    (rec,) = result.records
    assert (rec.state, rec.stop_reason) == ("complete", "early_stopped") and rec.epochs_run < 4, \
        rec
