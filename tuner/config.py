"""Settings from the environment (`TUNER_*`), one pydantic-settings class."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# How often at most a running trial writes its batch heartbeat (TUNER_PROGRESS_EVERY_S).
PROGRESS_EVERY_S = 30.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNER_", extra="ignore")

    data_root: Path = Path("data")
    database_url: str = "sqlite:///tuner.db"
    # Connections per process (plus as many again in overflow); workers each hold a pool.
    db_pool_size: int = 3
    # Move a dataset to the accelerator once when it is smaller than this.
    device_data_limit_bytes: int = 2 * 1024**3
    # Dispatcher and workers.
    lease_s: float = 60.0
    poll_s: float = 1.0
    heartbeat_interval: int = 5
    grace_period: int = 20
    stop_grace_s: float = 30.0
    # A running trial whose batches go on says so at most this often (a user attribute): the
    # dispatcher's stall check then sees progress inside an epoch, not only at its end.
    progress_every_s: float = Field(default=PROGRESS_EVERY_S, ge=0)
    # API processes keep a key's team this long after reading it (0: read it on every request);
    # a revoked key is refused by every process within this time.
    key_cache_s: float = 5.0
    # A submission on data read for the first time (a large folder: minutes) waits this long
    # for its digest, then answers 503 with the progress while the read goes on (the client
    # sends it again); later submissions on the same data only list it.
    digest_wait_s: float = 20.0
    ray_num_cpus: int | None = None
    # A job whose resources the Ray cluster does not have now fails at once, unless this is set:
    # on a cluster whose autoscaler adds nodes (GPU nodes scaled to zero), its workers are
    # queued and the job fails only when none has started a trial after this many seconds.
    resources_wait_s: float | None = Field(default=None, gt=0)
    # Limits checked before anything is built (a request never allocates beyond them).
    max_dataset_values: int = 50_000_000  # samples x features of one dataset
    max_model_params: int = 100_000_000
    max_spec_depth: int = 16  # nesting of a spec's values (model and dataset params)
    # A folder under the data root that every team may read (`shared/<file>`); none by default.
    data_shared: str | None = None
    # Fetched public data (torchvision datasets, weights, Hugging Face hub files) that every team
    # reads: `tuner data fetch` writes here; default `<data_root>/.tuner-cache`.
    cache_root: Path | None = None
    # Log every trial to MLflow (an MLflow tracking URI; needs the `mlflow` extra). Off by default.
    mlflow_tracking_uri: str | None = None


@lru_cache
def get_settings() -> Settings:
    return Settings()
