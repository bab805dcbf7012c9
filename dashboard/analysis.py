"""Computations behind the Drift and Slices pages, on query results (no rendering here).

Mean heatmaps follow :mod:`camwatch.monitoring.heatmaps` (:class:`~camwatch.monitoring.heatmaps.MapSums`):
each map becomes a distribution, maps on another grid are resampled, and sums are accumulated chunk by
chunk, so a window of any size is averaged in bounded memory.

Slices compare the hash sample of one tag value with the sample of every other value ("the rest"), and
with the reference's stored sample of the statistic, each time with the registered drift test
:func:`camwatch.monitoring.drift.default_test_for` picks for the comparison sample's size (KS up to 1000 values, else
the Wasserstein distance normalised by that sample's std) -- the worker's convention for drift windows.
Both are shown because they answer different questions: one odd slice also makes every other slice
differ from "the rest" (the rest contains the odd one), so "drifted against the reference" is what marks
a slice, and the score against the rest ranks how far each slice sits from the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from camwatch.conventions import ALL_CLASSES
from camwatch.monitoring.drift import default_test_for, get_test
from camwatch.monitoring.heatmaps import MapSums, MeanHeatmap, correlation_on_grid
from dashboard.figures import class_label, number
from dashboard.literal import csv_safe_frame
from db.codec import decode_heatmap
from db.queries import ImageFilter, reference_values, sample_rate
from db.queries_images import GalleryFilter, HeatmapBatch, flagged_page, flags_of, iter_heatmaps
from db.queries_slices import slice_sample

SLICE_SAMPLE_ROWS = 20_000  # rows sampled over all tag values together
WINDOW_MAX_ROWS = 200_000  # cap on the maps averaged for one window


def window_mean_heatmaps(engine: Engine, f: ImageFilter, grid: tuple[int, int] | None = None,
                         max_rows: int = WINDOW_MAX_ROWS) -> dict[int, MeanHeatmap]:
    """Mean normalised primary heatmap per predicted class of the images matching ``f``, and over all of
    them under key -1, on ``grid`` (the reference's; default: the first grid met). At most ``max_rows``
    maps (the earliest captured) are averaged."""
    sums = MapSums(grid)
    batch: HeatmapBatch
    for batch in iter_heatmaps(engine, f, limit=max_rows):
        sums.add(batch.class_index, batch.maps)
    means = {int(c): m for c in sums.counts if (m := sums.mean([c])) is not None}  # type: ignore[call-overload]
    overall = sums.mean(list(sums.counts))
    if overall is not None:
        means[ALL_CLASSES] = overall
    return means


@dataclass(frozen=True)
class SliceAnalysis:
    """Per tag value: ``table`` (value, images, flagged, flagged_share from every image; sampled, mean, q05,
    q25, median, q75, q95, test/score/threshold/drifted against the rest, the same prefixed ``ref_``
    against the reference, heatmap_r (mean map vs the rest's) from the sample), and ``maps`` (value -> mean
    map of the sample)."""

    table: pd.DataFrame
    maps: dict[str, MeanHeatmap]
    per_mille: int


def slice_analysis(engine: Engine, key: str, statistic: str, f: ImageFilter, summary: pd.DataFrame,
                   reference_id: int | None = None, sample_rows: int = SLICE_SAMPLE_ROWS) -> SliceAnalysis:
    """Distribution, tests (against the rest, and against reference ``reference_id`` for the filter's class)
    and mean heatmap of each value of tag ``key``, joined to ``summary`` (:func:`db.queries_slices.
    slice_summary` of the same key and filter, passed in so that it is computed -- and cached -- once for
    every statistic)."""
    total = int(summary["images"].sum()) if len(summary) else 0
    per_mille = sample_rate(total, sample_rows)
    sample = slice_sample(engine, key, statistic, f, per_mille) if total else slice_sample_empty()
    sums = MapSums()
    for (h, w), rows in sample[sample["data"].notna()].groupby(["grid_h", "grid_w"]):
        datas = rows["data"].tolist()
        stack = decode_heatmap(b"".join(datas), int(h) * len(datas), int(w)).reshape(len(datas), int(h), int(w))
        sums.add(rows["value"].to_numpy(dtype=object), stack)
    values = sample["x"].to_numpy()
    labels = sample["value"].to_numpy(dtype=object)
    reference = np.zeros(0) if reference_id is None else reference_values(
        engine, reference_id, statistic, ALL_CLASSES if f.class_index is None else f.class_index)
    records = []
    for value in summary["value"].tolist():
        mine, rest = values[labels == value], values[labels != value]
        mine, rest = mine[np.isfinite(mine)], rest[np.isfinite(rest)]
        record: dict[str, object] = {"value": value, "sampled": int(mine.size),
                                     "mean": float(mine.mean()) if mine.size else None}
        record.update(_quantiles(mine))
        for prefix, basis in (("", rest), ("ref_", reference)):
            test = get_test(default_test_for("numeric", int(basis.size)))
            outcome = test.run(basis, mine)
            record.update({f"{prefix}test": test.key, f"{prefix}score": outcome.score,
                           f"{prefix}threshold": outcome.threshold, f"{prefix}drifted": outcome.drifted})
        own, others = sums.mean([value]), sums.mean([v for v in sums.counts if v != value])
        record["heatmap_r"] = None if own is None or others is None else correlation_on_grid(others.data, own.data)
        records.append(record)
    table = summary.merge(pd.DataFrame(records), on="value", how="left") if records else summary
    if len(table):
        table.insert(3, "flagged_share", table["flagged"] / table["images"].where(table["images"] > 0))
    maps = {str(v): m for v in summary["value"].tolist() if (m := sums.mean([v])) is not None}
    return SliceAnalysis(table=table, maps=maps, per_mille=per_mille)


def slice_sample_empty() -> pd.DataFrame:
    return pd.DataFrame({"value": pd.Series(dtype=object), "x": pd.Series(dtype="float64"),
                         "grid_h": pd.Series(dtype="int64"), "grid_w": pd.Series(dtype="int64"),
                         "data": pd.Series(dtype=object)})


def _quantiles(values: np.ndarray) -> dict[str, float | None]:
    names = ("q05", "q25", "median", "q75", "q95")
    if values.size == 0:
        return dict.fromkeys(names)
    qs = np.quantile(values, (0.05, 0.25, 0.5, 0.75, 0.95))
    return {name: float(q) for name, q in zip(names, qs, strict=True)}


def flagged_csv(engine: Engine, g: GalleryFilter, class_names: Sequence[str], max_rows: int) -> bytes:
    """The gallery's rows for filter ``g`` (most severe first, at most ``max_rows``) as UTF-8 CSV: one line
    per image with its class name and its flags as ``rule=value (threshold t)`` joined by "; ". Text that a
    spreadsheet would run as a formula is neutralised (:func:`dashboard.literal.csv_safe_frame`)."""
    listed = flagged_page(engine, g, max_rows, 0).drop(columns="total")
    reasons = flags_of(engine, listed["image_id"].tolist())
    described = {image_id: "; ".join(f"{r.rule}={number(r.value, '.4g')} (threshold {number(r.threshold, '.4g')})"
                                     for r in rows.itertuples())
                 for image_id, rows in reasons.groupby("image_id")}
    listed["class_name"] = [class_label(class_names, int(c)) for c in listed["class_index"]]
    listed["flags"] = [described.get(i, "") for i in listed["image_id"]]
    return csv_safe_frame(listed).to_csv(index=False).encode("utf-8")
