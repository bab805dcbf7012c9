"""Review: the queue of unreviewed flagged images, one at a time, with verdict buttons and keyboard
shortcuts (1 correct flag, 2 false alarm, 3 wrong label, 4 unsure, S skip); then what the reviews say per
rule and the exports.

Each browser session holds the image it shows (a short claim, renewed while the page is open, see
:mod:`db.reviews`), so several reviewers working at once never get the same image. The queue follows the
sidebar's time range and the filters here (rule, one slice) and serves the most severe (or the newest)
unreviewed flagged image first.
"""

from __future__ import annotations

import datetime as dt

import streamlit as st

from camwatch.conventions import VERDICTS, WRONG_LABEL
from dashboard import roles
from dashboard.auth import actor
from dashboard.figures import class_label
from dashboard.images import detail_pictures
from dashboard.literal import md
from dashboard.review_ui import exports_section, facts, precision_section, reference_map, reference_picture
from dashboard.state import clear_cache, config, engine, query
from dashboard.widgets import (
    ANY,
    require_data,
    selected_range,
    selected_version,
    slice_picker,
    time_filter,
    with_filters,
)
from db.queries import current_reference, reference_heatmaps
from db.queries_images import flag_rules, image_detail
from db.queries_slices import tag_keys
from db.reviews import QUEUE_ORDERS, Claimed, QueueFilter, claim_next, record_verdict, release_claims

CURRENT, SKIPPED, DONE, LAST, ERROR, NOTE, LABEL, FILTER, PAUSED = (
    "review_current", "review_skipped", "review_done", "review_last", "review_error", "review_note",
    "review_label", "review_filter", "review_paused")
RENEW_SECONDS = 30


def _reset_form() -> None:
    st.session_state[NOTE] = ""
    st.session_state[LABEL] = None


def _on_verdict(verdict: str, reviewer: str, names: list[str]) -> None:
    """Button callback (runs before the rerun): store the verdict, release the image, ask for the next."""
    image_id = st.session_state.get(CURRENT)
    if image_id is None:
        return
    label_index = st.session_state.get(LABEL)
    if verdict == WRONG_LABEL and label_index is None:
        st.session_state[ERROR] = "Choose the right label first (the box under the buttons), then press Wrong label."
        return
    label = names[label_index] if verdict == WRONG_LABEL and label_index is not None else None
    who, client = actor(config().settings)  # the audit trail names the login, not the typed reviewer name
    record_verdict(engine(), image_id=int(image_id), verdict=verdict, reviewer=reviewer, actor=who, client=client,
                   note=(st.session_state.get(NOTE) or "").strip() or None, holder=roles.holder(),
                   label=label, label_index=label_index if label is not None else None)
    st.session_state[DONE] = st.session_state.get(DONE, 0) + 1
    st.session_state[LAST] = f"#{image_id}: {VERDICTS[verdict].label}" + (f" ({label})" if label else "")
    st.session_state[CURRENT] = None
    st.session_state.pop(ERROR, None)
    _reset_form()
    clear_cache()


def _on_skip() -> None:
    image_id = st.session_state.get(CURRENT)
    if image_id is not None:
        st.session_state[SKIPPED] = [*st.session_state.get(SKIPPED, []), int(image_id)][-500:]
        st.session_state[LAST] = f"#{image_id}: skipped"
    st.session_state[CURRENT] = None
    st.session_state.pop(ERROR, None)
    _reset_form()


st.title("Review")
require_data()
cfg = config()
settings = cfg.settings
c1, c2, c3, c4 = st.columns([2, 2, 2, 3])
with c1:
    reviewer = roles.reviewer_widget(settings)
with c2:
    rule = st.selectbox("Rule", [ANY, *query(flag_rules)], key="review_rule")
with c3:
    order = st.selectbox("Order", list(QUEUE_ORDERS), format_func=QUEUE_ORDERS.__getitem__, key="review_order")
with c4:
    tag = slice_picker("review_slice")
f = with_filters(time_filter(), class_index=None, tag=tag)
queue = QueueFilter(images=f, rule=None if rule == ANY else rule, order=order)
chosen = (rule, order, tag, selected_range())  # not the range's end: it moves as images arrive
if st.session_state.get(FILTER) != chosen:  # the reviewer chose another queue: hand the current image back
    st.session_state[FILTER] = chosen
    st.session_state[CURRENT] = None
if st.session_state.get(PAUSED):
    st.info("You are not reviewing: no image is held for you.")
    if st.button("Resume reviewing", key="review_resume", type="primary"):
        st.session_state[PAUSED] = False
        st.rerun()
    claimed = Claimed(None, 0)
else:
    claimed = claim_next(engine(), holder=roles.holder(), reviewer=reviewer, queue=queue,
                         ttl_seconds=settings.review.claim_seconds, current=st.session_state.get(CURRENT),
                         skip=st.session_state.get(SKIPPED, []))
st.session_state[CURRENT] = claimed.image_id
done = st.session_state.get(DONE, 0)
status = f"**{claimed.waiting:,}** unreviewed flagged images in this queue · {done} reviewed in this session"
if st.session_state.get(LAST):
    status += f" · last: {md(st.session_state[LAST])}"
st.markdown(status)
if st.session_state.get(ERROR):
    st.error(st.session_state[ERROR])


@st.fragment(run_every=dt.timedelta(seconds=RENEW_SECONDS))
def keep_claim() -> None:
    """While the page is open, renew the hold on the image shown (claims last ``review.claim_seconds``)."""
    current = st.session_state.get(CURRENT)
    if current is not None:
        claim_next(engine(), holder=roles.holder(), reviewer=reviewer, queue=queue,
                   ttl_seconds=settings.review.claim_seconds, current=current, skip=st.session_state.get(SKIPPED, []))


if claimed.image_id is None and st.session_state.get(PAUSED):
    pass
elif claimed.image_id is None:
    st.success("Nothing left to review in this queue: every flagged image is reviewed or held by another reviewer.")
    if st.session_state.get(SKIPPED) and st.button("Bring back the skipped images"):
        st.session_state[SKIPPED] = []
        st.rerun()
else:
    keep_claim()
    image_id = int(claimed.image_id)
    detail = query(image_detail, image_id, selected_version())
    assert detail is not None  # a claimed image exists
    class_names = detail.class_names
    predicted = detail.prediction["class_index"] if detail.prediction else None
    left, middle, right = st.columns([5, 5, 4])
    pictures = query(detail_pictures, image_id, cfg.source_roots, selected_version())
    with left:
        st.markdown(f"**#{image_id}: where the model looked**")
        if pictures.overlay is not None:
            st.image(pictures.overlay.data, caption=f"heatmap over the {pictures.overlay.source}; green: object box, "
                                                    "white: CAM box", width="stretch")
        else:
            st.caption("No heatmap or picture stored for this image.")
    with middle:
        reference = query(current_reference, selected_version())
        found = reference_map(query(reference_heatmaps, reference.id), predicted) if reference else None
        if found is None:
            st.caption("No reference yet: nothing to compare with.")
        else:
            ref_map, n, which = found
            name = class_label(class_names, predicted) if predicted is not None else "?"
            st.markdown(f"**Where it usually looks for {md(name)}**")
            jpeg = reference_picture(engine(), image_id, cfg.source_roots, ref_map)
            if jpeg is not None:
                st.image(jpeg, caption=f"reference mean heatmap of {which} (n = {n}) over the same picture",
                         width="stretch")
    with right:
        facts(detail)
    buttons = st.columns(len(VERDICTS) + 1)
    for column, verdict in zip(buttons, VERDICTS.values(), strict=False):
        column.button(verdict.label, key=f"verdict_{verdict.key}", shortcut=verdict.shortcut, width="stretch",
                      type="primary" if verdict.counts_as else "secondary",
                      on_click=_on_verdict, args=(verdict.key, reviewer, class_names))
    buttons[-1].button("Skip", key="verdict_skip", shortcut="S", width="stretch", on_click=_on_skip)
    n1, n2 = st.columns([3, 2])
    n1.text_input("Note (optional)", key=NOTE, placeholder="what the model looked at instead, or why it is fine")
    n2.selectbox("Right label (for Wrong label)", list(range(len(class_names))), index=None, key=LABEL,
                 format_func=lambda i: class_label(class_names, i), placeholder="choose the image's real class")
    st.caption("Keys: 1 correct flag (the model looked at the wrong region) · 2 false alarm · 3 wrong label · "
               "4 unsure · S skip. Your hold on this image is renewed while the page is open and released by a "
               "verdict or a skip; others never get it meanwhile.")
    if st.button("Stop reviewing (release this image)", key="review_release"):
        release_claims(engine(), roles.holder())
        st.session_state[CURRENT] = None
        st.session_state[PAUSED] = True
        st.rerun()

st.divider()
precision_section(engine(), settings, f, query(tag_keys))
st.divider()
exports_section(engine(), f)
