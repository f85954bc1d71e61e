"""Settings from the environment (`TUNER_*`), one pydantic-settings class."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNER_", extra="ignore")

    data_root: Path = Path("data")
    database_url: str = "sqlite:///tuner.db"
    # Move a dataset to the accelerator once when it is smaller than this.
    device_data_limit_bytes: int = 2 * 1024**3


@lru_cache
def get_settings() -> Settings:
    return Settings()
