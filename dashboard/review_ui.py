"""Sections of the Review page: the image under review with its class's reference attention, what the
reviews say per rule (precision, suggested thresholds, accepting one), and the exports.

The reference picture is the class's mean normalised heatmap of the reference (``reference_heatmaps``; the
overall mean when the class has none) drawn over the same picture as the image's own heatmap, so "where
the model looks for this class" and "where it looked here" are side by side on the same pixels.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import streamlit as st
from sqlalchemy import Engine

from camwatch.conventions import ALL_CLASSES
from camwatch.exports import FORMATS, coco_document, table_bytes
from camwatch.imaging.render import overlay
from camwatch.monitoring.flags import FLAG_RULES
from camwatch.monitoring.review import apply_overrides
from camwatch.settings import Settings
from dashboard import figures_qa, roles
from dashboard.auth import actor
from dashboard.figures import class_label, number
from dashboard.images import FULL_EXTENT, base_picture
from dashboard.literal import md
from dashboard.review_stats import current_threshold, precision_table, suggestions
from dashboard.state import clear_cache, query
from db.audit import audit_events
from db.curated import curated_images
from db.exports import EXPORTS, ExportOptions, export_table
from db.queries import ImageFilter, class_names
from db.queries_images import ImageDetail, image_views
from db.reviews import (
    accept_threshold,
    flagged_per_rule,
    revert_threshold,
    reviewed_flags,
    threshold_overrides,
)

SIDE = 520
_ACCEPTED = "review_threshold_accepted"


def reference_picture(engine: Engine, image_id: int, roots: Sequence[Path], ref_map: np.ndarray) -> bytes | None:
    """JPEG of the class's reference mean heatmap over the image's picture (None without a picture)."""
    view = image_views(engine, [image_id]).get(image_id)
    base = None if view is None else base_picture(view, roots, SIDE, prefer_original=True)
    if view is None or base is None:
        return None
    size = (view.width, view.height) if view.width and view.height else base[0].size
    drawn = overlay(base[0], ref_map, view.extent or FULL_EXTENT, object_boxes=view.object_boxes, original_size=size)
    buffer = io.BytesIO()
    drawn.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def facts(detail: ImageDetail) -> None:
    """Prediction, label, flags and image properties of the image under review."""
    image, prediction, names = detail.image, detail.prediction, detail.class_names
    if prediction is None:
        st.markdown("**Model**: no prediction stored.")
    else:
        top = ", ".join(f"{md(class_label(names, int(i)))} {p:.0%}" for i, p in
                        zip(prediction["topk_indices"][1:4], prediction["topk_probs"][1:4], strict=False)
                        if p is not None)
        st.markdown(f"**Model predicted** {md(class_label(names, int(prediction['class_index'])))} "
                    f"({number(prediction['confidence'], '.0%')})" + (f"; then {top}" if top else ""))
    st.markdown(f"**Label**: {md(image['label']) if image['label'] else '— (none stored)'}  \n"
                f"**Captured** {image['captured_at']:%Y-%m-%d %H:%M} UTC"
                + "".join(f" · {md(k)}={md(v)}" for k, v in sorted(detail.tags.items())))
    for f in detail.flags.itertuples():
        why = FLAG_RULES[f.rule].description if f.rule in FLAG_RULES else "rule not registered in this version"
        st.markdown(f"- **{md(f.rule)}**: {why} — value {number(f.value, '.3g')} vs threshold "
                    f"{number(f.threshold, '.3g')}")
    props = {k: image.get(k) for k in ("brightness", "contrast", "sharpness", "colourfulness")}
    st.caption(" · ".join(f"{k} {number(v, '.3g')}" for k, v in props.items())
               + f" · {image.get('width')}×{image.get('height')} · camera {md(image.get('camera_model') or '(none)')}")


def reference_map(maps: dict[int, tuple[np.ndarray, int]], class_index: int | None) -> tuple[np.ndarray, int, str] | None:
    """The class's reference mean map (else the overall one): map, n, which."""
    if class_index is not None and class_index in maps:
        return maps[class_index][0], maps[class_index][1], "this class"
    if ALL_CLASSES in maps:
        return maps[ALL_CLASSES][0], maps[ALL_CLASSES][1], "all classes (too few of this class)"
    return None


def precision_section(engine: Engine, settings: Settings, f: ImageFilter, tag_keys: Sequence[str]) -> None:
    """Per rule: counts per verdict, precision [95 % Wilson], the threshold in force and the suggested one;
    admins accept a suggestion (recorded in the audit trail); per slice on request."""
    st.subheader("What the reviews say")
    overrides = query(threshold_overrides)
    config = apply_overrides(settings.flags, {o.setting: o.value for o in overrides.values()})
    reviewed = query(reviewed_flags, f)
    table = precision_table(reviewed, query(flagged_per_rule, f))
    if len(table) == 0:
        st.caption("No flagged image in the selected range.")
        return
    found = suggestions(reviewed, config, settings.review)
    table["threshold"] = [current_threshold(r, config) for r in table["rule"]]
    table["suggested"] = [found[r].threshold if r in found else None for r in table["rule"]]
    table["precision at suggested"] = [p.value if r in found and (p := found[r].precision) is not None else None
                                       for r in table["rule"]]
    if table["precision"].notna().any():
        st.plotly_chart(figures_qa.precision_chart(table), key="review_precision")
    else:
        st.caption("No verdict that counts yet (correct flag or false alarm): the precision of each rule appears "
                   "here as reviews come in.")
    st.dataframe(table.drop(columns=["slice"]), hide_index=True, width="stretch", column_config={
        "precision": st.column_config.NumberColumn(format="percent"),
        "low": st.column_config.NumberColumn("95 % CI low", format="percent"),
        "high": st.column_config.NumberColumn("95 % CI high", format="percent"),
        "precision at suggested": st.column_config.NumberColumn(format="percent")})
    st.caption(f"Precision = confirmed / (confirmed + false alarms) of each image's latest verdict, with the 95 % "
               f"Wilson score interval; wrong label and unsure are not counted. Suggested: the least strict "
               f"threshold whose precision on the reviewed flags reaches {settings.review.target_precision:.0%} "
               f"(from {settings.review.min_reviews} counted reviews on; reviews cannot judge a looser one).")
    admin = roles.is_admin(settings)
    if st.session_state.get(_ACCEPTED):
        st.success(st.session_state.pop(_ACCEPTED))
    for rule, suggestion in found.items():
        previous = overrides.get(rule)
        line = f"**{md(rule)}**: {md(suggestion.reason)}"
        if suggestion.changes and suggestion.threshold is not None:
            line += f" → **{suggestion.threshold:g}** (now {suggestion.current:g})"
        st.markdown(line)
        new, evidence = suggestion.threshold, suggestion.precision
        if admin and suggestion.changes and new is not None and evidence is not None and st.button(
                f"Accept {new:g} for {rule}", key=f"accept_{rule}", icon=":material/check:"):
            who, client = actor(settings)
            accept_threshold(engine, rule=rule, value=new, previous=suggestion.current, actor=who, client=client,
                             evidence={"confirmed": evidence.tp, "false_alarms": evidence.fp,
                                       "precision": evidence.value, "reason": suggestion.reason})
            clear_cache()
            st.session_state[_ACCEPTED] = (f"{rule}: threshold {new:g} accepted; the worker applies it to new "
                                           "images within a minute.")
            st.rerun()
        if admin and previous is not None and st.button(
                f"Revert {rule} to the settings' value", key=f"revert_{rule}", icon=":material/undo:"):
            who, client = actor(settings)
            revert_threshold(engine, rule=rule, actor=who, client=client,
                             restored=getattr(settings.flags, previous.setting))
            clear_cache()
            st.rerun()
    if not admin:
        st.caption("Accepting a suggested threshold needs an admin.")
        roles.admin_unlock(settings)
    by = st.selectbox("Per slice of", ["(none)", *tag_keys], key="review_precision_tag")
    if by != "(none)":
        per_slice = precision_table(query(reviewed_flags, f, by), {}, by_slice=True)
        st.dataframe(per_slice.drop(columns=["flagged"]), hide_index=True, width="stretch", column_config={
            "precision": st.column_config.NumberColumn(format="percent"),
            "low": st.column_config.NumberColumn("95 % CI low", format="percent"),
            "high": st.column_config.NumberColumn("95 % CI high", format="percent")})
    events = query(audit_events, 20, "threshold.")
    if len(events):
        with st.expander(f"Audit trail: {len(events)} threshold changes"):
            st.dataframe(events.assign(detail=[json.dumps(d) for d in events["detail"]]), hide_index=True,
                         width="stretch")


def exports_section(engine: Engine, f: ImageFilter) -> None:
    """Downloads: any export table in any format, and the curated set as COCO (built on click only)."""
    st.subheader("Exports")
    c1, c2 = st.columns(2)
    what = c1.selectbox("Table", [k for k in EXPORTS if k != "images"], key="export_what",
                        format_func=lambda k: f"{k}: {EXPORTS[k].description}")
    fmt = c2.selectbox("Format", list(FORMATS), key="export_format")
    options = ExportOptions(start=f.start, end=f.end)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")

    def build() -> bytes:
        table = export_table(what)
        return table_bytes(fmt, table.columns_for(options), table.rows(engine, options))

    st.download_button(f"Download {what} ({fmt})", data=build, file_name=f"camwatch-{what}-{stamp}.{fmt}",
                       icon=":material/download:", key="export_download")

    def coco() -> bytes:
        doc = coco_document(list(curated_images(engine, f)), class_names(engine),
                            "camwatch curated set: images whose attention a reviewer confirmed as wrong")
        return json.dumps(doc, indent=1, default=str).encode("utf-8")

    st.download_button("Download the curated set (COCO with boxes)", data=coco,
                       file_name=f"camwatch-curated-{stamp}.coco.json", icon=":material/dataset:", key="export_coco")
    st.caption("The curated set: images whose latest verdict is *correct flag* (the model looked at the wrong "
               "region), with their object boxes, the CAM box and the label (the reviewed one when corrected), "
               "for retraining. Time range of the sidebar applies (drift: window start).")

