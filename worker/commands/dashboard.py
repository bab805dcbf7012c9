"""``camwatch dashboard``: serve the Streamlit dashboard, bound to ``[dashboard] host``/``port`` of the
settings (127.0.0.1:8501 by default, wherever it is started: no ``.streamlit/config.toml`` needed).

The process is replaced by ``python -m streamlit run <installed dashboard/app.py>`` with the server
options on the command line, so signals reach Streamlit directly.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from pathlib import Path

from camwatch.conventions import LOCAL_HOSTS
from camwatch.settings import Settings
from worker.commands.common import settings_from

log = logging.getLogger(__name__)



def streamlit_command(settings: Settings, *, config: Path | None, source_roots: list[Path]) -> list[str]:
    """The ``streamlit run`` command line serving the dashboard for ``settings``. The dashboard runs in its
    own process: its files are located, not imported (the worker never imports the dashboard)."""
    spec = importlib.util.find_spec("dashboard")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the dashboard package is not installed next to the worker")
    app = Path(spec.origin).resolve().parent / "app.py"
    d = settings.dashboard
    command = [sys.executable, "-m", "streamlit", "run", str(app),
               "--server.address", d.host, "--server.port", str(d.port), "--server.headless", "true",
               "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
               "--", "--db", settings.db]
    if config is not None:
        command += ["--config", str(config)]
    for root in source_roots:
        command += ["--source-root", str(root)]
    return command


def cmd_dashboard(args: argparse.Namespace) -> int:
    settings = settings_from(args, ("db",))
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update={"dashboard": settings.dashboard.model_copy(update=overrides)})
    d = settings.dashboard
    if d.host not in LOCAL_HOSTS and not (d.password or d.password_hash or d.oidc):
        log.warning("the dashboard listens on %s without a login: anyone who can reach this machine can use it "
                    "(set [dashboard] password or oidc)", settings.dashboard.host)
    command = streamlit_command(settings, config=args.config, source_roots=args.source_roots)
    log.info("serving the dashboard at http://%s:%d", settings.dashboard.host, settings.dashboard.port)
    os.execv(command[0], command)
    return 0  # pragma: no cover - execv does not return


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="serve the dashboard (127.0.0.1:8501 unless the settings say otherwise)")
    p.add_argument("--db", help="database URL (default: settings, sqlite:///camwatch.db)")
    p.add_argument("--config", type=Path, help="camwatch.toml shared with the worker")
    p.add_argument("--host", help="address to bind (default: [dashboard] host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: [dashboard] port, 8501)")
    p.add_argument("--source-root", action="append", type=Path, dest="source_roots", default=[],
                   help="folder under which original images may be read (repeatable; default: the worker's "
                        "source folders)")
    p.set_defaults(func=cmd_dashboard)
