"""Image: one image's pictures, predictions, statistics, image properties, flags, warnings, reviews, its audit
trail, and actions on it (each recorded with who made it).

The image is chosen with the query parameter ``?image=<id>`` (links from the gallery; validated) or the id
box; without either, the page opens on the newest flagged image of the selected time range. Every text that
comes from a file or the database is shown literally (:mod:`dashboard.literal`)."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from camwatch.conventions import AUDIT_ACTIONS, VERDICTS, WRONG_LABEL
from camwatch.monitoring.flags import FLAG_RULES
from camwatch.statistics.registry import IMAGE_KEYS, STATISTICS
from dashboard.auth import actor, user_name
from dashboard.figures import class_label, number
from dashboard.images import detail_pictures, stored_heatmap_pictures
from dashboard.literal import md
from dashboard.live import live_section
from dashboard.params import MAX_ID, id_param
from dashboard.state import clear_cache, config, engine, query
from dashboard.widgets import require_data, selected_version, time_filter
from db.audit import add_to_reference, audit_trail
from db.queries import current_reference
from db.queries_images import image_detail, statistics_of
from db.reviews import newest_flagged_image, record_verdict

st.title("Image")
require_data()
cfg = config()

requested = st.query_params.get("image", "")
initial = id_param("image")
opened_newest = False
if initial is None and "image_id" not in st.session_state:
    initial = query(newest_flagged_image, time_filter())
    opened_newest = initial is not None
image_id = st.number_input("Image id", min_value=1, max_value=MAX_ID, value=initial, step=1, key="image_id",
                           placeholder="an id from the Flagged gallery")
if image_id is None:
    st.info("No flagged image in the selected time range: pick one in the **Flagged** gallery, or type an id.")
    st.stop()
if opened_newest:
    st.caption("The newest flagged image of the selected time range; type another id, or open one from the "
               "**Flagged** gallery or the **Review** queue.")
image_id = int(image_id)
if str(image_id) != requested:
    st.query_params["image"] = str(image_id)
detail = query(image_detail, image_id, selected_version())
if detail is None:
    st.error(f"There is no image with id {image_id}.")
    st.stop()

image, prediction, heatmap = detail.image, detail.prediction, detail.heatmap
st.caption(f"{md(image['uri'])} · captured {image['captured_at']:%Y-%m-%d %H:%M:%S} UTC · status "
           f"**{md(image['status'])}**" + (f" · {image['width']}×{image['height']}" if image["width"] else "")
           + "".join(f" · {md(k)}\\={md(v)}" for k, v in sorted(detail.tags.items())))
if image["error"]:
    st.error(md(image["error"]))
for warning in image.get("warnings") or []:
    st.warning(md(warning), icon=":material/info:")

pictures = query(detail_pictures, image_id, cfg.source_roots, selected_version())
c1, c2, c3 = st.columns(3)
for column, title, picture in ((c1, "Picture", pictures.picture), (c2, "Overlay", pictures.overlay),
                               (c3, "Heatmap", pictures.heatmap)):
    with column:
        st.markdown(f"**{title}**")
        if picture is not None:
            st.image(picture.data, caption=picture.source, width="stretch")
        else:
            st.caption("not available" + (" (no original under the source roots, no thumbnail stored)"
                                          if title == "Picture" else " (no heatmap)"))

if detail.other_heatmaps:  # every stored map: e.g. the predicted class's and the known label's
    st.subheader("Stored heatmaps")
    st.caption("One heatmap per explained class. The primary one (the predicted class, or the label with "
               "`--target label`) drives the statistics, flags and drift; the others are kept for comparison.")
    stored = query(stored_heatmap_pictures, image_id, cfg.source_roots, model_version_id=selected_version())
    by_class = {h["target_class"]: h for h in [detail.heatmap, *detail.other_heatmaps] if h is not None}
    for column, (view, picture) in zip(st.columns(max(1, len(stored))), stored, strict=False):
        with column:
            row = by_class.get(view.target_class, {})
            role = "primary" if view.is_primary else "also stored"
            st.image(picture.data, width="stretch", caption=f"{view.method} for class "
                     f"{class_label(detail.class_names, int(view.target_class or 0))} ({role})")
            st.caption(f"energy outside {number(row.get('energy_outside'), '.3f')} · centroid "
                       f"({number(row.get('centroid_x'), '.2f')}, {number(row.get('centroid_y'), '.2f')})")

left, right = st.columns(2)
with left:
    st.subheader("Predictions")
    if prediction is None:
        st.caption("No prediction stored.")
    else:
        st.dataframe(pd.DataFrame({
            "class": [class_label(detail.class_names, int(i)) for i in prediction["topk_indices"]],
            "probability": prediction["topk_probs"], "logit": prediction["topk_logits"]}),
            hide_index=True, width="stretch")
        if image["label"] is not None:
            st.caption(f"Label: **{md(image['label'])}**; top-1 {'correct' if prediction['correct'] else 'wrong'}.")
        if image.get("deployed_class_index") is not None:  # a queue event carried the deployed model's output
            deployed = int(image["deployed_class_index"])
            score = "" if image["deployed_score"] is None else f" ({image['deployed_score']:.2f})"
            verdict = "agrees" if deployed == int(prediction["class_index"]) else "**disagrees**"
            st.caption(f"Deployed model: **{md(class_label(detail.class_names, deployed))}**{score}; the monitor's "
                       f"top-1 {verdict}.")
with right:
    st.subheader("Flags")
    if len(detail.flags) == 0:
        st.caption("Not flagged.")
    for f in detail.flags.itertuples():
        why = FLAG_RULES[f.rule].description if f.rule in FLAG_RULES else "rule not registered in this version"
        st.markdown(f"- **{md(f.rule)}**: {why}; value {number(f.value, '.4g')} vs threshold "
                    f"{number(f.threshold, '.4g')} (severity {number(f.severity, '.2f')})")

st.subheader("Statistics")
if heatmap is not None:
    st.caption(f"{md(heatmap['method'])} on {md(heatmap['target_layer'])} for class "
               f"{md(class_label(detail.class_names, heatmap['target_class']))}, native grid "
               f"{heatmap['grid_h']}×{heatmap['grid_w']}, state **{heatmap['state']}**. Hover a value for its "
               "definition.")
values = statistics_of(heatmap, prediction)
metric_columns = st.columns(6)
for i, (name, value) in enumerate(values.items()):
    d = STATISTICS.get(name)
    metric_columns[i % 6].metric(d.label if d else name, "–" if value is None else f"{value:.4g}",
                                 help=f"`{d.formula}` ({d.unit}, range {d.value_range}). {d.description}" if d else None)
st.markdown("**The image itself**")
property_columns = st.columns(6)
for i, name in enumerate(IMAGE_KEYS):
    d = STATISTICS[name]
    value = image.get(name)
    property_columns[i % 6].metric(d.label, "–" if value is None else f"{value:.4g}",
                                   help=f"`{d.formula}` ({d.unit}, range {d.value_range}). {d.description}")
st.caption(f"Camera model (EXIF): **{md(image.get('camera_model') or '(none)')}**")

live_section(detail, cfg)

st.subheader("Review")
known_classes = detail.class_names
with st.form("review", clear_on_submit=True):
    verdict = st.radio("Verdict", list(VERDICTS), format_func=lambda v: VERDICTS[v].label, horizontal=True)
    note = st.text_area("Note", placeholder="what is wrong with the attention, or why it is fine")
    right_label = st.selectbox("Right label (for Wrong label)", list(range(len(known_classes))), index=None,
                               format_func=lambda i: class_label(known_classes, i),
                               placeholder="the image's real class")
    reviewer = st.text_input("Reviewer", value=user_name(cfg.settings))
    if st.form_submit_button("Save review", type="primary"):
        if verdict == WRONG_LABEL and right_label is None:
            st.error("A wrong-label verdict needs the right label.")
        else:
            label = known_classes[right_label] if verdict == WRONG_LABEL and right_label is not None else None
            who, client = actor(cfg.settings)
            review_id = record_verdict(engine(), image_id=image_id, verdict=verdict, reviewer=reviewer.strip() or None,
                                       actor=who, client=client, note=note.strip() or None, label=label,
                                       label_index=right_label if label is not None else None)
            clear_cache()
            st.success(f"Review {review_id} saved.")
            detail = query(image_detail, image_id, selected_version())
if detail is not None and len(detail.reviews):
    st.dataframe(detail.reviews.assign(verdict=detail.reviews["verdict"].map(lambda v: VERDICTS[v].label if v in VERDICTS else v)), hide_index=True,
                 width="stretch")
else:
    st.caption("No review yet.")

reference = query(current_reference, selected_version())
if reference is not None:
    member = reference.id in (detail.reference_ids if detail else [])
    if member:
        st.caption(f"This image is a member of the reference **{md(reference.name)}**.")
    elif st.button(f"Add to reference “{md(reference.name)}”", icon=":material/playlist_add:"):
        who, client = actor(cfg.settings)
        added = add_to_reference(engine(), reference.id, image_id, actor=who, client=client)
        clear_cache()
        st.success("Added as a reference member. The worker rebuilds the reference statistics at its next "
                   "drift pass (or `python -m worker drift`), since the member count changed; until then drift "
                   "uses the previous statistics." if added else "Already a member.")

st.subheader("Audit trail")
trail = query(audit_trail, image_id)
if len(trail):
    st.dataframe(trail.assign(action=trail["action"].map(lambda a: AUDIT_ACTIONS.get(a, a)),
                              details=trail["details"].map(lambda d: "" if d is None else json.dumps(d))),
                 hide_index=True, width="stretch")
else:
    st.caption("No change recorded for this image.")
