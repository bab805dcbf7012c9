"""Ground truth of a generated stream: ``OUT/manifest.json`` and the per-image sidecars.

``manifest.json``::

    {"format": "camwatch-demo-manifest/1",
     "config": {"seed", "start", "days", "images", "cameras": [{"site", "camera", "width", "height"}],
                "objects": [...], "planted_camera", "planted_day", "planted_kind", "global_change_day"},
     "events": [{"kind": "cat_poster", "scope": "camera", "site", "camera", "start", "box"},
                {"kind": "lighting", "scope": "global", "start", "gains"}],
     "images": [{"path", "captured_at", "site", "camera", "width", "height", "object", "label", "box",
                 "planted", "planted_kind", "planted_box", "global_change"}]}

``path`` is relative to OUT with ``/`` separators; times are ISO-8601 UTC (``2026-11-07T13:05:22Z``);
boxes are ``[x0, y0, x1, y1]`` in the image's pixels, x = column, half-open. ``planted_kind`` and
``planted_box`` are ``null`` for images without the planted overlay. ``images`` is in capture order.

The sidecar ``IMAGE.json`` next to each image (``frame_000123.jpg.json``) is what camwatch reads::

    {"boxes": [[x0, y0, x1, y1]], "label": "espresso", "tags": {"site": ..., "camera": ...},
     "captured_at": "2026-11-07T13:05:22Z"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from demo.timeline import LIGHTING, FramePlan, StreamConfig

FORMAT = "camwatch-demo-manifest/1"


def iso(when: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` for an aware UTC datetime."""
    if when.utcoffset() != timedelta(0):
        raise ValueError(f"expected a UTC datetime, got {when!r}")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def sidecar(plan: FramePlan) -> dict[str, Any]:
    """The sidecar JSON for one frame (object box, ImageNet label, site/camera tags, capture time)."""
    return {
        "boxes": [list(plan.recipe.object_box)],
        "label": plan.recipe.obj.label,
        "tags": {"site": plan.spec.site, "camera": plan.spec.camera},
        "captured_at": iso(plan.captured_at),
    }


def image_entry(plan: FramePlan) -> dict[str, Any]:
    """The manifest entry for one frame."""
    recipe = plan.recipe
    return {
        "path": plan.relpath,
        "captured_at": iso(plan.captured_at),
        "site": plan.spec.site,
        "camera": plan.spec.camera,
        "width": recipe.width,
        "height": recipe.height,
        "object": recipe.obj.name,
        "label": recipe.obj.label,
        "box": list(recipe.object_box),
        "planted": plan.planted,
        "planted_kind": recipe.overlay.kind if recipe.overlay is not None else None,
        "planted_box": list(recipe.overlay_box) if recipe.overlay_box is not None else None,
        "global_change": plan.global_change,
    }


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json``: stream configuration, planted events and one entry per image."""

    config: dict[str, Any]
    events: list[dict[str, Any]]
    images: list[dict[str, Any]]

    @classmethod
    def build(cls, config: StreamConfig, plans: list[FramePlan]) -> Manifest:
        site, camera = config.planted_camera.split("/", 1)
        return cls(
            config={
                "seed": config.seed,
                "start": config.start.isoformat(),
                "days": config.days,
                "images": config.images,
                "cameras": [{"site": c.site, "camera": c.camera, "width": c.width, "height": c.height}
                            for c in config.cameras],
                "objects": [{"name": o.name, "label": o.label} for o in config.objects],
                "planted_camera": config.planted_camera,
                "planted_day": config.planted_day,
                "planted_kind": config.planted_kind,
                "global_change_day": config.global_change_day,
            },
            events=[
                {"kind": config.planted_kind, "scope": "camera", "site": site, "camera": camera,
                 "start": iso(config.planted_start), "box": list(config.overlay_box())},
                {"kind": "lighting", "scope": "global", "start": iso(config.global_change_start),
                 "gains": list(LIGHTING)},
            ],
            images=[image_entry(plan) for plan in plans],
        )

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "config": self.config, "events": self.events, "images": self.images}

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read a manifest, with an error naming the file if it is not one."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read the demo manifest ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a demo manifest (expected format {FORMAT!r})")
        return cls(config=data["config"], events=data["events"], images=data["images"])
