"""Pictures for the dashboard: originals read safely, stored thumbnails, and heatmap overlays.

Safety: an original is read only when the stored ``uri`` resolves (``Path.resolve``, following symlinks)
to a regular file inside one of the configured source roots (``is_relative_to`` on resolved paths; a
string prefix check would let ``/data-other`` through for root ``/data`` and follow symlinks out of the
root). Nothing typed in a widget or a URL becomes a path: pages pass image ids, paths come from the
database. Decoding goes through :func:`camwatch.imaging.decode.load_image` (format allowlist, decompression-bomb
limit, EXIF orientation). Thumbnails are the worker's JPEGs, opened with the JPEG decoder only.

Overlays are drawn by :func:`camwatch.imaging.render.overlay` (heatmap, object boxes in green, CAM box in white);
when no picture is available the heatmap alone is shown (:func:`camwatch.imaging.render.heatmap_image`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage
from sqlalchemy import Engine

from camwatch.imaging.decode import ImageDecodeError, load_image
from camwatch.imaging.render import heatmap_image, overlay
from db.queries_images import ImageView, heatmap_views, image_views

log = logging.getLogger(__name__)

GALLERY_SIDE = 320  # longest side of gallery pictures, pixels
DETAIL_SIDE = 720
HEATMAP_ONLY_SIDE = 224
#: Heatmap extents are fractions of the original image (worker/preprocess.py): (0, 0, 1, 1) = all of it.
FULL_EXTENT = (0.0, 0.0, 1.0, 1.0)


def confined_path(uri: str, roots: Sequence[Path]) -> Path | None:
    """The resolved file ``uri`` names, if it is a regular file inside one of ``roots`` (resolved); else None."""
    if not roots or not uri:
        return None
    candidate = Path(uri)
    if not candidate.is_absolute():
        return None
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError) as exc:  # missing file, symlink loop, permission
        log.debug("original %s not readable: %s", uri, exc)
        return None
    if not any(resolved.is_relative_to(root.resolve()) for root in roots):
        log.warning("original %s resolves to %s, outside the source roots: not read", uri, resolved)
        return None
    return resolved if resolved.is_file() else None


@dataclass(frozen=True)
class Picture:
    """An encoded picture and where its pixels came from: 'original', 'thumbnail' or 'heatmap only'."""

    data: bytes
    source: str
    width: int
    height: int


def _encode(img: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def _fit(img: PILImage.Image, side: int) -> PILImage.Image:
    img = img.copy()
    img.thumbnail((side, side), PILImage.Resampling.LANCZOS)
    return img


def base_picture(view: ImageView, roots: Sequence[Path], side: int,
                 prefer_original: bool) -> tuple[PILImage.Image, str] | None:
    """The image to draw on (scaled to ``side``) and its source, or None when neither the original nor a
    thumbnail is available."""
    order = ("original", "thumbnail") if prefer_original else ("thumbnail", "original")
    for source in order:
        if source == "thumbnail" and view.thumbnail:
            with PILImage.open(io.BytesIO(view.thumbnail), formats=["JPEG"]) as thumb:
                return _fit(thumb.convert("RGB"), side), source
        if source == "original" and (path := confined_path(view.uri, roots)) is not None:
            try:
                decoded = load_image(path, draft_size=side)
            except ImageDecodeError as exc:
                log.warning("image %d: %s", view.image_id, exc)
                continue
            return _fit(decoded.image, side), source
    return None


def render_overlay(view: ImageView, roots: Sequence[Path], *, side: int, prefer_original: bool) -> Picture:
    """The heatmap over the best available picture, boxes drawn; the heatmap alone when there is none."""
    base = base_picture(view, roots, side, prefer_original)
    return heatmap_only(view, side) if base is None else _overlay_on(view, *base)


def _overlay_on(view: ImageView, img: PILImage.Image, source: str) -> Picture:
    original_size = (view.width, view.height) if view.width and view.height else img.size
    drawn = overlay(img, view.native, view.extent or FULL_EXTENT, object_boxes=view.object_boxes,
                    cam_box=view.cam_box, original_size=original_size)
    return Picture(_encode(drawn), source, drawn.width, drawn.height)


def heatmap_only(view: ImageView, side: int = HEATMAP_ONLY_SIDE) -> Picture:
    """The coloured heatmap at the image's aspect ratio (``side`` px on the longest side)."""
    if view.native is None:
        raise ValueError(f"image {view.image_id} has no heatmap to draw")
    width, height = view.width or side, view.height or side
    scale = side / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    coloured, _ = heatmap_image(view.native, view.extent or FULL_EXTENT, w, h)
    return Picture(_encode(coloured), "heatmap only", w, h)


def gallery_pictures(engine: Engine, image_ids: Sequence[int], roots: Sequence[Path]) -> dict[int, Picture]:
    """Overlays for a gallery page (thumbnail first, then the original); images without any heatmap and
    picture are left out."""
    pictures: dict[int, Picture] = {}
    for image_id, view in image_views(engine, list(image_ids)).items():
        if view.native is None and not view.thumbnail:
            continue
        if view.native is None:
            base = base_picture(view, roots, GALLERY_SIDE, prefer_original=False)
            if base is not None:
                pictures[image_id] = Picture(_encode(base[0]), base[1], base[0].width, base[0].height)
            continue
        pictures[image_id] = render_overlay(view, roots, side=GALLERY_SIDE, prefer_original=False)
    return pictures


@dataclass(frozen=True)
class DetailPictures:
    """The Image page's three pictures (None when unavailable)."""

    picture: Picture | None  # the original (or thumbnail) alone
    overlay: Picture | None
    heatmap: Picture | None


def detail_pictures(engine: Engine, image_id: int, roots: Sequence[Path]) -> DetailPictures:
    views = image_views(engine, [image_id])
    view = views.get(image_id)
    if view is None:
        return DetailPictures(None, None, None)
    base = base_picture(view, roots, DETAIL_SIDE, prefer_original=True)
    picture = None if base is None else Picture(_encode(base[0]), base[1], base[0].width, base[0].height)
    if view.native is None:
        return DetailPictures(picture, None, None)
    drawn = heatmap_only(view, DETAIL_SIDE) if base is None else _overlay_on(view, *base)
    return DetailPictures(picture, drawn, heatmap_only(view, DETAIL_SIDE))


def stored_heatmap_pictures(engine: Engine, image_id: int, roots: Sequence[Path],
                            side: int = GALLERY_SIDE) -> list[tuple[ImageView, Picture]]:
    """An overlay per stored heatmap of the image (primary first): each target class's map on the picture,
    or the map alone when no picture is available."""
    views = heatmap_views(engine, image_id)
    if not views:
        return []
    base = base_picture(views[0], roots, side, prefer_original=True)
    return [(view, heatmap_only(view, side) if base is None else _overlay_on(view, *base))
            for view in views if view.native is not None]
