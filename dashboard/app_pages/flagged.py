"""Flagged: a paginated gallery of heatmap overlays of flagged images, most severe first."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from camwatch.conventions import REVIEW_STATUSES, review_status_label
from camwatch.monitoring.flags import FLAG_RULES
from dashboard.analysis import flagged_csv
from dashboard.figures import class_label, number
from dashboard.images import gallery_pictures
from dashboard.literal import md
from dashboard.state import config, engine, query
from dashboard.widgets import (
    ANY,
    class_picker,
    names,
    require_data,
    selected_version,
    slice_picker,
    time_filter,
    with_filters,
)
from db.queries_images import (
    GalleryFilter,
    flag_rules,
    flagged_page,
    flagged_total,
    flags_of,
)

PAGE_SIZE = 24
COLUMNS = 4
CSV_MAX_ROWS = 10_000

st.title("Flagged images")
require_data()
cfg = config()

c1, c2, c3, c4 = st.columns(4)
with c1:
    rule = st.selectbox("Rule", [ANY, *query(flag_rules)], key="flagged_rule",
                        help="; ".join(f"{k}: {r.description}" for k, r in FLAG_RULES.items()))
with c2:
    class_index = class_picker("Class", key="flagged_class")
with c3:
    review = st.selectbox("Review status", [ANY, *REVIEW_STATUSES], key="flagged_review",
                          format_func=review_status_label)
with c4:
    tag = slice_picker("flagged_slice")

g = GalleryFilter(images=with_filters(time_filter(), class_index=class_index, tag=tag),
                  rule=None if rule == ANY else rule, review=None if review == ANY else review)
left, right = st.columns([3, 1])
page_number = int(right.number_input("Page", min_value=1, value=1, step=1, key="flagged_page"))
rows = query(flagged_page, g, PAGE_SIZE, (page_number - 1) * PAGE_SIZE)
total = int(rows["total"].iloc[0]) if len(rows) else query(flagged_total, g) if page_number > 1 else 0
pages = max(1, math.ceil(total / PAGE_SIZE))
left.metric("Flagged images", f"{total:,}",
            help=f"matching the filters, sorted by severity (largest first); {pages} pages of {PAGE_SIZE}")
if total == 0:
    st.info("No flagged image matches these filters.")
    st.stop()
if len(rows) == 0:
    st.info(f"Page {page_number} is past the end: there are {pages} pages.")
    st.stop()
ids = rows["image_id"].tolist()
flags = query(flags_of, ids, selected_version())
pictures = query(gallery_pictures, ids, cfg.source_roots, selected_version())
class_names = names()
grid = st.columns(COLUMNS)
for i, row in enumerate(rows.itertuples()):
    with grid[i % COLUMNS].container(border=True):
        picture = pictures.get(row.image_id)
        if picture is not None:
            st.image(picture.data, caption=f"#{row.image_id} ({picture.source})", width="stretch")
        else:
            st.caption(f"#{row.image_id}: no heatmap or picture stored")
        severity = "–" if pd.isna(row.severity) else f"{row.severity:.2f}"
        st.markdown(f"**{md(class_label(class_names, int(row.class_index)))}** · {row.confidence:.0%}  \n"
                    f"{row.captured_at:%Y-%m-%d %H:%M} · severity {severity}"
                    + (f" · *{review_status_label(row.review)}*" if isinstance(row.review, str) else ""))
        mine = flags[flags["image_id"] == row.image_id]
        st.caption("  \n".join(f"{md(f.rule)} {number(f.value)} vs {number(f.threshold)}" for f in mine.itertuples()))
        st.page_link("app_pages/image.py", label="Open", icon=":material/open_in_new:",
                     query_params={"image": str(row.image_id)})

st.download_button(f"Download CSV (first {min(total, CSV_MAX_ROWS):,} rows)",
                   data=lambda: flagged_csv(engine(), g, class_names, CSV_MAX_ROWS),  # built on click only
                   file_name="camwatch-flagged.csv", mime="text/csv", icon=":material/download:")
