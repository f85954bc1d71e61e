"""The keys of an Optuna trial's user attributes that the service reads and writes (a leaf
module: everything that touches a study imports its keys from here, nothing else)."""

from __future__ import annotations

ATTR_CONFIG = "config"  # the sampled configuration (optimizer, schedule, params)
ATTR_RECORD = "record"  # the trial's record: steps, stop reason, cost, device
ATTR_SEED = "seed"  # set on enqueued runs to override the training seed
ATTR_CONFIRM_OF = "confirm_of"  # a confirmation run: the trial whose configuration it repeats
ATTR_SWEEP = "defaults_sweep"  # enqueued by the defaults sweep
ATTR_WARM_START = "warm_start"  # enqueued as a warm-start seed
ATTR_BASELINE = "baseline"  # enqueued by search.baseline: never pruned
ATTR_WORKER = "worker"  # host:pid of the worker that started the trial
# Batch heartbeats: how many times the running trial said its batches go on (at most one per
# TUNER_PROGRESS_EVERY_S), so the dispatcher sees progress inside a long epoch.
ATTR_BEATS = "beats"

# A study's user attribute, set by the dispatcher on a new job's study: per configuration key,
# the training seeds the task's history already ran it with at this budget (tuner.objective
# runs such a configuration with another seed: the same seed would only repeat a run).
STUDY_SEEDS_USED = "seeds_used"

# A trial's system attribute, set by the dispatcher before it fails a trial on purpose
# (cancelled, past its deadline): {"reason": ..., "detail": ...}. Written before the trial's
# state, so that whoever records the trial (the write right after, or a later sync when that
# write met a database outage) records why it ended, not "lost".
ATTR_ENDED_BY = "tuner_ended_by"
