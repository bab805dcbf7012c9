"""One settings object for the worker and the dashboard.

Precedence, highest first: command-line flag → ``CAMWATCH_*`` environment variable → ``camwatch.toml``
(path from ``--config`` or ``CAMWATCH_CONFIG``; default ``./camwatch.toml`` when present) → defaults.
Nested groups use ``__`` in environment variables, e.g. ``CAMWATCH_FLAGS__ENERGY_OUTSIDE_MAX=0.6``;
in the TOML file they are tables (``[flags]``).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from camwatch.conventions import PreprocessMode, WindowKind, window_kind_label
from camwatch.heads import DEFAULT_HEAD_THRESHOLD, HeadKind, TargetMode
from camwatch.monitoring.drift import DEFAULT_HEATMAP_CORRELATION, DEFAULT_MIN_SAMPLES
from camwatch.monitoring.flags import FlagConfig

CONFIG_ENV = "CAMWATCH_CONFIG"


class ReferenceSettings(BaseModel):
    """Which images form the reference: the first N processed (by capture time), a time range, or a folder."""

    kind: Literal["first_n", "time_range", "folder"] = "first_n"
    first_n: int = 300
    start: dt.datetime | None = None  # ISO-8601 capture times for time_range; naive means UTC
    end: dt.datetime | None = None
    folder: Path | None = None

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


class DriftSettings(BaseModel):
    """Windows and drift tests (defaults and their reasons: :mod:`camwatch.monitoring.drift`)."""

    window: WindowKind = "day"
    window_count: Annotated[int, Field(ge=1)] = 500
    min_samples: Annotated[int, Field(ge=2)] = DEFAULT_MIN_SAMPLES
    heatmap_correlation_min: float = DEFAULT_HEATMAP_CORRELATION
    statistics: list[str] = Field(default_factory=lambda: [
        "centroid_x", "centroid_y", "spread", "entropy", "gini", "border_energy", "top5_share",
        "energy_outside", "attention_correlation", "confidence", "raw_max"])
    slice_tags: list[str] = Field(default_factory=lambda: ["site", "camera"])  # drift per value of these tags
    every_batches: int = 20  # the worker recomputes drift after this many batches (and when idle)

    @property
    def window_label(self) -> str:
        """The window kind as stored with drift results: ``hour``, ``day`` or ``count:N``."""
        return window_kind_label(self.window, self.window_count)


class DashboardSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8501
    password: str | None = None  # shared password; off when unset (localhost default)
    oidc: bool = False  # use st.login (OIDC configured in .streamlit/secrets.toml)
    cache_ttl_seconds: int = 10


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAMWATCH_", env_nested_delimiter="__", extra="ignore",
                                      toml_file="camwatch.toml")

    db: str = "sqlite:///camwatch.db"
    # model
    model: str = "efficientnet_lite0"
    weights: Path | None = None
    classes: Path | None = None
    num_classes: int | None = None
    trust_pickle: bool = False
    method: str = "gradcam"
    target_layer: str | None = None
    device: str = "auto"
    preprocess: PreprocessMode | None = None
    batch_size: int = 16
    topk: int = 5
    # head and explained class (definitions: camwatch.heads)
    head: HeadKind | None = None  # None: softmax; binary for a single-logit model; HF multi-label configs: sigmoid
    head_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = DEFAULT_HEAD_THRESHOLD  # multi-label labels: p >= this
    target: TargetMode = "top1"  # which class the worker explains: top1 | label | both
    # sources
    source: list[Path] = Field(default_factory=list)
    path_tags: list[str] = Field(default_factory=list)  # e.g. ["site", "camera"] from site/camera/... paths
    roi: dict[str, list[float]] = Field(default_factory=dict)  # source name or glob -> [x0, y0, x1, y1]
    stable_seconds: float = 2.0
    rescan_seconds: float = 30.0
    poll_seconds: float = 1.0
    use_events: bool = True
    # processing
    thumbnails: Literal["all", "flagged", "none"] = "flagged"
    lease_seconds: float = 300.0
    max_attempts: int = 3
    worker_id: str | None = None
    flags: FlagConfig = Field(default_factory=FlagConfig)
    reference: ReferenceSettings = Field(default_factory=ReferenceSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)

    @field_validator("batch_size", "topk")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get(CONFIG_ENV, "camwatch.toml")
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_path))


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings with CLI ``overrides`` (``None`` = not given) on top of env, TOML and defaults."""
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: configuration file not found")
        previous = os.environ.get(CONFIG_ENV)
        os.environ[CONFIG_ENV] = str(path)
        try:
            return Settings(**{k: v for k, v in overrides.items() if v is not None})
        finally:
            if previous is None:
                os.environ.pop(CONFIG_ENV, None)
            else:
                os.environ[CONFIG_ENV] = previous
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
