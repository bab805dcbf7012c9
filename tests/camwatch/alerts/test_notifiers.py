"""Every notifier against a real local receiver: the generic JSON webhook and the Slack-compatible payload
against an ``http.server`` receiver, e-mail against an ``aiosmtpd`` server (with AUTH); failures raise a
:class:`DeliveryError` naming no secret."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import SecretStr

from camwatch.alerts.config import AlertSettings, SmtpSettings
from camwatch.alerts.messages import Notice, alert_links, redact_url
from camwatch.alerts.notifiers import NOTIFIERS, DeliveryError, configured_notifiers
from tests.support.receivers import free_port, smtp_server, webhook_receiver

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

NOW = dt.datetime(2026, 11, 9, 6, 0, tzinfo=dt.UTC)
NOTICE = Notice(status="firing", rule="drift",
                subject={"key": "statistic=energy_outside;slice=camera=cam-2", "statistic": "energy_outside",
                         "class_index": -1, "slice": "camera=cam-2", "target": None},
                value=0.61, threshold=0.2, summary="camera=cam-2: energy outside object rose from 0.24 to 0.61 "
                "since 2026-11-07; 56 % of its images flagged <b>&</b>", first_seen=NOW, last_seen=NOW,
                since=NOW - dt.timedelta(days=2), alert_id=7,
                links=alert_links("http://dash:8501", "drift", "energy_outside", "camera=cam-2"))


def _one(settings: AlertSettings, key: str):  # type: ignore[no-untyped-def]
    notifier = NOTIFIERS[key](settings)
    assert notifier is not None and notifier.key == key
    return notifier


def test_webhook_posts_the_json_payload() -> None:
    with webhook_receiver() as hook:
        _one(AlertSettings(webhook_url=SecretStr(hook.url)), "webhook").send(NOTICE)
        body = hook.wait(1)[0].body
    assert body["schema"] == "camwatch.alert.v1" and body["status"] == "firing" and body["rule"] == "drift"
    assert body["subject"]["slice"] == "camera=cam-2" and body["subject"]["statistic"] == "energy_outside"
    assert (body["value"], body["threshold"], body["alert_id"]) == (0.61, 0.2, 7)
    assert body["summary"] == NOTICE.summary and body["since"] == "2026-11-07T06:00:00+00:00"
    assert body["links"]["drift"] == "http://dash:8501/drift?statistic=energy_outside&slice=camera%3Acam-2"
    assert body["links"]["flagged"] == "http://dash:8501/flagged?slice=camera%3Acam-2"


def test_slack_payload_has_text_and_blocks_with_literal_user_text() -> None:
    with webhook_receiver("/services/T000/B000/XXXX") as hook:
        _one(AlertSettings(slack_webhook_url=SecretStr(hook.url)), "slack").send(NOTICE)
        received = hook.wait(1)[0]
    body = received.body
    assert received.path == "/services/T000/B000/XXXX"
    assert "FIRING" in body["text"] and "camera=cam-2" in body["text"]
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in body["text"] and "<b>" not in body["text"]  # mrkdwn-escaped
    assert body["blocks"][0]["type"] == "section"
    assert "<http://dash:8501/drift?statistic=energy_outside&slice=camera%3Acam-2|drift>" in \
        body["blocks"][-1]["elements"][0]["text"]


def test_email_over_smtp_with_login() -> None:
    with smtp_server(password="hunter2-smtp") as sink:
        smtp = SmtpSettings(host="127.0.0.1", port=sink.port, user="ops", password=SecretStr("hunter2-smtp"),
                            from_addr="camwatch@example.org", to=["oncall@example.org", "lead@example.org"])
        _one(AlertSettings(smtp=smtp), "email").send(NOTICE)
        message = sink.wait(1)[0]
    assert sink.logins == [("ops", "hunter2-smtp")]
    assert message["Subject"].startswith("[camwatch FIRING] drift: camera=cam-2")
    assert message["To"] == "oncall@example.org, lead@example.org" and message["From"] == "camwatch@example.org"
    body = message.get_payload(decode=True).decode()
    assert NOTICE.summary in body and "http://dash:8501/flagged?slice=camera%3Acam-2" in body


def test_email_with_a_wrong_password_fails_without_naming_it() -> None:
    with smtp_server(password="right") as sink:
        smtp = SmtpSettings(host="127.0.0.1", port=sink.port, user="ops", password=SecretStr("wrong-pw-x"),
                            to=["oncall@example.org"], timeout_seconds=2)
        with pytest.raises(DeliveryError) as info:
            _one(AlertSettings(smtp=smtp), "email").send(NOTICE)
    assert "wrong-pw-x" not in str(info.value) and not sink.messages


@pytest.mark.parametrize("key", ["webhook", "slack"])
def test_refused_and_failing_receivers_raise_without_the_secret(key: str) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook/s3cr3t"
    settings = AlertSettings(**{f"{key}_url" if key == "webhook" else "slack_webhook_url": SecretStr(url)})
    with pytest.raises(DeliveryError) as info:
        _one(settings, key).send(NOTICE)
    assert "s3cr3t" not in str(info.value) and "127.0.0.1" in str(info.value)
    with webhook_receiver("/hook/s3cr3t", status=500) as hook:
        settings = AlertSettings(**{f"{key}_url" if key == "webhook" else "slack_webhook_url": SecretStr(hook.url)})
        with pytest.raises(DeliveryError, match="HTTP 500") as info:
            _one(settings, key).send(NOTICE)
    assert "s3cr3t" not in str(info.value)


def test_email_to_a_dead_server_raises() -> None:
    smtp = SmtpSettings(host="127.0.0.1", port=free_port(), to=["x@example.org"], timeout_seconds=2)
    with pytest.raises(DeliveryError, match="SMTP 127.0.0.1"):
        _one(AlertSettings(smtp=smtp), "email").send(NOTICE)


def test_only_configured_notifiers_are_built() -> None:
    assert configured_notifiers(AlertSettings()) == []
    assert [n.key for n in configured_notifiers(AlertSettings(webhook_url=SecretStr("http://h/x"),
                                                              smtp=SmtpSettings(host="h")))] == ["webhook"]


def test_every_notifier_has_a_test_case() -> None:
    tested = {"webhook": test_webhook_posts_the_json_payload, "slack": test_slack_payload_has_text_and_blocks_with_literal_user_text,
              "email": test_email_over_smtp_with_login}
    assert set(tested) == set(NOTIFIERS)


def test_redact_url() -> None:
    assert redact_url("https://user:pw@hooks.slack.com:8443/services/T0/B0/secret?x=1") == "https://hooks.slack.com:8443/…"
    assert redact_url("http://[::1") == "<invalid URL>"
