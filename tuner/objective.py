"""The Optuna objective: space → optimizer + schedule → training → report / prune, with the
trial's full record kept in its user attributes."""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import time
import traceback
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import optuna
import torch

from tuner.attrs import (
    ATTR_BASELINE,
    ATTR_BEATS,
    ATTR_CONFIG,
    ATTR_CONFIRM_OF,
    ATTR_RECORD,
    ATTR_SEED,
    STUDY_SEEDS_USED,
)
from tuner.datasets import Split, check_unchanged, load_dataset, team_scope
from tuner.errors import DataError, TunerError
from tuner.models import build_model
from tuner.registry import check_code
from tuner.sampling import SearchSpace
from tuner.space import TrialConfig
from tuner.spec import METRICS, TRAINING_FORMAT, JobSpec, TaskSpec
from tuner.store.db import transient
from tuner.training import Trainer, TrainState, hardware_name, resolve_device
from tuner.trial import DATA_ERROR, OUT_OF_MEMORY, TRACEBACK_CHARS, config_key

REPEAT_SEED_STRIDE = 100_000


def fresh_seed(seed: int, used: Collection[int]) -> int:
    """`seed` moved past the seeds this configuration already ran with on the task: the first
    of seed + k x REPEAT_SEED_STRIDE (k >= 1) not among them. The same configuration and seed
    train to the same value, so a second job on a task (its defaults sweep starts a family at
    the same configuration, its sampler starts from the same seed) would only repeat runs;
    moved, they measure the seed-to-seed noise instead. The seeds of one job (training.seed,
    its confirmation seeds training.seed + 1000 + i) differ by less than the stride, so two
    never land on one."""
    taken = set(used)
    while seed in taken:
        seed += REPEAT_SEED_STRIDE
    return seed


@dataclass(frozen=True)
class Provenance:
    """What a job's task was made from, which every machine that trains for it must still
    see: the digests of the team's data, `hf:` model folder and plugin code (the task's
    `data_digest`, `model_digest`, `code_digest`), and the service's training code the job
    runs (its `training_format`). A part left None is not checked."""

    data_digest: str | None = None
    model_digest: str | None = None
    code_digest: str | None = None
    training_format: int | None = None

    def check_code(self, task: TaskSpec) -> None:
        """The plugin code and the service's training code here are the job's."""
        check_code(task, self.code_digest)
        if self.training_format not in (None, TRAINING_FORMAT):
            raise TunerError(
                f"the job was made for the training code of another release of the service "
                f"(training format {self.training_format}; this one's is {TRAINING_FORMAT}): "
                f"its finished trials are kept; run one release on every dispatcher and "
                f"worker, or submit the job again to run it under this release")

    def check_data(self, task: TaskSpec, scope: str | None) -> None:
        if task.dataset is not None:
            check_unchanged(task.dataset.name, task.dataset.params, scope, self.data_digest)

    def check_model(self, task: TaskSpec, scope: str | None) -> None:
        if task.model is not None:
            check_unchanged(task.model.name, task.model.params, scope, self.model_digest,
                            field="task.model")

    def check(self, task: TaskSpec, scope: str | None) -> None:
        """All of it: what a dispatcher checks before it starts a job's workers."""
        self.check_code(task)
        self.check_data(task, scope)
        self.check_model(task, scope)


class Objective:
    """Callable for `study.optimize`. Loads the data once per process and reuses it."""

    def __init__(self, spec: JobSpec, *, data: Split | None = None,
                 device: torch.device | None = None, data_scope: str | None = None,
                 made_from: Provenance | None = None,
                 progress_every_s: float | None = None) -> None:
        from tuner.config import get_settings

        self.spec = spec
        # How often a running trial's batch heartbeat is written (TUNER_PROGRESS_EVERY_S).
        self.progress_every_s = progress_every_s if progress_every_s is not None \
            else get_settings().progress_every_s
        self.data_scope = data_scope  # the team whose data folder a file dataset reads
        # Checked: the code once per process, the data and model as they load.
        self.made_from = made_from or Provenance()
        self._code_checked = False
        self.space = SearchSpace(spec.space)
        self._data = data
        self.device = device
        self._used: tuple[str, dict[str, list[int]]] | None = None
        # (study, trial number) -> (configuration key, seed) of the study's other trials: a
        # trial's configuration and seed never change once set, so each is hashed once.
        self._pairs: dict[tuple[str, int], tuple[str | None, int]] = {}

    @property
    def data(self) -> Split:
        if self._data is None:
            ds = self.spec.task.dataset
            assert ds is not None, "a trainable brings its own data"
            # Checked before and after the read: the bytes trained on are the task's.
            self.made_from.check_data(self.spec.task, self.data_scope)
            data = load_dataset(ds.name, ds.params, self.spec.training.seed,
                                scope=self.data_scope)
            self.made_from.check_data(self.spec.task, self.data_scope)
            self._data = data
        return self._data

    @property
    def metric(self) -> str:
        trainable = self.spec.task.trainable
        if trainable is not None:  # the kind the trainable declares
            from tuner.registry import TRAINABLES
            from tuner.trainable import declared_features

            kind = declared_features(TRAINABLES.get(trainable.name), trainable.params).get(
                "kind", "classification")
            return self.spec.task.resolved_metric(str(kind))
        return self.spec.task.resolved_metric(self.data.info.kind)

    @property
    def direction(self) -> str:
        return METRICS[self.metric]

    def _seeds_used(self, trial: optuna.Trial) -> dict[str, list[int]]:
        """The study's STUDY_SEEDS_USED, read once per study (a user attribute of the study)."""
        name = trial.study.study_name
        if self._used is None or self._used[0] != name:
            self._used = (name, dict(trial.study.user_attrs.get(STUDY_SEEDS_USED) or {}))
        return self._used[1]

    def _study_seeds(self, trial: optuna.Trial, key: str) -> set[int]:
        """The seeds this study's other trials ran (or are running) this configuration with:
        within one job too, a warm-start seed and a sweep start can be the same configuration,
        and a sampler over categorical choices alone draws a configuration again. (Failed
        trials are left out: a retry of a lost trial runs as it was meant to.)"""
        out: set[int] = set()
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                  optuna.trial.TrialState.RUNNING)
        name = trial.study.study_name
        for t in trial.study.get_trials(deepcopy=False, states=states):
            if t.number == trial.number:
                continue
            pair = self._pairs.get((name, t.number))
            if pair is None:
                cfg = t.user_attrs.get(ATTR_CONFIG)
                if not cfg:
                    continue  # a running trial that has not drawn its configuration yet
                pair = (config_key(cfg["optimizer"], cfg.get("schedule"),
                                   cfg.get("params") or {}),
                        int(t.user_attrs.get(ATTR_SEED, self.spec.training.seed)))
                if t.state != optuna.trial.TrialState.RUNNING:  # its seed may still move
                    self._pairs[(name, t.number)] = pair
            if pair[0] == key:
                out.add(pair[1])
        return out

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.space.sample(trial)
        trial.set_user_attr(ATTR_CONFIG, config.to_json())
        seed = int(trial.user_attrs.get(ATTR_SEED, self.spec.training.seed))
        key = config_key(config.optimizer, config.schedule, config.to_json()["params"]) or ""
        # Another job, or another trial of this one, ran this configuration with this seed:
        # the same configuration and seed train to the same value, so it runs with a new seed.
        used = set(self._seeds_used(trial).get(key) or ()) | self._study_seeds(trial, key)
        if seed in used:
            seed = fresh_seed(seed, used)
            trial.set_user_attr(ATTR_SEED, seed)
        confirming = ATTR_CONFIRM_OF in trial.user_attrs
        # Confirmation runs measure seed-to-seed noise; the baseline is the bar the answer is
        # held to: neither is ever pruned.
        unprunable = confirming or ATTR_BASELINE in trial.user_attrs
        training = self.spec.training.model_copy(update={"seed": seed})
        state = TrainState()
        error: str | None = None
        started = time.time()
        waits = Waits(time.monotonic())

        # After every batch of the built-in loop (training and validation), and at each
        # `ctx.alive()` of a trainable that calls it: a write at most every progress_every_s.
        # Never from a trainable's `ctx.step`: its loop may evaluate for long without a step,
        # and a wait measured between its steps would then call its evaluation stalled.
        def beat() -> None:
            if time.monotonic() - waits.last < self.progress_every_s:
                return
            waits.beats += 1
            try:
                trial.set_user_attr(ATTR_BEATS, waits.beats)
            except Exception as exc:  # the database blinked: the next beat says it
                if not transient(exc):
                    raise
                return
            waits.tick()

        def prune(best: float, step: int) -> bool:
            waits.tick()
            trial.report(best, step)
            # A trial that has used its whole budget is complete, whatever the last rung says.
            return step < training.epochs and not unprunable and trial.should_prune()

        try:
            if not self._code_checked:
                self.made_from.check_code(self.spec.task)
                self._code_checked = True
            torch.manual_seed(seed)
            device = resolve_device(training.device, self.device)
            state = TrainState(device=str(device))  # a failure before training says where
            if self.spec.task.trainable is not None:
                self._run_trainable(config, training, device, prune, beat, state)
            else:
                m = self.spec.task.model
                assert m is not None
                self.made_from.check_model(self.spec.task, self.data_scope)
                with team_scope(self.data_scope):  # an hf: model may be a team folder
                    model = build_model(m.name, m.params, self.data.info)
                self.made_from.check_model(self.spec.task, self.data_scope)
                trainer = Trainer(model, self.data, config, training, self.metric, device,
                                  on_batch=beat)
                state = trainer.state
                for rec in trainer.epochs():
                    if prune(rec.best_value, rec.step):
                        state.stop_reason = "pruned"
                        break
        except Exception as exc:  # recorded, then re-raised so Optuna marks the trial FAIL
            state.stop_reason = "failed"
            error = f"{type(exc).__name__}: {exc}"
            if out_of_memory(exc):
                state.stop_reason = OUT_OF_MEMORY
                error = memory_error(exc, state.device or str(self.device))
            elif isinstance(exc, DataError):  # the same files for every trial: the job stops
                state.stop_reason = DATA_ERROR
                error = data_error_message(exc)
            self._record(trial, config, state, started, error, short_traceback(exc), seed,
                         waits)
            raise
        self._record(trial, config, state, started, error, None, seed, waits)
        if state.stop_reason == "diverged":
            # NaN at the stop step: TPE ranks the trial worst; median/percentile pruners skip NaN.
            trial.report(math.nan, state.stop_step)
            raise optuna.TrialPruned(f"diverged at epoch {state.stop_step}: {state.detail}")
        if state.stop_reason == "pruned":
            raise optuna.TrialPruned(f"pruned at epoch {state.stop_step}")
        return state.records[-1].best_value

    def _run_trainable(self, config: TrialConfig, training: Any, device: torch.device,
                       prune: Any, beat: Any, state: TrainState) -> None:
        """The team's own loop (tuner.trainable) with the trial's optimizer and schedule; its
        reports are recorded, pruned and checked for divergence as built-in epochs are."""
        from tuner.references import import_torchvision_if_installed
        from tuner.registry import TRAINABLES
        from tuner.trainable import StopTrial, TrialContext

        import_torchvision_if_installed()  # before the trainable imports transformers or timm
        ref = self.spec.task.trainable
        assert ref is not None
        ctx = TrialContext(config, training, self.metric, device, dict(ref.params),
                           on_epoch=prune, on_alive=beat, state=state,
                           job_seed=self.spec.training.seed)
        state.precision = ctx.runs_in
        try:
            with contextlib.suppress(StopTrial):  # the trial ends where ctx.report said so
                TRAINABLES.get(ref.name)(ctx)
        finally:
            state.loop_used = sorted(ctx.used)
        if not state.records:
            raise RuntimeError(f"trainable {ref.name!r} returned without reporting an epoch "
                               "(call ctx.report(metric, train_loss=...) once per epoch)")
        if state.stop_reason is None:  # it stopped on its own before the budget
            state.stop_reason = "early_stopped"

    def _record(self, trial: optuna.Trial, config: TrialConfig, state: TrainState,
                started: float, error: str | None, tb: str | None, seed: int,
                waits: Waits) -> None:
        waits.tick()  # from its last epoch (or its start) to its end
        record: dict[str, Any] = {
            "seed": seed,
            "stop_reason": state.stop_reason,
            "stop_step": state.stop_step,
            "epochs_run": sum(not r.partial for r in state.records),
            "steps": [r.to_json() for r in state.records],
            "state_bytes_per_param": state.state_bytes_per_param,
            "seconds_per_epoch": state.seconds_per_epoch,
            "device": state.device,
            "hardware": hardware_name(state.device or "cpu"),
            "precision": state.precision,
            "n_params": state.n_params,
            "detail": state.detail or error or "",
            "duration_s": time.time() - started,
            "longest_wait_s": waits.longest,
        }
        if tb:
            record["traceback"] = tb
        if state.loop_used is not None:
            record["loop_used"] = state.loop_used
        trial.set_user_attr(ATTR_RECORD, record)


@dataclass
class Waits:
    """The longest a trial went without progress: from its start to its first epoch or batch
    heartbeat (data and model set-up included), between them, and from the last (or its start)
    to its end (a trial that failed before any epoch waited that long). What the dispatcher's
    stall check measures, kept on the trial (`longest_wait_s`) for the task's later jobs.
    `beats`: the batch heartbeats written (`ATTR_BEATS`)."""

    last: float
    longest: float = 0.0
    beats: int = 0

    def tick(self) -> None:
        now = time.monotonic()  # durations: a wall clock's step (NTP) is no wait
        self.longest = max(self.longest, now - self.last)
        self.last = now


TRACEBACK_FRAMES = 12  # the innermost: where the error was raised, in the team's code or ours
_FILE = re.compile(r'File "([^"]+)"')


def short_traceback(exc: BaseException) -> str:
    """The error's traceback as the team reads it from the service: its innermost frames
    (`TRACEBACK_FRAMES`, and those of the errors it was raised from), each file named by its
    path under the import root it came from (`tuner_example_plugin/trainables.py`,
    `torch/nn/modules/module.py`) rather than the worker machine's folders, at most
    `TRACEBACK_CHARS`: past that (an error whose message holds a tensor's repr), its start
    and its end, the middle cut, so the frames and the error's last line are kept. A file
    under no `sys.path` entry (a package installed in editable mode is imported through a
    finder) is named from its outermost package's folder (`tuner/objective.py`), else by its
    name."""
    roots = sorted({os.path.abspath(p or os.curdir) for p in sys.path}, key=len, reverse=True)

    def short(m: re.Match[str]) -> str:
        path = m.group(1)
        if os.path.isabs(path):
            root = next((r for r in roots if path.startswith(r.rstrip(os.sep) + os.sep)), None)
            if root is None:
                root = os.path.dirname(path)
                while os.path.isfile(os.path.join(root, "__init__.py")):
                    root = os.path.dirname(root)
            path = os.path.relpath(path, root)
        return f'File "{path}"'

    text = _FILE.sub(short, "".join(traceback.format_exception(exc, limit=-TRACEBACK_FRAMES)))
    if len(text) > TRACEBACK_CHARS:
        cut = f"\n[... {len(text) - TRACEBACK_CHARS} characters cut ...]\n"
        half = (TRACEBACK_CHARS - len(cut)) // 2
        text = text[:half] + cut + text[-half:]
    return text


def out_of_memory(exc: BaseException) -> bool:
    """Did the trial's device run out of memory? CUDA's `torch.OutOfMemoryError`, Python's
    MemoryError, or an allocator's RuntimeError (the CPU's "can't allocate memory", MPS's "out
    of memory")."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text
                                              or "out of memory" in text.lower())


def data_error_message(exc: BaseException) -> str:
    """A data error in one line. Raised in a DataLoader's worker process, PyTorch raises it
    again in the trial's process with the worker's traceback in its message; its last line is
    the error."""
    text = str(exc).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if last.split(":", 1)[0].endswith("DataError") else last
    return text


def memory_error(exc: BaseException, device: str) -> str:
    """A trial's out-of-memory error in one line, with what its device had (on a GPU: this
    process's peak and the device's free memory, which other packed trials share)."""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    where = f"out of memory on {device}: {type(exc).__name__}: {first}"
    if device.startswith("cuda") and torch.cuda.is_available():
        try:
            free, total = torch.cuda.mem_get_info(torch.device(device))
            peak = torch.cuda.max_memory_allocated(torch.device(device))
        except Exception:  # the device's state after an error: best effort
            return where
        gib = 2.0 ** 30
        where += (f" (this trial's process held at most {peak / gib:.2f} GiB; the device has "
                  f"{free / gib:.2f} GiB free of {total / gib:.2f})")
    return where
