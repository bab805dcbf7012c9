"""The explain command: overlay + JSON per image, one-line errors for bad files, the rest still done."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from worker.cli import main


def test_explain_writes_reports_and_survives_bad_files(tmp_path, photos, capsys):
    good = tmp_path / "chelsea.jpg"
    photos["chelsea"].save(good, quality=92)
    cup = tmp_path / "coffee.png"
    photos["coffee"].save(cup)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:3000])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    code = main(["explain", str(good), str(broken), str(cup), str(empty), "--box", "140,20,330,300",
                 "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"{broken}: truncated" in err and f"{empty}: empty file" in err and "2 of 4 images failed" in err

    doc = json.loads((out / "chelsea.jpg.cam.json").read_text())
    assert doc["width"] == 451 and doc["height"] == 300
    assert doc["method"] == "gradcam" and doc["target_layer"] == "features"
    assert len(doc["top5"]) == 5 and doc["top5"][0]["index"] == doc["target_class"]
    assert "cat" in doc["top5"][0]["name"]
    assert sum(p["probability"] for p in doc["top5"]) <= 1.0
    heat = np.array(doc["heatmap"])
    assert heat.shape == (7, 7) and doc["heatmap_extent"] == [0, 0, 1, 1]
    assert abs(heat.max() - doc["raw_max"]) < 1e-4
    stats = doc["statistics"]
    assert stats["energy_outside"] is not None and 0 <= stats["energy_outside"] <= 1
    assert 0.39 < stats["object_area_fraction"] < 0.40  # (190 * 280) / (451 * 300)
    assert doc["object_boxes"] == [[140, 20, 330, 300]]
    overlay = Image.open(out / "chelsea.jpg.cam.png")
    assert overlay.size == (451, 300)
    # the overlay is coloured where the heat is: it differs from the photo there
    assert np.abs(np.asarray(overlay, float) - np.asarray(photos["chelsea"], float)).mean() > 10

    cup_doc = json.loads((out / "coffee.png.cam.json").read_text())
    assert cup_doc["top5"][0]["name"] in {"espresso", "cup", "coffee mug"}
    assert cup_doc["statistics"]["energy_outside"] is not None  # the same --box applies to every image


def test_explain_with_a_target_class_and_another_method(tmp_path, photos):
    img = tmp_path / "coffee.jpg"
    photos["coffee"].save(img)
    out = tmp_path / "o"
    assert main(["explain", str(img), "--target", "281", "--method", "gradcam++", "--out", str(out)]) == 0
    doc = json.loads((out / "coffee.jpg.cam.json").read_text())
    assert doc["target_class"] == 281 and doc["target_class_name"] == "tabby"
    assert doc["method"] == "gradcam++" and doc["statistics"]["energy_outside"] is None


def test_bad_configuration_is_one_line_exit_2(tmp_path, capsys):
    img = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(img)
    assert main(["explain", str(img), "--model", "torchvision:resnet81", "--out", str(tmp_path)]) == 2
    assert "did you mean resnet18" in capsys.readouterr().err
