"""camwatch dashboard entry point.

    streamlit run dashboard/app.py -- --db sqlite:///camwatch.db [--config camwatch.toml] [--source-root DIR ...]

Run it from the repository root so that ``.streamlit/config.toml`` applies (bound to 127.0.0.1, usage
statistics off, headless); ``--server.address 0.0.0.0`` (before the ``--``) overrides the address.
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
