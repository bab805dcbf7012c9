"""What a queue event says about its image, as the pipeline's :class:`Annotations` (they replace sidecars).

Boxes are in pixels of the image as stored, like sidecar boxes (the pipeline orients them with the
pixels); the capture time is the event's ``time``; tags are the topic's tags overridden by the event's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from camwatch.regions import ObjectRegion
from db.events import event_metadata
from worker.sources.sidecars import Annotations

#: ``ObjectRegion.source`` of boxes carried by an event.
REGION_SOURCE = "event"


def annotations_of(meta: dict[str, Any]) -> Annotations:
    """The annotations in a stored ``event_meta`` document (see ``camwatch.events.ImageEvent.metadata``)."""
    boxes = tuple(tuple(float(v) for v in box) for box in meta.get("boxes") or ())
    stamp = meta.get("time")
    return Annotations(region=ObjectRegion(boxes=boxes, source=REGION_SOURCE) if boxes else None,  # type: ignore[arg-type]
                       label=meta.get("label"), tags={str(k): str(v) for k, v in (meta.get("tags") or {}).items()},
                       captured_at=dt.datetime.fromisoformat(stamp) if stamp else None)


def event_annotations(engine: Engine, image_ids: Sequence[int]) -> dict[int, Annotations]:
    """Annotations of the images among ``image_ids`` that queue events created (one query)."""
    return {image_id: annotations_of(meta) for image_id, meta in event_metadata(engine, image_ids).items()}
