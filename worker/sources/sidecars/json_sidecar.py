"""``json``: camwatch's own sidecar ``IMAGE.json`` (full file name, e.g. ``a.jpg.json``), else
``STEM.json`` (``a.json``, unless that name is a COCO file's):
``{"boxes": [[x0, y0, x1, y1], ...], "label": str, "tags": {str: scalar}, "captured_at": ISO-8601}``.
A capture time without a zone is UTC. Unknown keys are noted, not an error."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from camwatch.files import display_path
from worker.sources.sidecars.base import (
    Annotations,
    ImageContext,
    Malformed,
    SidecarFormat,
    check_box_count,
    matches_any,
    number,
    parse_json,
    read_text,
    region_of,
    register,
)

KEYS = frozenset({"boxes", "label", "tags", "captured_at"})
_KEY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")


@register
class JsonSidecar(SidecarFormat):
    key = "json"
    description = "camwatch JSON next to the image: boxes, label, tags, captured_at"
    suffixes = (".json",)

    def candidates(self, image: ImageContext) -> Sequence[Path]:
        own = image.path.with_name(image.path.name + ".json")
        stem = image.folder / f"{image.stem}.json"
        return [own] if matches_any(stem.name, image.config.coco_files) else [own, stem]

    def read(self, path: Path, image: ImageContext) -> Annotations:
        doc = parse_json(read_text(path, image.config.max_sidecar_bytes, image.source_root))
        if not isinstance(doc, dict):
            raise Malformed(f"expected a JSON object, got {type(doc).__name__}")
        found = Annotations()
        unknown = sorted(str(k) for k in set(doc) - KEYS)
        if unknown:
            # names that look like a key someone meant (a typo of "boxes") are shown; anything else is only
            # counted, so no arbitrary file content reaches the logs or the database
            shown = [k for k in unknown if _KEY_NAME.fullmatch(k)][:10]
            found.warnings.append(f"{display_path(path)}: ignored {len(unknown)} unknown keys"
                                  + (f" {shown}" if shown else "") + f" (known: {sorted(KEYS)})")
        boxes = doc.get("boxes") or []
        if not isinstance(boxes, list) or not all(isinstance(b, list) and len(b) == 4 for b in boxes):
            raise Malformed('"boxes" must be a list of [x0, y0, x1, y1] lists')
        check_box_count(len(boxes), image.config.max_boxes)
        parsed = [(tuple(number(v, f"box {i}") for v in b), None) for i, b in enumerate(boxes, start=1)]
        found.region = region_of(parsed, "sidecar-json", image.config.max_boxes)[0]  # type: ignore[arg-type]
        label = doc.get("label")
        if label is not None and not isinstance(label, str):
            raise Malformed(f'"label" must be a string, got {type(label).__name__}')
        found.label = label
        tags = doc.get("tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(v, str | int | float | bool) for v in tags.values()):
            raise Malformed('"tags" must be an object of scalar values')
        found.tags = {str(k): str(v) for k, v in tags.items()}
        stamp = doc.get("captured_at")
        if stamp is not None:
            try:
                moment = datetime.fromisoformat(stamp)
            except (TypeError, ValueError):
                raise Malformed('"captured_at" is not an ISO-8601 time') from None
            try:
                found.captured_at = (moment.replace(tzinfo=UTC) if moment.tzinfo is None
                                     else moment.astimezone(UTC))
            except (OverflowError, ValueError):  # 0001-01-01T00:00+05:00 is in year 0 in UTC
                found.warnings.append(f'{display_path(path)}: "captured_at" lies outside the years 1..9999 in UTC: not used')
        return found
