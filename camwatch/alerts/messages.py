"""What a notification says, per receiver format: the generic JSON webhook, a Slack-compatible payload and
an e-mail; and :func:`redact_url`, how receivers' addresses appear in logs.

Payload of the generic webhook (``camwatch.alert.v1``)::

    {"schema": "camwatch.alert.v1", "status": "firing" | "resolved", "rule": "drift",
     "subject": {"key": ..., "statistic": ..., "class_index": ..., "slice": ..., "target": ...},
     "value": 0.61, "threshold": 0.2, "summary": "camera=cam-2: ...", "first_seen": ISO-8601,
     "last_seen": ISO-8601, "since": ISO-8601 | null, "alert_id": 12, "links": {"drift": URL, ...}}
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

SCHEMA = "camwatch.alert.v1"


@dataclass(frozen=True)
class Notice:
    """One state change to tell people about."""

    status: str  # firing | resolved
    rule: str
    subject: dict[str, Any]
    value: float | None
    threshold: float | None
    summary: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    since: dt.datetime | None
    alert_id: int
    links: dict[str, str] = field(default_factory=dict)
    queued_at: float = 0.0  # time.monotonic() when queued (delivery latency)

    @property
    def title(self) -> str:
        return f"[camwatch {self.status.upper()}] {self.rule}: {self.summary}"


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def json_payload(n: Notice) -> dict[str, Any]:
    return {"schema": SCHEMA, "status": n.status, "rule": n.rule, "subject": n.subject, "value": n.value,
            "threshold": n.threshold, "summary": n.summary, "first_seen": _iso(n.first_seen),
            "last_seen": _iso(n.last_seen), "since": _iso(n.since), "alert_id": n.alert_id, "links": n.links}


def _slack_escape(text: str) -> str:
    """Slack mrkdwn control characters as entities (user-controlled tag values stay literal text)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(n: Notice) -> dict[str, Any]:
    """Slack incoming-webhook message: ``text`` (the notification fallback) and ``blocks``."""
    icon = ":rotating_light:" if n.status == "firing" else ":white_check_mark:"
    text = f"{icon} {_slack_escape(n.title)}"
    links = " · ".join(f"<{url}|{_slack_escape(name)}>" for name, url in n.links.items())
    fields = [f"*Rule:* {n.rule}", f"*Value:* {n.value if n.value is not None else '-'}",
              f"*Threshold:* {n.threshold if n.threshold is not None else '-'}", f"*First seen:* {_iso(n.first_seen)}"]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": _slack_escape(f)} for f in fields]}]
    if links:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": links}]})
    return {"text": text, "blocks": blocks}


def email_message(n: Notice, sender: str, to: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = " ".join(n.title.split())[:200]
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    lines = [n.summary, "", f"Status: {n.status}", f"Rule: {n.rule}", f"Subject: {n.subject.get('key')}",
             f"Value: {n.value}", f"Threshold: {n.threshold}", f"First seen: {_iso(n.first_seen)}",
             f"Last seen: {_iso(n.last_seen)}", ""]
    lines += [f"{name}: {url}" for name, url in n.links.items()]
    msg.set_content("\n".join(lines))
    return msg


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: a webhook URL's path and query carry its secret token, its user info a
    password; neither is ever logged."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{port}/…"


def alert_links(base_url: str, rule: str, statistic: str | None, slice_name: str) -> dict[str, str]:
    """Dashboard links of an alert: the drift chart of its statistic and the flagged gallery, both filtered
    to its slice (the pages read ``?statistic=`` and ``?slice=key:value``), the Health page for rules about
    sources and workers, and the Alerts page."""
    from urllib.parse import urlencode

    params: dict[str, str] = {}
    if slice_name and "=" in slice_name:
        key, _, value = slice_name.partition("=")
        params["slice"] = f"{key}:{value}"
    links: dict[str, str] = {}
    if rule == "drift" and statistic:
        links["drift"] = f"{base_url}/drift?{urlencode({'statistic': statistic, **params})}"
    if rule in ("drift", "flagged_share"):
        links["flagged"] = f"{base_url}/flagged" + (f"?{urlencode(params)}" if params else "")
    if rule in ("error_rate", "source_silent", "heartbeat_missing"):
        links["health"] = f"{base_url}/health"
    links["alerts"] = f"{base_url}/alerts"
    return links
