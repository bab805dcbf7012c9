"""A planted stream for the alert tests: two cameras, a reference day, and a day on which camera cam-2's
images turn bright (cam-1 unchanged). Capture times are the files' modification times."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
from PIL import Image

DAY0 = dt.datetime(2026, 11, 6, 8, 0, tzinfo=dt.UTC)
CHANGE = DAY0 + dt.timedelta(days=1)  # cam-2 turns bright from here


def plant_stream(root: Path, per_day: int = 30, days: int = 2, seed: int = 0) -> Path:
    """``root/site-a/cam-{1,2}/*.png``, ``per_day`` images per camera and day (every 10 minutes from 08:00)."""
    rng = np.random.default_rng(seed)
    for day in range(days):
        for camera in ("cam-1", "cam-2"):
            folder = root / "site-a" / camera
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_day):
                when = DAY0 + dt.timedelta(days=day, minutes=10 * k + (5 if camera == "cam-2" else 0))
                low, high = (150, 250) if camera == "cam-2" and when >= CHANGE else (30, 130)
                pixels = rng.integers(low, high, size=(48, 64, 3), dtype=np.uint8)
                path = folder / f"{when:%Y%m%d-%H%M}.png"
                Image.fromarray(pixels).save(path)
                os.utime(path, (when.timestamp(), when.timestamp()))
    return root
