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

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from camwatch.alerts.config import AlertSettings
from camwatch.conventions import PreprocessMode, WindowKind, window_kind_label
from camwatch.events import DEFAULT_MAX_INLINE_BYTES
from camwatch.files import DEFAULT_MAX_IMAGE_BYTES
from camwatch.heads import DEFAULT_HEAD_THRESHOLD, HeadKind, TargetMode
from camwatch.locations import DEFAULT_STREAM_MAXLEN
from camwatch.monitoring.calibration import DEFAULT_FDR, DEFAULT_MIN_EFFECT, DEFAULT_MIN_MIX_EFFECT
from camwatch.monitoring.drift import DEFAULT_HEATMAP_CORRELATION, DEFAULT_MIN_SAMPLES, get_test
from camwatch.monitoring.flags import FlagConfig
from camwatch.passwords import check_hash_format

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
        "energy_outside", "attention_correlation", "confidence", "raw_max",
        "brightness", "contrast", "sharpness", "colourfulness", "width", "height"])
    slice_tags: list[str] = Field(default_factory=lambda: ["site", "camera"])  # drift per value of these tags
    every_batches: int = 20  # the worker recomputes drift after this many batches (and when idle)
    # incremental passes re-read images processed this long before the last pass's watermark (other workers'
    # commits racing the pass); 0 trusts every commit to land before the next pass starts
    watermark_overlap_seconds: Annotated[float, Field(ge=0)] = 60.0
    # calibrated decisions (camwatch.monitoring.calibration): BH level per window, effect-size thresholds
    fdr: Annotated[float, Field(gt=0, lt=1)] = DEFAULT_FDR
    min_effect: Annotated[float, Field(ge=0)] = DEFAULT_MIN_EFFECT  # Wasserstein-1 in reference SDs
    min_mix_effect: Annotated[float, Field(ge=0, le=1)] = DEFAULT_MIN_MIX_EFFECT  # total variation of mixes
    # test key per statistic ("predicted_class", "heatmap_correlation", a category), e.g. {"entropy": "psi"}
    tests: dict[str, str] = Field(default_factory=dict)
    # statistics (or "predicted_class") decided by mean + 3 sd of reference chunks instead (NannyML's way)
    chunk_statistics: list[str] = Field(default_factory=list)

    @field_validator("tests")
    @classmethod
    def _known_tests(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value.values():
            get_test(key)  # an unknown key fails here, naming the registered ones
        return value

    @property
    def window_label(self) -> str:
        """The window kind as stored with drift results: ``hour``, ``day`` or ``count:N``."""
        return window_kind_label(self.window, self.window_count)


class QueueSettings(BaseModel):
    """Queue sources (``redis://``, ``mqtt://``): spool, limits, timeouts, backpressure (docs/events.md and
    docs/operations.md say what each one is for)."""

    spool_dir: Path = Path("camwatch-spool")  # inline and downloaded images, content-addressed
    spool_keep: Literal["all", "flagged", "none"] = "flagged"  # spooled files kept after the result
    max_inline_bytes: Annotated[int, Field(ge=1)] = DEFAULT_MAX_INLINE_BYTES
    max_download_bytes: Annotated[int, Field(ge=1)] = 20 << 20
    download_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    max_in_flight: Annotated[int, Field(ge=1)] = 64  # events received and not yet acknowledged, per source
    claim_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0  # Redis: idle entries taken over after this
    max_deliveries: Annotated[int, Field(ge=1)] = 5  # Redis: dead-lettered when delivered more often
    maxlen: Annotated[int, Field(ge=1)] = DEFAULT_STREAM_MAXLEN  # Redis: producers XADD with MAXLEN ~ this
    dead_letter_maxlen: Annotated[int, Field(ge=1)] = 100_000
    trim_acknowledged: bool = True  # Redis: XTRIM MINID entries every group has acknowledged
    reconnect_max_seconds: Annotated[float, Field(gt=0)] = 30.0  # backoff ceiling after a broker loss
    session_expiry_seconds: Annotated[int, Field(ge=0)] = 7 * 86400  # MQTT persistent session
    dead_letter_topic: str = "camwatch/dead"  # MQTT
    drain_quiet_seconds: Annotated[float, Field(gt=0)] = 1.0  # MQTT --once: drained after this silence


class DashboardSettings(BaseModel):
    """Where the dashboard listens and who may use it (``dashboard/auth.py`` explains the login)."""

    host: str = "127.0.0.1"
    port: int = 8501
    password: str | None = None  # shared password in clear; off when unset (localhost default)
    password_hash: str | None = None  # the same as a hash: `camwatch hash-password` prints one
    oidc: bool = False  # use st.login (OIDC configured in .streamlit/secrets.toml)
    cache_ttl_seconds: int = 10
    session_idle_minutes: Annotated[float, Field(gt=0)] = 60.0  # a login ends after this long without use
    session_max_hours: Annotated[float, Field(gt=0)] = 12.0  # and after this long in any case
    login_max_failures: Annotated[int, Field(ge=1)] = 5  # failed logins per client before a lockout
    login_lockout_seconds: Annotated[float, Field(gt=0)] = 60.0  # first lockout; doubles each time, max 1 h
    #: Who may accept threshold suggestions: OIDC user names or e-mails. Without any login configured
    #: (a dashboard on 127.0.0.1) the local user is the admin; with a login, only these users, or anyone
    #: who enters ``admin_password`` on the Review page.
    admins: list[str] = Field(default_factory=list)
    admin_password: str | None = None
    #: The dashboard's address as people reach it (links in alerts); None: http://127.0.0.1:<port>.
    public_url: str | None = None

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://127.0.0.1:{self.port}").rstrip("/")

    @field_validator("password_hash")
    @classmethod
    def _hash_format(cls, value: str | None) -> str | None:
        if value is not None:
            check_hash_format(value)
        return value


class ReviewSettings(BaseModel):
    """The QA review loop (Review page): claims, and when a threshold is suggested."""

    claim_seconds: Annotated[float, Field(gt=0)] = 120.0  # a reviewer's hold on an image, renewed while open
    target_precision: Annotated[float, Field(gt=0, le=1)] = 0.9  # the suggested threshold reaches this
    min_reviews: Annotated[int, Field(ge=1)] = 10  # confirmed + false alarms before a rule gets a suggestion


class RetentionSettings(BaseModel):
    """Deleting the bulky per-image data of old images (``camwatch prune``; the worker runs it daily when
    ``older_than_days`` is set). Drift results, alerts, reviews' audit trail and reference images are kept."""

    older_than_days: Annotated[float, Field(gt=0)] | None = None  # None: never prune automatically
    keep_flagged: bool = True
    keep_reviewed: bool = True
    every_hours: Annotated[float, Field(gt=0)] = 24.0
    batch_size: Annotated[int, Field(ge=1)] = 500  # images per delete transaction
    pause_seconds: Annotated[float, Field(ge=0)] = 0.25  # between transactions: the worker keeps most of the CPU


#: The settings fields a ``[[models]]`` entry sets for its own model: its own files (never inherited) ...
MODEL_OWN_FIELDS = ("model", "weights", "classes", "num_classes")
#: ... and the options it inherits from the top level when unset (the rest of the settings are shared).
MODEL_INHERITED_FIELDS = ("trust_pickle", "method", "target_layer", "preprocess", "head", "head_threshold")


class ModelSettings(BaseModel):
    """One model of shadow mode (``[[models]]`` in camwatch.toml): the worker explains every image with each
    model and stores each one's results under its own model version; ``primary`` marks the model whose
    results are the image's own (flags shown by default). ``weights``, ``classes`` and ``num_classes`` are the
    entry's own; its other unset fields take the top-level value."""

    model: str
    primary: bool = False
    weights: Path | None = None
    classes: Path | None = None
    num_classes: int | None = None
    trust_pickle: bool | None = None
    method: str | None = None
    target_layer: str | None = None
    preprocess: PreprocessMode | None = None
    head: HeadKind | None = None
    head_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None


#: glibc's mallopt takes an int: the largest trim threshold it accepts (2 GiB - 1).
MAX_TRIM_THRESHOLD = 2**31 - 1


class RuntimeSettings(BaseModel):
    """Process-wide settings the worker and the dashboard's on-demand CAM apply when they start
    (:mod:`worker.runtime`; docs/operations.md, "Runtime settings")."""

    #: ``pinned``: glibc's ``mallopt(M_MMAP_MAX=0)`` and a large ``M_TRIM_THRESHOLD`` (freed memory kept for
    #: the next batch); ``default``: leave the allocator alone (e.g. when preloading jemalloc).
    allocator: Literal["pinned", "default"] = "pinned"
    trim_threshold_bytes: Annotated[int, Field(ge=0, le=MAX_TRIM_THRESHOLD)] = MAX_TRIM_THRESHOLD
    threads: Annotated[int, Field(ge=1)] | None = None  # torch intra-op threads; None: the available cores


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
    #: Shadow mode: several models on the same images, one marked primary (``[[models]]`` in the TOML file,
    #: or ``--model`` repeated); empty: the single model above. See :meth:`model_settings`.
    models: list[ModelSettings] = Field(default_factory=list)
    # optimised inference (worker/cam/accel.py): the trunk up to the target layer; the head stays eager fp32
    channels_last: bool = False
    compile: bool = False
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # bf16/fp16: autocast on CUDA only
    # head and explained class (definitions: camwatch.heads)
    head: HeadKind | None = None  # None: softmax; binary for a single-logit model; HF multi-label configs: sigmoid
    head_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = DEFAULT_HEAD_THRESHOLD  # multi-label labels: p >= this
    target: TargetMode = "top1"  # which class the worker explains: top1 | label | both
    # sources
    source: list[str] = Field(default_factory=list)  # folders, redis://..., mqtt://...
    path_tags: list[str] = Field(default_factory=list)  # e.g. ["site", "camera"] from site/camera/... paths
    roi: dict[str, list[float]] = Field(default_factory=dict)  # source name or glob -> [x0, y0, x1, y1]
    stable_seconds: float = 2.0
    rescan_seconds: float = 30.0
    poll_seconds: float = 1.0
    use_events: bool = True
    allowed_roots: list[Path] = Field(default_factory=list)  # file:// images of queue events only below these
    allowed_hosts: list[str] = Field(default_factory=list)  # http(s):// images of queue events: host[:port]
    topic_tags: list[str] = Field(default_factory=list)  # MQTT: topic levels after the filter's prefix -> tags
    queue: QueueSettings = Field(default_factory=QueueSettings)
    # processing
    thumbnails: Literal["all", "flagged", "none"] = "flagged"
    lease_seconds: Annotated[float, Field(gt=0)] = 300.0  # renewed while a batch runs
    max_attempts: Annotated[int, Field(ge=1)] = 3  # crashes of a worker processing an image alone
    worker_id: str | None = None
    # bounds on what files control (docs/operations.md, "Untrusted files")
    max_image_bytes: Annotated[int, Field(ge=1)] = DEFAULT_MAX_IMAGE_BYTES
    max_sidecar_bytes: Annotated[int, Field(ge=1)] = 16 << 20
    max_coco_bytes: Annotated[int, Field(ge=1)] = 128 << 20
    max_boxes: Annotated[int, Field(ge=1)] = 1000  # per image; more makes the sidecar malformed
    max_batch_pixels: Annotated[int, Field(ge=1)] = 100_000_000  # decoded pixels held at once by a batch
    # liveness and database faults (docs/operations.md, "Faults")
    heartbeat_seconds: Annotated[float, Field(gt=0)] = 5.0  # also how often leases are renewed
    dead_after_seconds: Annotated[float, Field(gt=0)] = 60.0  # a silent worker's claims are retried after this
    db_retry_seconds: Annotated[float, Field(ge=0)] = 120.0  # transient database errors are retried this long
    db_busy_timeout_seconds: Annotated[float, Field(ge=0)] = 30.0  # SQLite: wait for another writer's lock
    flags: FlagConfig = Field(default_factory=FlagConfig)
    reference: ReferenceSettings = Field(default_factory=ReferenceSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)  # camwatch.alerts.config, docs/alerts.md
    # Prometheus /metrics of the worker (docs/metrics.md, "Prometheus metrics"): off unless a port is set
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | None = None
    metrics_host: str = "127.0.0.1"
    metrics_slices: bool = False  # drift gauges per slice too (one series per tag value: bounded by the tags)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)

    @field_validator("source", mode="before")
    @classmethod
    def _locations(cls, value: Any) -> Any:
        """Paths given programmatically become strings (a URL must not go through ``Path``, which would
        fold its ``//``)."""
        if isinstance(value, str | os.PathLike):
            value = [value]
        return [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value] if isinstance(value, list) \
            else value

    @field_validator("batch_size", "topk")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @model_validator(mode="after")
    def _primary(self) -> Settings:
        marked = [m.model for m in self.models if m.primary]
        if len(marked) > 1:
            raise ValueError(f"[[models]]: only one model can be primary, got {', '.join(marked)}")
        if len(self.models) > 1 and not marked:
            raise ValueError("[[models]]: mark one model as primary = true (its results drive the flags shown by "
                             "default)")
        return self

    def model_settings(self) -> list[Settings]:
        """One settings object per model, the primary first: each is these settings with the fields of its
        ``[[models]]`` entry (see :class:`ModelSettings`); ``[self]`` without ``models``."""
        if not self.models:
            return [self]
        ordered = sorted(self.models, key=lambda m: not (m.primary or len(self.models) == 1))
        return [self.model_copy(update={"models": [], **{k: getattr(m, k) for k in MODEL_OWN_FIELDS},
                                        **{k: getattr(m, k) for k in MODEL_INHERITED_FIELDS
                                           if getattr(m, k) is not None}}) for m in ordered]

    @model_validator(mode="after")
    def _liveness(self) -> Settings:
        if self.dead_after_seconds < 3 * self.heartbeat_seconds:
            raise ValueError(f"dead_after_seconds ({self.dead_after_seconds:g}) must be at least three heartbeats "
                             f"(3 x heartbeat_seconds = {3 * self.heartbeat_seconds:g}): a live worker would be "
                             "taken for dead")
        return self

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
