"""``mqtt://`` — an MQTT 5 broker (paho-mqtt 2.x), QoS 1, a persistent session, a shared subscription.

- The worker subscribes to ``$share/<group>/<filter>`` (``group=`` in the URL, default ``camwatch``), so
  the messages are spread over the workers of a group; one worker is a group of one.
- The session is persistent (``clean_start=False``, session expiry ``queue.session_expiry_seconds``) under a
  stable client id, ``camwatch-<group>-<host>-<slot>`` (:mod:`.slots`; ``client_id=`` in the URL fixes
  it): a restarted worker resumes its session, and the broker resends what it had not acknowledged.
  Mosquitto also queues a stopped member's share of new messages in its session until it returns.
- Acknowledgements are manual (``manual_ack``): the PUBACK of a message goes out only once its image's
  result is committed. ``Receive Maximum`` is ``queue.max_in_flight``: the broker sends no more than that
  many unacknowledged messages (backpressure).
- Topic levels after the filter's fixed prefix become tags, named by ``topic_tags`` (``["site",
  "camera"]`` for ``camwatch/images/north/cam-2`` under ``camwatch/images/#``); the event's tags win.
- Dead letters are published (QoS 1, not retained) to ``queue.dead_letter_topic`` as JSON
  ``{"reason", "topic", "event_id", "event", "consumer", "failed_at"}``, then the message is acknowledged.
  MQTT has no delivery counter, so ``max_deliveries`` does not apply; an image that keeps crashing workers
  is given up by the database's ``max_attempts``.
- paho's network thread reconnects with a backoff of 1 s up to ``queue.reconnect_max_seconds``.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from camwatch.locations import MqttLocation, topic_matches
from db.types import utcnow
from worker.sources.queue.base import BrokerUnavailable, Delivery, QueueSource

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
PUBLISH_TIMEOUT = 10.0


class MqttSource(QueueSource):
    kind = "mqtt"

    def __init__(self, location: MqttLocation, *, topic_tags: list[str], **kwargs: Any) -> None:
        super().__init__(display=location.display, **kwargs)
        self.location = location
        self.tag_names = list(topic_tags)
        self.session_present: bool | None = None
        self._inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._reset_in_flight = False
        self._quiet_since = time.monotonic()
        self._last_disconnect: str | None = None
        self._subscribed_before = False
        if topic_matches(location.topic, self.queue.dead_letter_topic):
            raise ValueError(f"{location.display}: the dead-letter topic {self.queue.dead_letter_topic!r} matches "
                             "the subscription; dead letters would come back (set queue.dead_letter_topic)")
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.consumer, protocol=mqtt.MQTTv5,
                             manual_ack=True)
        if location.username:
            client.username_pw_set(location.username, location.password)
        client.reconnect_delay_set(1, max(1, int(self.queue.reconnect_max_seconds)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.client = client

    # -- paho callbacks (network thread) -------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode,
                    _props: Properties | None) -> None:
        if reason.is_failure:
            log.warning("%s: connection refused (%s)", self.display, reason)
            return
        with self._lock:
            self.session_present = bool(flags.session_present)
            if not flags.session_present:
                self._reset_in_flight = True  # packet ids of an earlier session mean nothing now
        client.subscribe(self.location.shared_filter, options=mqtt.SubscribeOptions(qos=1))
        self._connected.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, _props: Properties | None) -> None:
        self._connected.clear()
        self._subscribed.clear()
        self._last_disconnect = str(reason)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: list[ReasonCode],
                      _props: Properties | None) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error("%s: subscription to %s refused (%s)", self.display, self.location.shared_filter, failed)
            return
        self._quiet_since = time.monotonic()
        if self.session_present is not None and self._subscribed_before:
            log.info("%s: subscribed again after reconnecting (session %s)", self.display,
                     "resumed" if self.session_present else "new")
        self._subscribed_before = True
        self._subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(message)

    # -- life cycle ----------------------------------------------------------------------------------
    def connect(self) -> None:
        """Connect and subscribe, waiting up to :data:`CONNECT_TIMEOUT`; then paho keeps the connection."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.queue.session_expiry_seconds
        props.ReceiveMaximum = min(self.queue.max_in_flight, 65535)
        try:
            self.client.connect(self.location.host, self.location.port, keepalive=30, clean_start=False,
                                properties=props)
        except OSError as exc:
            raise ValueError(f"{self.display}: cannot connect to the MQTT broker ({exc})") from None
        self.client.loop_start()
        if not self._subscribed.wait(CONNECT_TIMEOUT):
            self.client.loop_stop()
            raise ValueError(f"{self.display}: not connected and subscribed within {CONNECT_TIMEOUT:g} s "
                             f"({self._last_disconnect or 'no answer'})")
        log.info("%s: subscribed to %s as %s (session %s)", self.display, self.location.shared_filter, self.consumer,
                 "resumed" if self.session_present else "new")

    def _broker_close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # -- the queue source's hooks --------------------------------------------------------------------
    def topic_tags(self, topic: str | None) -> dict[str, str]:
        if topic is None:
            return {}
        levels = topic.split("/")[len(self.location.fixed_levels):]
        return {name: value for name, value in zip(self.tag_names, levels, strict=False) if value}

    def _check_connected(self) -> None:
        if not self._connected.is_set():
            raise BrokerUnavailable(f"disconnected ({self._last_disconnect or 'connecting'})")

    def _broker_fetch(self, limit: int) -> list[Delivery]:
        with self._lock:
            if self._reset_in_flight:
                self._reset_in_flight = False
                if self.in_flight:
                    log.warning("%s: the broker did not keep the session; %d unacknowledged messages are its to "
                                "resend (their images are registered already)", self.display, len(self.in_flight))
                    self.in_flight.clear()
        out: list[Delivery] = []
        while len(out) < limit:
            try:
                message = self._inbox.get_nowait()
            except queue.Empty:
                break
            out.append(Delivery(str(message.mid), bytes(message.payload), topic=message.topic))
        if out:
            self._quiet_since = time.monotonic()
        else:
            self._check_connected()
        return out

    def _broker_ack(self, keys: list[str]) -> None:
        self._check_connected()
        for key in keys:
            if self.client.ack(int(key), 1) != mqtt.MQTT_ERR_SUCCESS:
                raise BrokerUnavailable("acknowledgement not sent (disconnected)")

    def _broker_dead_letter(self, delivery: Delivery, reason: str, event_id: str | None) -> None:
        self._check_connected()
        doc: dict[str, Any] = {"reason": reason, "topic": delivery.topic, "event_id": event_id,
                               "consumer": self.consumer, "failed_at": utcnow().isoformat()}
        if delivery.payload is not None:
            try:
                doc["event"] = delivery.payload.decode("utf-8")
            except UnicodeDecodeError:
                doc["event_base64"] = base64.b64encode(delivery.payload).decode("ascii")
        info = self.client.publish(self.queue.dead_letter_topic, json.dumps(doc), qos=1)
        try:
            info.wait_for_publish(PUBLISH_TIMEOUT)
        except (RuntimeError, ValueError) as exc:
            raise BrokerUnavailable(f"dead letter not published ({exc})") from None
        if not info.is_published():
            raise BrokerUnavailable(f"dead letter not confirmed within {PUBLISH_TIMEOUT:g} s")
        self._broker_ack([delivery.key])

    def _broker_connected(self) -> bool:
        return self._connected.is_set()

    def _broker_backlog(self) -> tuple[int | None, int | None, int | None]:
        return None, len(self.in_flight) + self._inbox.qsize(), None

    def _broker_drained(self) -> bool:
        """Drained when subscribed, nothing is waiting locally, and no message came for ``drain_quiet_seconds``."""
        quiet = time.monotonic() - self._quiet_since >= self.queue.drain_quiet_seconds
        return self._subscribed.is_set() and self._inbox.empty() and quiet
