"""The Image page's "another CAM method" section: a heatmap computed live for one image.

The process's runtime settings are applied (:func:`worker.runtime.configure_runtime`), then the CAM engine is
built with :func:`worker.cam.factory.build_engine` from the dashboard's settings with ``method``
replaced, and kept in ``st.cache_resource`` (one per method and model configuration): loading the model
takes seconds, explaining one image a fraction of that. It explains the *stored* predicted class, so the
maps of the two methods answer the same question; their agreement is the Pearson r of the normalised maps
(:func:`camwatch.monitoring.heatmaps.correlation_on_grid`, the live map resampled to the stored grid). Only possible
when the original file is readable under a source root (:func:`dashboard.images.confined_path`). The
result is shown, not stored.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from camwatch.imaging.decode import load_image
from camwatch.imaging.render import overlay
from camwatch.methods import CAM_METHODS
from camwatch.monitoring.heatmaps import correlation_on_grid
from camwatch.settings import Settings
from dashboard.images import DETAIL_SIDE, confined_path, read_original
from dashboard.literal import md
from dashboard.state import AppConfig, query
from db.queries_images import ImageDetail, image_views

log = logging.getLogger(__name__)



@st.cache_resource(show_spinner="Loading the model for this method (once)...", max_entries=4)
def cam_engine(settings_key: str, method: str, _settings: Settings) -> Any:
    """The CAM engine of ``_settings`` with ``method`` (cached per settings JSON and method). The process's
    runtime settings (allocator, threads: :mod:`worker.runtime`) are applied first, before torch is imported."""
    from worker.runtime import configure_runtime

    configure_runtime(_settings.runtime)
    from worker.cam.factory import build_engine  # torch is imported only when a live heatmap is asked for

    return build_engine(_settings.model_copy(update={"method": method}))


@dataclass(frozen=True)
class LiveHeatmap:
    method: str
    overlay_jpeg: bytes
    native: np.ndarray
    correlation: float | None  # with the stored primary heatmap


def explain_live(path: Path, method: str, target_class: int | None, stored: np.ndarray | None,
                 detail: ImageDetail, settings: Settings, roots: Sequence[Path]) -> LiveHeatmap:
    """Explain the file at ``path`` (read again confined to ``roots``) with ``method``."""
    engine = cam_engine(settings.model_dump_json(), method, settings)
    original = read_original(str(path), roots)
    if original is None:
        raise FileNotFoundError(f"{path} is no longer readable under the source roots")
    decoded = load_image(original[0], data=original[1], draft_size=max(engine.loaded.preprocessing.size))
    (result,) = engine.explain([decoded.image], targets=[target_class],
                               original_sizes=[(decoded.width, decoded.height)])
    boxes = (detail.image.get("region") or {}).get("boxes", [])
    picture = decoded.image.copy()
    picture.thumbnail((DETAIL_SIDE, DETAIL_SIDE))
    drawn = overlay(picture, result.heatmap, result.extent, object_boxes=boxes,
                    original_size=(decoded.width, decoded.height))
    buffer = io.BytesIO()
    drawn.save(buffer, format="JPEG", quality=88)
    r = None
    if stored is not None and float(stored.sum()) > 0 and float(result.heatmap.sum()) > 0:
        r = correlation_on_grid(stored, result.heatmap)
    return LiveHeatmap(method, buffer.getvalue(), result.heatmap, r)


def live_section(detail: ImageDetail, cfg: AppConfig) -> None:
    """Draw the section; the model is loaded only when the button is pressed."""
    st.subheader("Another CAM method")
    path = confined_path(detail.image["uri"], cfg.source_roots)
    if path is None:
        st.caption("Needs the original file, readable under a source root (`--source-root`); it is not.")
        return
    stored_method = detail.heatmap["method"] if detail.heatmap else None
    choices = [m for m in CAM_METHODS if m != stored_method]
    method = st.selectbox("Method", choices, key="live_method",
                          help="Score-CAM runs one forward pass per channel: slow on a CPU.")
    if not st.button("Compute heatmap", icon=":material/play_arrow:"):
        return
    target = detail.prediction["class_index"] if detail.prediction else None
    version = detail.prediction["model_version_id"] if detail.prediction else None
    view = query(image_views, [int(detail.image["id"])], version).get(int(detail.image["id"]))
    stored = None if view is None else view.native
    live = explain_live(path, method, target, stored, detail, cfg.settings, cfg.source_roots)
    st.image(live.overlay_jpeg, caption=f"{method} (computed now, not stored)", width=DETAIL_SIDE // 2)
    if live.correlation is not None:
        st.caption(f"Agreement with the stored {md(stored_method)} heatmap: r = {live.correlation:.3f}")
