"""Widgets and helpers shared by the pages: the time range, class and slice pickers, the empty-database
notice and small formatting helpers.

Time ranges are anchored at the latest capture time in the database (not the wall clock), so that a
database filled in the past still shows its last day; the sidebar says which moment that is. The default
range shows all the data when it spans less than :data:`WHOLE_DATA_UP_TO` (30 days), else the last 30 days
(:func:`default_range`), so a before/after in the data is on screen without touching the picker.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import streamlit as st

from dashboard.figures import class_label
from dashboard.literal import md
from dashboard.params import choice_param, invalid_note, parse_id
from dashboard.state import config, query
from db.queries import ImageFilter, capture_range, class_names, sample_rate, status_counts
from db.queries_slices import tag_keys, tag_values
from db.versions import default_version, versions_with_results

TIME_RANGES: dict[str, dt.timedelta | None] = {
    "Last 24 hours": dt.timedelta(days=1),
    "Last 7 days": dt.timedelta(days=7),
    "Last 30 days": dt.timedelta(days=30),
    "All time": None,
}
ALL_TIME = "All time"
WHOLE_DATA_UP_TO = dt.timedelta(days=30)
HOURLY_UP_TO = dt.timedelta(days=3)  # ranges up to this long are bucketed by hour, longer ones by day
_RANGE_KEY = "camwatch_time_range"
_VERSION_KEY = "camwatch_model_version"
_VERSION_URL_KEY = "camwatch_model_version_url"  # the ?version= this session wrote last
#: Time series over more images than this use a hash sample of about this many (db.queries.hash_sample).
#: 30k keeps "All time" over a million images under 1 s (measured 0.74–0.94 s per page, 1.13 s at 120k)
#: while a daily bucket of a month still averages ~1000 images (standard error ≈ 3% of the spread).
SERIES_ROWS = 30_000
ANY = "(any)"


def default_range(bounds: tuple[dt.datetime, dt.datetime] | None) -> str:
    """All the data when it spans less than :data:`WHOLE_DATA_UP_TO`, else the last 30 days."""
    return ALL_TIME if bounds is None or bounds[1] - bounds[0] < WHOLE_DATA_UP_TO else "Last 30 days"


def time_range_selector() -> None:
    """The sidebar's time range (kept across pages in the session; the default follows the data)."""
    if _RANGE_KEY not in st.session_state:
        st.session_state[_RANGE_KEY] = default_range(query(capture_range))
    st.sidebar.selectbox("Time range (capture time)", list(TIME_RANGES), key=_RANGE_KEY)


def version_selector() -> None:
    """The sidebar's model version (results of that version on every page; default: the newest primary
    version, :func:`db.versions.default_version`), kept in the session and in the link as ``?version=N``."""
    versions = query(versions_with_results)
    if not versions:
        st.session_state[_VERSION_KEY] = None
        return
    ids = [v.id for v in versions]
    raw = st.query_params.get("version")
    if raw and raw != st.session_state.get(_VERSION_URL_KEY):  # a link's version, not the one written here
        preset = parse_id(raw)
        if preset in ids:
            st.session_state[_VERSION_KEY] = preset
        else:
            invalid_note("version", raw, "a model version with results here")
    if st.session_state.get(_VERSION_KEY) not in ids:
        st.session_state[_VERSION_KEY] = default_version(versions)
    labels = {v.id: f"{v.label} ({v.images:,} images)" for v in versions}
    chosen = st.sidebar.selectbox("Model version", ids, key=_VERSION_KEY, format_func=lambda i: labels[i],
                                  help="Whose results the pages show: predictions, heatmaps, flags, reference "
                                       "and drift are kept per model version")
    st.session_state[_VERSION_URL_KEY] = str(chosen)
    st.query_params["version"] = str(chosen)


def selected_version() -> int | None:
    """The sidebar's model version (None before the sidebar ran or without any results)."""
    value = st.session_state.get(_VERSION_KEY)
    return None if value is None else int(value)


def time_filter() -> ImageFilter:
    """Capture-time window of the selected range, ending just after the latest capture. "All time" is the
    explicit range from the first to the last capture: the same images, but a range on the capture-time
    index lets the database start there (and sample by id) instead of scanning a whole table."""
    bounds = query(capture_range)
    if bounds is None:
        return ImageFilter(model_version_id=selected_version())
    delta = TIME_RANGES[st.session_state.get(_RANGE_KEY) or default_range(bounds)]
    end = bounds[1] + dt.timedelta(microseconds=1)
    return ImageFilter(start=bounds[0] if delta is None else end - delta, end=end,
                       model_version_id=selected_version())


def selected_range() -> str | None:
    """The name of the sidebar's time range (None before the sidebar ran)."""
    value = st.session_state.get(_RANGE_KEY)
    return None if value is None else str(value)


def x_range(f: ImageFilter) -> tuple[dt.datetime, dt.datetime] | None:
    """The time axis of charts over ``f``: its range, widened to whole hours (ranges up to
    :data:`HOURLY_UP_TO`) or days, so the first and last buckets are drawn whole."""
    if f.start is None or f.end is None:
        return None
    unit = dt.timedelta(hours=1) if bucket_unit(f) == "hour" else dt.timedelta(days=1)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    start = epoch + ((f.start - epoch) // unit) * unit
    end = epoch + -((epoch - f.end) // unit) * unit
    return start, max(end, start + unit)


def bucket_unit(f: ImageFilter) -> str:
    """'hour' for short ranges, 'day' otherwise."""
    return "hour" if f.start is not None and f.end is not None and f.end - f.start <= HOURLY_UP_TO else "day"


def series_rate(f: ImageFilter) -> int:
    """Per-mille sample rate for the time series of ``f``'s time range (1000: every image)."""
    return sample_rate(query(status_counts, ImageFilter(start=f.start, end=f.end))["ok"], SERIES_ROWS)


def sample_note(per_mille: int) -> str:
    return "" if per_mille >= 1000 else f" Means over a {per_mille / 10:g} % hash sample of the images."


def require_data() -> tuple[dt.datetime, dt.datetime]:
    """The capture range, or the empty-database notice and a stop."""
    bounds = query(capture_range)
    if bounds is None:
        empty_notice()
        st.stop()
    return bounds


def empty_notice() -> None:
    settings = config().settings
    st.info(
        "**No images in the database yet.** Start a worker on a folder of images, for example\n\n"
        f"```\npython -m worker run --db {settings.db} --source /path/to/images\n```\n\n"
        "This page refreshes its data every "
        f"{settings.dashboard.cache_ttl_seconds} s; press **Refresh** in the sidebar to look again now.",
        icon=":material/hourglass_empty:")


def names() -> list[str]:
    """Class names of the selected model version (else the newest)."""
    return query(class_names, selected_version())


def class_picker(label: str, key: str, *, allow_all: bool = True) -> int | None:
    """A predicted-class selectbox; None means every class."""
    class_list = names()
    options: list[int | None] = ([None] if allow_all else []) + list(range(len(class_list)))
    return st.selectbox(label, options, key=key,
                        format_func=lambda c: "All classes" if c is None else class_label(class_list, c))


def param_index(name: str, options: Sequence[str], default: int = 0) -> int:
    """Index of the URL query parameter ``name`` among ``options`` (a shareable link such as
    ``/drift?statistic=energy_outside&slice=camera:cam-2``); ``default`` when absent, and a friendly note
    when it is not an option (:func:`dashboard.params.choice_param`)."""
    return choice_param(name, options, default)


def slice_picker(key: str) -> tuple[str | None, str | None]:
    """Tag key and value selectboxes; ``(None, None)`` for no slice. Preset by ``?slice=key:value``."""
    keys = query(tag_keys)
    preset = st.query_params.get("slice") or ""
    preset_key, _, preset_value = preset.partition(":")
    options = [ANY, *keys]
    tag_key = st.selectbox("Slice: tag", options, index=options.index(preset_key) if preset_key in options else 0,
                           key=f"{key}_tag")
    values = [ANY, *query(tag_values, tag_key)] if tag_key != ANY else [ANY]
    if preset and (preset_key not in options
                   or (tag_key == preset_key and preset_value and preset_value not in values)):
        invalid_note("slice", preset, "a tag value stored here (key:value)")
    if tag_key == ANY:
        return None, None
    value = st.selectbox(f"Slice: {md(tag_key)} =", values,
                         index=values.index(preset_value) if preset_value in values else 0, key=f"{key}_value")
    return (tag_key, value) if value != ANY else (None, None)


def format_age(moment: dt.datetime | None, now: dt.datetime | None = None) -> str:
    """``"3 min ago"`` style age of a moment (UTC)."""
    if moment is None:
        return "never"
    seconds = ((now or dt.datetime.now(dt.UTC)) - moment).total_seconds()
    if seconds < 0:
        return "in the future (clock skew?)"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def with_filters(f: ImageFilter, *, class_index: int | None, tag: tuple[str | None, str | None]) -> ImageFilter:
    return ImageFilter(start=f.start, end=f.end, class_index=class_index, tag_key=tag[0], tag_value=tag[1],
                       model_version_id=f.model_version_id)


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


def options_or_stop(options: Sequence[str], message: str) -> Sequence[str]:
    if not options:
        st.info(message)
        st.stop()
    return options
