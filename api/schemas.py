"""Response schemas (`XPublic`, list wrappers `XsPublic(data, count)`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tuner.trial import StepRecord, TrialRecord


class JobLinks(BaseModel):
    self: str
    trials: str
    events: str
    cancel: str


class Progress(BaseModel):
    n_trials: int
    n_confirm: int
    done: int
    running: int
    complete: int
    pruned: int
    diverged: int
    failed: int
    best_value: float | None


class JobBrief(BaseModel):
    id: str
    status: str
    error: str | None
    task: dict[str, Any] = Field(description=(
        "the job's task: `id`, `fingerprint`, `model` and `dataset` (names), `model_params` "
        "and `dataset_params` (what tells two tasks of the same names apart), the digests of "
        "the team's data, model files and code, `metric` and `direction`"))
    progress: Progress
    confirmation: dict[str, Any]
    budget: dict[str, Any]
    notes: list[str] = Field(default_factory=list, description=(
        "what the service decided that the spec does not say: the defaults sweep's families "
        "and their order, and the families the budget leaves to the sampler"))
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    links: JobLinks


class TrialBrief(BaseModel):
    number: int
    optimizer: str | None
    schedule: str | None
    params: dict[str, Any]
    value: float | None
    baseline: bool = Field(default=False, description=(
        "a run of the untuned baseline (search.baseline: AdamW at its defaults with cosine)"))


class FamilyCounts(BaseModel):
    """One optimizer family in a job: its best complete trial and its trials by state."""

    optimizer: str
    best: TrialBrief | None
    trials: int
    complete: int
    pruned: int
    diverged: int
    failed: int


class TrialSummary(TrialRecord):
    """A trial without its steps."""

    steps: list[StepRecord] = Field(default_factory=list, exclude=True)


class Waiting(BaseModel):
    """Why a job is not running, while it is not: queued, or let go by its dispatcher."""

    ahead: int = Field(description="jobs that are claimed before it (one queue serves every team)")
    dispatchers: dict[str, int] = Field(description=(
        "dispatchers `running` now (each said so within the last 90 s), how many of them are "
        "`busy` with a job (each runs one at a time), and how many are `blocked`: running but "
        "unable to start a trial now (Ray down; the `note` says why)"))
    last_dispatcher: dict[str, Any] | None = Field(description=(
        "the dispatcher heard from last: its `state` (running, stopped, crashed, or gone: "
        "unheard from for 90 s without saying it ended), `seen_at`, and the `error` it crashed "
        "on; null when none has ever run on this database"))
    note: str = Field(description="all that in words, with what to do")


class JobPublic(JobBrief):
    study_name: str
    waiting: Waiting | None = Field(default=None, description=(
        "why the job is not running, while it is queued (or its dispatcher let it go); null "
        "once a dispatcher runs it, and after it ended"))
    best: TrialSummary | None = Field(description="the best complete trial (without its steps)")
    by_optimizer: list[FamilyCounts]
    spec: dict[str, Any]
    failed_reasons: dict[str, int] = Field(default_factory=dict, description=(
        "the failed trials by stop reason, most first: failed (the trial raised), "
        "out_of_memory, stalled, worker_lost, db_error, cancelled"))


class JobsPublic(BaseModel):
    data: list[JobBrief]
    count: int


class TrialPublic(TrialRecord):
    """The trial contract (tuner.trial) as the API answers it."""

    steps: list[StepRecord] | None = None  # type: ignore[assignment]  # None with steps=false


class TrialsPublic(BaseModel):
    data: list[TrialPublic]
    count: int


class TasksPublic(BaseModel):
    data: list[dict[str, Any]]
    count: int


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`): every error answer."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(default=None, description=(
        "for bad input: [{field, message}], naming the field and its valid choices"))
    progress: dict[str, Any] | None = Field(default=None, description=(
        "a submission on team data still being prepared (503): {field, stage (reading: for "
        "its digest; loading: to check the job), read_bytes, total_bytes, elsewhere (another "
        "API process is reading it), seconds}"))


class Interval(BaseModel):
    model_config = ConfigDict(extra="allow")

    value: float
    low: float
    high: float
    n: int
    kind: str = Field(description="t (over seeds), noise (one run, or n runs that all gave "
                                  "the same value, ± the task's noise) or spread (no noise "
                                  "estimate: not a confidence interval)")
    source: str


class RankedFamily(BaseModel):
    """One family in a recommendation's ranking. `direct` answers measure it on the task
    (`value`, `expected` with its interval); `transfer` answers rank it from similar tasks
    (`score`, `source_task`; no value on this task); `prior` entries are literature defaults,
    unranked and unmeasured."""

    model_config = ConfigDict(extra="allow")

    optimizer: str
    rank: int | None
    schedule: str | None
    params: dict[str, Any]
    value: float | None
    expected: Interval | None = None
    evidence: dict[str, Any] | None = None
    robustness: dict[str, Any] | None = None
    cost: dict[str, Any] | None = None
    tied_with: list[str] = Field(default_factory=list)
    score: float | None = None
    source_task: dict[str, Any] | None = None


class NoSkill(BaseModel):
    value: float = Field(description="what a model that ignores its inputs scores on this "
                                     "data split's validation set")
    predicts: str = Field(description="what that model predicts for every example")
    verdict: str = Field(description=(
        "the best family against it: above (its interval clear of it; with no noise "
        "measured, every run of its best configuration), not_shown (better on the values "
        "seen, not outside the noise) or no_better"))
    clause: str = Field(description="the summary's words where the best family is not clear "
                                    "of it (it leads the summary); empty where it is")
    summary: str = Field(description="the comparison in words, whatever it found")
    meaning: str


class RecommendationPublic(BaseModel):
    model_config = ConfigDict(extra="allow")

    method: str = Field(description="direct | transfer | prior")
    source: str
    metric: str | None
    ranking: list[RankedFamily]
    verdict: str | None = None
    leaders: list[str] = Field(default_factory=list)
    to_separate: dict[str, Any] | None = Field(default=None, description=(
        "direct answers with a `tied` verdict: the tie's two best families, the gap between "
        "them, their seed-to-seed sd, and `runs_each` (at least that many runs of each would "
        "part their intervals if the gap were real; null: no gap, or more than one job can "
        "confirm) with the "
        "matching `confirm_seeds`"))
    not_tried: list[str] = Field(default_factory=list, description=(
        "direct answers: families this task's history never ran at this budget on this data "
        "split (nothing is known of them there; a winner is the best of the families tried); "
        "transfer answers: families ranked on none of the similar tasks"))
    under_tuned: list[str] = Field(default_factory=list, description=(
        "direct answers: families ranked below the leaders with fewer than 3 configurations "
        "tried (complete or stopped early; evidence.configurations_tried), fewer than the "
        "leader: their place is their few configurations', and tuned they may do better"))
    tied_by_width: list[str] = Field(default_factory=list, description=(
        "direct answers with a `tied` verdict: leaders in the tie only by the width of their "
        "own interval (their expected value is outside the best leader's 95% interval): not "
        "shown to be as good, more runs would tell"))
    at_ceiling: list[str] = Field(default_factory=list, description=(
        "direct answers: ranked families (two or more) whose best configuration gave the "
        "metric's best possible value (an accuracy of 1.0) on every run: the validation set "
        "cannot order them, however many runs are made"))
    baseline_only: list[str] = Field(default_factory=list, description=(
        "direct answers: a family (adamw) whose one configuration run to the end at this budget "
        "is the untuned baseline (`search.baseline`): its place is that of its defaults and "
        "says nothing of it tuned (`evidence.baseline_only` on its ranking entry)"))
    summary: str | None = None
    no_skill: NoSkill | None = Field(default=None, description=(
        "direct answers on the service's data paths (tables, built-in datasets, image folders, "
        "labelled datasets): the best family "
        "against a model that ignores its inputs (predicting the training set's most common "
        "class, its class frequencies or its mean for every example); null where not known"))
    loop_notes: list[str] = Field(default_factory=list, description=(
        "direct answers about a team's own loop (a trainable): what the jobs at this budget "
        "noted at their end of what it never used (ctx.split_seed, ctx.batch_size, "
        "ctx.autocast() in bf16) or that it returned before its epochs with no early stopping "
        "asked, each a reason its runs may not be what the budget says"))
    in_short: str | None = Field(default=None, description=(
        "the answer in one line: its verdict in a few words and, for a direct answer, where it "
        "stands against AdamW at lr 1e-3 with cosine (what `tuner recommend` prints last as "
        "`in short:`, and the task page's headline)"))
    baseline: dict[str, Any] | None = Field(default=None, description=(
        "direct answers: the leader against AdamW at its defaults (lr 1e-3) with cosine decay, "
        "what most teams train with untuned, by the rule that separates families: `verdict` "
        "(beaten | within_noise | ahead | not_separated | is_leader | not_run: no complete run "
        "of it at this budget; search.baseline or --baseline runs it), `expected` (its value, 95% interval "
        "and runs), `gain` (the leader's value minus its, positive when the leader is better, "
        "for a loss too) and `summary`; with other data splits at the answer's budget "
        "(`splits` below), `splits`: the same family (`optimizer`) against it on each split, "
        "by that split's runs (`per_split`), `beaten_on`, `run_on` and `brief`"))
    splits: dict[str, Any] | None = Field(default=None, description=(
        "direct answers on a task searched at the answer's budget on other data splits too "
        "(jobs with another training.seed, all else the same): each split ranked on its own, "
        "never pooled: `per_split` (training_seed, verdict, leaders, n_complete_trials; the "
        "answer's first), `families` (per family, the splits where it leads, is behind, is "
        "not_separated or not_ranked), `lead_on_every_split`, `lead_on_most` (with none on "
        "every split, those leading on the most, when more than one), `start_from` (the family the "
        "answer's start_from takes), `brief` and `summary`; null on one split"))
    learned_nothing_on: list[str] = Field(default_factory=list, description=(
        "transfer answers: the similar tasks (a corpus task's name, or `task <id>`) where no "
        "family did better than a model that ignores its inputs: their order is of failures "
        "and says little of which optimizer learns (the summary and in_short say so)"))
    from_splits: list[int] | None = Field(default=None, description=(
        "transfer answers drawn only from the task asked about, at the budget asked about, on "
        "other data splits: their training seeds (each ranked on its own); null otherwise"))
    tasks: list[dict[str, Any]] = Field(description=(
        "the task the answer is about (empty for a model and dataset never run)"))
    other_tasks: list[dict[str, Any]] = Field(default_factory=list, description=(
        "the team's other tasks with this model and dataset name but other parameters: never "
        "pooled with the answer's task; ask about one with task=<id>"))


class RegistryEntry(BaseModel):
    name: str
    source: str
    help: str


class TrialCurve(BaseModel):
    number: int
    optimizer: str | None
    schedule: str | None
    state: str
    stop_reason: str | None
    value: float | None
    color: str = Field(description="the family's colour (the same on every figure)")
    confirmation: bool
    baseline: bool = Field(False, description="a run of search.baseline (AdamW at lr 1e-3 with "
                                              "cosine decay, untuned): drawn dotted")
    points: list[tuple[int, float]] = Field(description="[epoch, value] of every epoch")
    stop: tuple[int, float | None] | None = Field(
        description="[epoch, last value] where a pruned or diverged trial was stopped")


class FamilyBest(BaseModel):
    optimizer: str
    color: str
    n_trials: int
    n_complete: int
    best: dict[str, Any] | None = Field(
        description="the family's best complete trial: number, value, schedule, params")


class JobFigures(BaseModel):
    job_id: str
    metric: str
    direction: str
    epochs_consumed: int
    best_so_far: list[tuple[int, float]] = Field(
        description="[epochs consumed, best value so far] where the best changed and after the "
                    "last epoch (a step function), trials in number order")
    curves: list[TrialCurve] = Field(
        description="at most 500 trials' curves: each family's best complete trial, then the "
                    "latest")
    families: list[FamilyBest]
    n_trials: int = Field(description="the job's trials (more than `curves` when capped)")
    y_scale: Literal["linear", "log"] = Field(
        "linear", description="the value axis to draw them on: `log` for a loss whose every "
                              "drawn value is above 0 (the answer ranks losses on their "
                              "logarithm)")


class LearningRates(BaseModel):
    task: int
    metric: str
    direction: str
    budget: dict[str, int | str | None] | None
    families: dict[str, list[tuple[float, float]]] = Field(
        description="per family, [learning rate, value] of its most recent complete trials "
                    "(`per_family` of them at most), sorted by learning rate")
    baseline: list[tuple[float, float]] = Field(
        default_factory=list, description="[learning rate, value] of the untuned baseline's "
        "complete runs (AdamW at its defaults with cosine, search.baseline), sorted by learning "
        "rate; not among adamw's points in `families`, though counted in its `n_trials`")
    n_trials: dict[str, int] = Field(
        default_factory=dict, description="per family, how many complete trials it has at "
                                          "this budget (more than the points when capped; "
                                          "adamw's counts the baseline's runs)")
    per_family: int = Field(default=0, description="the most points given per family")
