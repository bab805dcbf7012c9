"""Heads and targets through the whole worker: what is stored for sigmoid (multi-label) and binary heads, and
the heatmaps of the predicted class and of the known label (setting ``target``).

Images are 16×16, red on their left ``k`` columns and green on the rest; the models
(:mod:`tests.support.zoo_models`) see each colour channel, so the right map of every class is known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from camwatch.settings import load_settings
from db import make_engine
from db.models import Heatmap, ModelVersion, Prediction
from db.models import Image as ImageRow
from worker.service.targets import target_sets
from worker.service.worker import Worker

MULTI = "python:tests/support/zoo_models.py:multilabel_factory"
BINARY = "python:tests/support/zoo_models.py:binary_factory"


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def write_image(folder: Path, name: str, red_cols: int, label: str | None = None) -> None:
    pixels = np.zeros((16, 16, 3), dtype=np.uint8)
    pixels[:, :red_cols, 0] = 255
    pixels[:, red_cols:, 1] = 255
    Image.fromarray(pixels).save(folder / f"{name}.png")
    if label is not None:
        (folder / f"{name}.png.json").write_text(json.dumps({"label": label}))


def run_worker(tmp_path: Path, model: str, **settings: object) -> dict[str, dict]:
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    Worker(load_settings(db=url, source=[tmp_path / "src"], model=model, stable_seconds=0.0, poll_seconds=0.05,
                         **settings)).work(burst=True)
    engine = make_engine(url)
    out: dict[str, dict] = {}
    with engine.connect() as conn:
        for image in conn.execute(select(ImageRow)).all():
            name = Path(image.uri).stem
            prediction = conn.execute(select(Prediction).where(Prediction.image_id == image.id)).one()
            maps = conn.execute(select(Heatmap).where(Heatmap.image_id == image.id)
                                .order_by(Heatmap.is_primary.desc())).all()
            out[name] = {"image": image, "prediction": prediction, "heatmaps": maps}
        out["_versions"] = {"rows": conn.execute(select(ModelVersion)).all()}
    engine.dispose()
    return out


def test_target_sets_per_mode():
    assert target_sets("top1", [3, None]) == [None]
    assert target_sets("label", [3, None]) == [[3, None]]
    assert target_sets("both", [3, None]) == [None, [3, None]]
    assert target_sets("both", [None, None]) == [None]  # no label known: nothing more to explain
    with pytest.raises(ValueError, match="unknown target 'all'"):
        target_sets("all", [])


def test_multi_label_worker_stores_labels_confidence_and_both_maps(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_image(src, "a", 10, label="green")  # predicted red; the label's map is a second heatmap
    write_image(src, "b", 11, label="red")  # label = prediction: one heatmap (other bytes than a)
    write_image(src, "c", 12)  # no label
    rows = run_worker(tmp_path, MULTI, head="sigmoid", target="both")
    (version,) = rows["_versions"]["rows"]
    assert (version.head, version.head_threshold, version.target_mode) == ("sigmoid", 0.5, "both")
    a = rows["a"]
    assert a["prediction"].class_index == 0 and a["prediction"].labels == [0, 1]  # red 0.58, green 0.52
    assert a["prediction"].confidence == pytest.approx(sigmoid(10 / 16 - 0.3), rel=1e-5)
    assert a["prediction"].correct is True  # the label (green) is among the positive labels
    primary, label_map = a["heatmaps"]
    assert (primary.is_primary, primary.target_class, label_map.is_primary, label_map.target_class) == \
        (True, 0, False, 1)
    assert primary.centroid_x == pytest.approx(5 / 16, abs=1e-3)  # the red columns 0..9
    assert label_map.centroid_x == pytest.approx(13 / 16, abs=1e-3)  # the green columns 10..15
    assert [h.target_class for h in rows["b"]["heatmaps"]] == [0]
    assert [h.target_class for h in rows["c"]["heatmaps"]] == [0]
    assert rows["c"]["prediction"].labels == [0] and rows["c"]["prediction"].correct is None  # green 4/16 < 0.3


def test_label_target_explains_the_known_label_else_the_prediction(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_image(src, "a", 10, label="green")
    write_image(src, "c", 9)
    rows = run_worker(tmp_path, MULTI, head="sigmoid", target="label")
    (only,) = rows["a"]["heatmaps"]
    assert only.is_primary and only.target_class == 1 and only.centroid_x == pytest.approx(13 / 16, abs=1e-3)
    assert rows["a"]["prediction"].class_index == 0  # the prediction itself is unchanged
    assert [h.target_class for h in rows["c"]["heatmaps"]] == [0]


def test_binary_worker_stores_the_sigmoid_probability_not_one(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_image(src, "red", 10, label="negative")
    write_image(src, "green", 6)
    rows = run_worker(tmp_path, BINARY, target="both")
    (version,) = rows["_versions"]["rows"]
    assert (version.head, version.head_threshold, version.class_names) == ("binary", None, ["negative", "positive"])
    red, green = rows["red"], rows["green"]
    assert red["prediction"].class_index == 1 and green["prediction"].class_index == 0
    for row in (red, green):  # |z| = |10 - 6| / 16
        assert row["prediction"].confidence == pytest.approx(sigmoid(0.25), rel=1e-5)
        assert row["prediction"].labels is None
    assert red["prediction"].correct is False
    primary, negative = red["heatmaps"]  # the positive class's map, and the label's (negative) map
    assert primary.target_class == 1 and primary.centroid_x == pytest.approx(5 / 16, abs=1e-3)
    assert negative.target_class == 0 and negative.centroid_x == pytest.approx(13 / 16, abs=1e-3)
    assert negative.target_logit == pytest.approx(-0.25, rel=1e-5)
