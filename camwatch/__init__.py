"""camwatch's shared core: the definitions and the maths that the worker, the database layer and the
dashboard all use, free of torch and of SQL.

- :mod:`camwatch.settings` — the one settings object (flag → env → ``camwatch.toml`` → default).
- :mod:`camwatch.conventions` — labels and encodings shared by every layer (all classes, slices,
  window kinds, review verdicts, statuses).
- :mod:`camwatch.statistics` — per-image heatmap statistics and their registry.
- :mod:`camwatch.monitoring` — heatmap averaging and correlation, the reference, drift tests, windows,
  flag rules.
- :mod:`camwatch.imaging` — safe image decoding, thumbnails and overlays.
- :mod:`camwatch.methods` — the catalogue of CAM methods (their implementations live in ``worker.cam``).

See ``docs/architecture.md`` for the layers and the arrows allowed between them.
"""

__version__ = "0.2.0"
