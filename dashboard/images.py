"""Pictures for the dashboard: originals read safely, stored thumbnails, and heatmap overlays.

Safety: an original is read only when the stored ``uri`` resolves (``Path.resolve``, following symlinks)
to a regular file inside one of the configured source roots (``is_relative_to`` on resolved paths; a
string prefix check would let ``/data-other`` through for root ``/data`` and follow symlinks out of the
root). Nothing typed in a widget or a URL becomes a path: pages pass image ids, paths come from the
database. Decoding goes through :func:`camwatch.imaging.decode.load_image` (format allowlist, decompression-bomb
limit, EXIF orientation). Thumbnails are the worker's JPEGs, opened with the JPEG decoder only.

Overlays are drawn by :func:`camwatch.imaging.render.overlay` (heatmap, object boxes in green, CAM box in white);
when no picture is available the heatmap alone is shown (:func:`camwatch.imaging.render.heatmap_image`).

One bad picture never takes a page down: a stored thumbnail that does not decode, an original that cannot
be read, a heatmap or box that cannot be drawn are each logged and that one picture falls back (to the
original, the heatmap alone, or "not available"); the other pictures of the gallery are drawn as usual.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image as PILImage
from sqlalchemy import Engine

from camwatch.files import (
    DEFAULT_MAX_IMAGE_BYTES,
    UnsafeFile,
    check_confined,
    is_within,
    paths_for_uri,
    read_confined,
)
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
    """The file ``uri`` names (:func:`camwatch.files.paths_for_uri`), resolved, if it is a regular file
    inside one of ``roots``; else None. Reading it goes through :func:`read_original` (checked again)."""
    if not roots or not uri:
        return None
    for candidate in paths_for_uri(uri):
        if not candidate.is_absolute():
            return None
        for root in roots:
            try:
                real, _ = check_confined(candidate, root)
            except UnsafeFile as exc:
                if exc.reason != "file not found" and not exc.reason.startswith("resolves outside"):
                    log.warning("original %s not read: %s", uri, exc.reason)
                continue
            return Path(real)
    log.debug("original %s: not a regular file under the source roots", uri)
    return None


def read_original(uri: str, roots: Sequence[Path]) -> tuple[Path, bytes] | None:
    """The path and bytes of the original ``uri`` names, read confined to the root it lies in
    (:func:`camwatch.files.read_confined`); None when it is not available there."""
    path = confined_path(uri, roots)
    root = None if path is None else next((r for r in roots if is_within(path, r)), None)
    if path is None or root is None:
        return None
    return path, read_confined(path, root, max_bytes=DEFAULT_MAX_IMAGE_BYTES)


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
        try:
            if source == "thumbnail" and view.thumbnail:
                with PILImage.open(io.BytesIO(view.thumbnail), formats=["JPEG"]) as thumb:
                    return _fit(thumb.convert("RGB"), side), source
            if source == "original" and (original := read_original(view.uri, roots)) is not None:
                return _fit(load_image(original[0], data=original[1], draft_size=side).image, side), source
        except (ImageDecodeError, UnsafeFile) as exc:
            log.warning("image %d: %s picture not used: %s", view.image_id, source, exc)
        except Exception as exc:  # a picture that breaks the decoder: this picture falls back, not the page
            log.warning("image %d: %s picture not used (%s)", view.image_id, source, type(exc).__name__)
    return None


def render_overlay(view: ImageView, roots: Sequence[Path], *, side: int, prefer_original: bool) -> Picture:
    """The heatmap over the best available picture, boxes drawn; the heatmap alone when there is none or
    when drawing on it fails."""
    base = base_picture(view, roots, side, prefer_original)
    if base is not None:
        try:
            return _overlay_on(view, *base)
        except Exception:  # e.g. a stored heatmap or extent that cannot be drawn over this picture
            log.exception("image %d: overlay failed; showing the heatmap alone", view.image_id)
    return heatmap_only(view, side)


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


def _gallery_picture(view: ImageView, roots: Sequence[Path]) -> Picture | None:
    if view.native is None:
        base = base_picture(view, roots, GALLERY_SIDE, prefer_original=False)
        return None if base is None else Picture(_encode(base[0]), base[1], base[0].width, base[0].height)
    return render_overlay(view, roots, side=GALLERY_SIDE, prefer_original=False)


def gallery_pictures(engine: Engine, image_ids: Sequence[int], roots: Sequence[Path],
                     model_version_id: int | None = None) -> dict[int, Picture]:
    """Overlays (heatmaps of ``model_version_id``, default: each image's own version) for a gallery page
    (thumbnail first, then the original); images without any heatmap and picture, or whose picture cannot be
    drawn at all (logged), are left out."""
    pictures: dict[int, Picture] = {}
    for image_id, view in image_views(engine, list(image_ids), model_version_id).items():
        if view.native is None and not view.thumbnail:
            continue
        try:
            picture = _gallery_picture(view, roots)
        except Exception:  # one bad picture must not take the gallery down
            log.exception("image %d: its gallery picture cannot be drawn", image_id)
            continue
        if picture is not None:
            pictures[image_id] = picture
    return pictures


@dataclass(frozen=True)
class DetailPictures:
    """The Image page's three pictures (None when unavailable)."""

    picture: Picture | None  # the original (or thumbnail) alone
    overlay: Picture | None
    heatmap: Picture | None


def detail_pictures(engine: Engine, image_id: int, roots: Sequence[Path],
                    model_version_id: int | None = None) -> DetailPictures:
    views = image_views(engine, [image_id], model_version_id)
    view = views.get(image_id)
    if view is None:
        return DetailPictures(None, None, None)
    base = base_picture(view, roots, DETAIL_SIDE, prefer_original=True)
    picture = None if base is None else Picture(_encode(base[0]), base[1], base[0].width, base[0].height)
    if view.native is None:
        return DetailPictures(picture, None, None)
    try:
        alone = heatmap_only(view, DETAIL_SIDE)
    except Exception:  # a stored map that cannot be drawn: the page shows the rest
        log.exception("image %d: its heatmap cannot be drawn", image_id)
        return DetailPictures(picture, None, None)
    try:
        drawn = alone if base is None else _overlay_on(view, *base)
    except Exception:
        log.exception("image %d: overlay failed; showing the heatmap alone", image_id)
        drawn = alone
    return DetailPictures(picture, drawn, alone)


def stored_heatmap_pictures(engine: Engine, image_id: int, roots: Sequence[Path], side: int = GALLERY_SIDE,
                            model_version_id: int | None = None) -> list[tuple[ImageView, Picture]]:
    """An overlay per stored heatmap of the image and model version (primary first): each target class's
    map on the picture, or the map alone when no picture is available."""
    views = heatmap_views(engine, image_id, model_version_id)
    if not views:
        return []
    base = base_picture(views[0], roots, side, prefer_original=True)
    out: list[tuple[ImageView, Picture]] = []
    for view in views:
        if view.native is None:
            continue
        try:  # one map that cannot be drawn does not take the others (or the page) down
            out.append((view, heatmap_only(view, side) if base is None else _overlay_on(view, *base)))
        except Exception:
            log.exception("image %d: a stored heatmap (target %s) cannot be drawn", image_id, view.target_class)
    return out
