"""camwatch dashboard entry point.

    streamlit run dashboard/app.py -- --db sqlite:///camwatch.db [--config camwatch.toml] [--source-root DIR ...]

``camwatch dashboard`` is the way to serve it: it binds ``[dashboard] host``/``port`` of the settings
(127.0.0.1:8501 by default) wherever it is started. ``streamlit run`` binds before any camwatch code runs,
so it cannot apply the settings; a server started that way that listens more widely than ``[dashboard]
host`` allows shows an error instead of the data (run it from the repository root, whose
``.streamlit/config.toml`` binds 127.0.0.1, or pass ``--server.address HOST`` before the ``--``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts only this file's folder on sys.path; the packages live one level up.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from dashboard.main import run  # noqa: E402

run()
