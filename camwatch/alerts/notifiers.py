"""Receivers of notifications, registered by stable key; each is configured by ``[alerts]`` or absent.

- ``webhook``: POST of :func:`~camwatch.alerts.messages.json_payload` to ``alerts.webhook_url``;
- ``slack``: POST of a Slack-compatible :func:`~camwatch.alerts.messages.slack_payload` to
  ``alerts.slack_webhook_url``;
- ``email``: an e-mail over SMTP (``[alerts.smtp]``: host, port, user, password, from_addr, to, starttls/ssl).

:meth:`Notifier.send` raises on any failure (connection refused, timeout, HTTP status outside 2xx, SMTP
error) with a message that names no secret; retries and backoff are the caller's
(:mod:`worker.service.delivery`). Only the standard library is used (``urllib``, ``smtplib``).
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from camwatch import __version__
from camwatch.alerts.config import AlertSettings
from camwatch.alerts.messages import Notice, email_message, json_payload, redact_url, slack_payload


class DeliveryError(Exception):
    """A receiver refused or could not be reached; the message names no secret."""


@dataclass
class Notifier:
    key: str
    where: str  # redacted: safe to log
    send: Callable[[Notice], None]


def _post_json(url: str, payload: dict, timeout: float) -> None:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"camwatch/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(1 << 16)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} from {redact_url(url)}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{redact_url(url)}: {type(reason).__name__}: "
                            f"{str(reason).replace(url, redact_url(url))}") from None


def _webhook(settings: AlertSettings) -> Notifier | None:
    if settings.webhook_url is None:
        return None
    url = settings.webhook_url.get_secret_value()
    return Notifier("webhook", redact_url(url), lambda n: _post_json(url, json_payload(n), settings.timeout_seconds))


def _slack(settings: AlertSettings) -> Notifier | None:
    if settings.slack_webhook_url is None:
        return None
    url = settings.slack_webhook_url.get_secret_value()
    return Notifier("slack", redact_url(url), lambda n: _post_json(url, slack_payload(n), settings.timeout_seconds))


def _email(settings: AlertSettings) -> Notifier | None:
    smtp = settings.smtp
    if smtp.host is None or not smtp.to:
        return None
    host, port = smtp.host, smtp.port

    def send(n: Notice) -> None:
        password = smtp.password.get_secret_value() if smtp.password is not None else None
        try:
            client: smtplib.SMTP = (smtplib.SMTP_SSL(host, port, timeout=smtp.timeout_seconds,
                                                     context=ssl.create_default_context()) if smtp.ssl
                                    else smtplib.SMTP(host, port, timeout=smtp.timeout_seconds))
            with client:
                if smtp.starttls and not smtp.ssl:
                    client.starttls(context=ssl.create_default_context())
                if smtp.user is not None and password is not None:
                    client.login(smtp.user, password)
                client.send_message(email_message(n, smtp.from_addr, smtp.to))
        except (smtplib.SMTPException, OSError) as exc:
            text = str(exc) if password is None else str(exc).replace(password, "**********")
            raise DeliveryError(f"SMTP {host}:{port}: {type(exc).__name__}: {text}") from None

    return Notifier("email", f"smtp://{host}:{port}", send)


#: Notifier key → factory (None when the settings configure no such receiver).
NOTIFIERS: dict[str, Callable[[AlertSettings], Notifier | None]] = {
    "webhook": _webhook, "slack": _slack, "email": _email}


def configured_notifiers(settings: AlertSettings) -> list[Notifier]:
    return [n for factory in NOTIFIERS.values() if (n := factory(settings)) is not None]
