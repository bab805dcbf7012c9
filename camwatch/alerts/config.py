"""The ``[alerts]`` settings: which rules run with which thresholds, where notifications go, the cooldown.

Every rule is on by default with thresholds that stay quiet on a healthy stream (docs/alerts.md gives the
reasons); notifications go nowhere until a receiver is configured (``webhook_url``, ``slack_webhook_url`` or
``[alerts.smtp] host`` and ``to``). Secrets (the webhook URLs, the SMTP password) are :class:`SecretStr`:
they print as ``**********`` and the notifiers log them redacted (:func:`camwatch.alerts.messages.redact_url`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, SecretStr


class DriftRuleSettings(BaseModel):
    """``drift``: the stored decision (``drift_results.drifted``) of a statistic's newest window(s)."""

    enabled: bool = True
    consecutive_windows: Annotated[int, Field(ge=1)] = 1  # fire when this many newest windows drifted in a row
    statistics: list[str] = Field(default_factory=list)  # empty: every tested statistic
    per_class: bool = False  # also one subject per predicted class (noisier; off by default)
    per_slice: bool = True  # one subject per tested slice (drift.slice_tags values) besides every image


class FlaggedShareRuleSettings(BaseModel):
    """``flagged_share``: share of processed images flagged over the newest ``window_minutes`` of capture time."""

    enabled: bool = True
    max_share: Annotated[float, Field(gt=0, le=1)] = 0.3
    window_minutes: Annotated[float, Field(gt=0)] = 60.0
    min_images: Annotated[int, Field(ge=1)] = 20  # fewer: "not enough data", the state is left as it is
    per_slice: bool = True


class ErrorRateRuleSettings(BaseModel):
    """``error_rate``: share of images that failed over the newest ``window_minutes`` of capture time."""

    enabled: bool = True
    max_rate: Annotated[float, Field(gt=0, le=1)] = 0.05
    window_minutes: Annotated[float, Field(gt=0)] = 60.0
    min_images: Annotated[int, Field(ge=1)] = 20


class SourceSilentRuleSettings(BaseModel):
    """``source_silent``: no new image registered from a source for ``after_minutes``."""

    enabled: bool = True
    after_minutes: Annotated[float, Field(gt=0)] = 60.0
    forget_after_days: Annotated[float, Field(gt=0)] = 7.0  # sources silent longer are retired, not alerted


class HeartbeatRuleSettings(BaseModel):
    """``heartbeat_missing``: a worker not stopped cleanly whose heartbeat is older than ``after_seconds``."""

    enabled: bool = True
    after_seconds: Annotated[float, Field(gt=0)] | None = None  # None: the settings' dead_after_seconds
    forget_after_days: Annotated[float, Field(gt=0)] = 7.0


class SmtpSettings(BaseModel):
    """E-mail notifications over SMTP (``smtplib``); on when ``host`` and ``to`` are set."""

    host: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    user: str | None = None
    password: SecretStr | None = None
    from_addr: str = "camwatch@localhost"
    to: list[str] = Field(default_factory=list)
    starttls: bool = False
    ssl: bool = False  # SMTPS (usually port 465)
    timeout_seconds: Annotated[float, Field(gt=0)] = 10.0


class AlertSettings(BaseModel):
    """Alert rules (keys of :data:`camwatch.alerts.rules.RULES`), receivers and delivery."""

    enabled: bool = True
    every_seconds: Annotated[float, Field(gt=0)] = 60.0  # evaluated this often, and after each drift pass
    cooldown_minutes: Annotated[float, Field(ge=0)] = 60.0  # no new 'firing' notice of a subject within this
    # a firing alert resolves once its rule has said ok for this long since it last said firing (no flapping)
    resolve_after_minutes: Annotated[float, Field(ge=0)] = 15.0
    webhook_url: SecretStr | None = None  # generic JSON webhook (env CAMWATCH_ALERTS__WEBHOOK_URL)
    slack_webhook_url: SecretStr | None = None  # Slack-compatible incoming webhook ({"text", "blocks"})
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    timeout_seconds: Annotated[float, Field(gt=0)] = 10.0  # one webhook request
    max_attempts: Annotated[int, Field(ge=1)] = 6  # per notification and receiver
    backoff_seconds: Annotated[float, Field(gt=0)] = 1.0  # first retry delay; doubles per attempt
    backoff_max_seconds: Annotated[float, Field(gt=0)] = 300.0
    queue_size: Annotated[int, Field(ge=1)] = 1000  # pending notifications per receiver; the oldest dropped
    drift: DriftRuleSettings = Field(default_factory=DriftRuleSettings)
    flagged_share: FlaggedShareRuleSettings = Field(default_factory=FlaggedShareRuleSettings)
    error_rate: ErrorRateRuleSettings = Field(default_factory=ErrorRateRuleSettings)
    source_silent: SourceSilentRuleSettings = Field(default_factory=SourceSilentRuleSettings)
    heartbeat_missing: HeartbeatRuleSettings = Field(default_factory=HeartbeatRuleSettings)
