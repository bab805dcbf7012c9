"""Queue sources: ``redis://`` (:mod:`.redis_streams`) and ``mqtt://`` (:mod:`.mqtt`), on the common
machinery of :mod:`.base` (receive, check, materialise with :mod:`.intake`, register, acknowledge after the
commit, dead-letter). The event format is :mod:`camwatch.events` (docs/events.md).

The openers here are what ``worker.sources`` registers under the two schemes; they connect at once, so a
wrong URL or an unreachable broker is an error when the worker starts, not later.
"""

from __future__ import annotations

from camwatch.locations import parse_mqtt, parse_redis
from camwatch.settings import Settings
from worker.sources.queue.base import QueueSource
from worker.sources.queue.intake import IntakeConfig
from worker.sources.queue.slots import Slot, host_name

__all__ = ["QueueSource", "intake_config", "open_mqtt", "open_redis"]


def intake_config(settings: Settings) -> IntakeConfig:
    q = settings.queue
    return IntakeConfig.create(q.spool_dir, settings.allowed_roots, settings.allowed_hosts,
                               max_inline_bytes=q.max_inline_bytes, max_download_bytes=q.max_download_bytes,
                               download_timeout=q.download_timeout_seconds)


def open_redis(location: str, name: str | None, settings: Settings) -> QueueSource:
    import redis

    from worker.sources.queue.redis_streams import RedisStreamSource

    where = parse_redis(location)
    client = redis.Redis.from_url(where.connection_url, socket_timeout=30, socket_connect_timeout=5,
                                  health_check_interval=30)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        client.close()
        raise ValueError(f"{where.display}: cannot reach Redis ({exc})") from None
    slot = None
    consumer = where.consumer or settings.worker_id
    if consumer is None:
        safe = where.connection_url.rpartition("@")[2]
        slot = Slot(f"redis|{safe}|{where.stream}|{where.group}")
        consumer = slot.name
    source = RedisStreamSource(where, client=client, name=name or f"redis:{where.stream}", consumer=consumer,
                               queue=settings.queue, intake=intake_config(settings))
    source.slot = slot
    try:
        source.ensure_group()
    except BaseException:
        source.close()
        raise
    return source


def open_mqtt(location: str, name: str | None, settings: Settings) -> QueueSource:
    from worker.sources.queue.mqtt import MqttSource

    where = parse_mqtt(location)
    slot = None
    client_id = where.client_id
    if client_id is None:
        if settings.worker_id is not None:
            client_id = f"camwatch-{where.group}-{settings.worker_id}"
        else:
            slot = Slot(f"mqtt|{where.host}:{where.port}|{where.topic}|{where.group}")
            client_id = f"camwatch-{where.group}-{host_name()}-{slot.number}"
    source = MqttSource(where, topic_tags=list(settings.topic_tags), name=name or f"mqtt:{where.topic}",
                        consumer=client_id, queue=settings.queue, intake=intake_config(settings))
    source.slot = slot
    try:
        source.connect()
    except BaseException:
        if slot is not None:
            slot.release()
        raise
    return source
