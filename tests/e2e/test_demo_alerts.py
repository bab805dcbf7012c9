"""The demo's planted stream (reduced: 4 days, 800 images, four cameras; the cat poster on site-north/cam-2
from day 2, darker lighting everywhere from day 3) through the real worker (EfficientNet-Lite0, Grad-CAM)
with a real local webhook receiver: the drift alert about ``energy_outside`` of ``camera=cam-2`` reaches the
webhook, dated from the first full window after the change (day 2), and no other camera gets an
``energy_outside`` alert. Alerts read only the stored ``drift_results.drifted``."""

from __future__ import annotations

from dataclasses import replace

from camwatch.settings import load_settings
from demo.generate import generate_stream
from demo.timeline import StreamConfig
from tests.support.receivers import webhook_receiver
from worker.service.worker import Worker


def test_the_poster_camera_alarms_from_the_first_full_window_after_the_change(tmp_path):  # type: ignore[no-untyped-def]
    config = replace(StreamConfig.small(seed=0), days=4, images=800, planted_day=2, global_change_day=3)
    manifest = generate_stream(tmp_path / "stream", config)
    with webhook_receiver() as hook:
        settings = load_settings(
            db=f"sqlite:///{tmp_path / 'camwatch.db'}", source=[tmp_path / "stream"], stable_seconds=0.05,
            poll_seconds=0.05, use_events=False, batch_size=16,
            drift={"window": "day", "min_samples": 30, "every_batches": 1000},  # drift once all is processed
            reference={"kind": "time_range", "start": config.day_start(0).isoformat(),
                       "end": config.day_start(1).isoformat()},
            alerts={"webhook_url": hook.url, "flagged_share": {"enabled": False}})
        worker = Worker(settings)
        worker.work(burst=True)
        bodies = hook.bodies()
    assert worker.errors == 0 and worker.processed == len(manifest.images)
    energy = [b for b in bodies if b["rule"] == "drift" and b["status"] == "firing"
              and b["subject"]["statistic"] == "energy_outside" and b["subject"]["class_index"] == -1]
    by_slice = {b["subject"]["slice"]: b for b in energy}
    assert "camera=cam-2" in by_slice, sorted((b["subject"]["statistic"], b["subject"]["slice"]) for b in bodies)
    cam2 = by_slice["camera=cam-2"]
    assert cam2["since"] == config.planted_start.isoformat()  # the first full window after the change
    assert cam2["summary"].startswith("camera=cam-2: energy outside object rose from ")
    assert cam2["links"]["drift"].endswith("/drift?statistic=energy_outside&slice=camera%3Acam-2")
    others = {s for s in by_slice if s.startswith("camera=") and s != "camera=cam-2"}
    assert not others, others
