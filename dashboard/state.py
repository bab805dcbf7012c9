"""Dashboard configuration, database engine and cached queries.

Settings are the worker's (:func:`camwatch.settings.load_settings`): command line after ``--`` of
``streamlit run dashboard/app.py -- --db URL [--config camwatch.toml] [--source-root DIR ...]``, then
``CAMWATCH_*`` environment variables, then ``camwatch.toml``, then defaults. Source roots (where original
images may be read) are the ``--source-root`` options, or else the worker's ``source`` folders.

Caching: the engine (and the schema upgrade, done once per database URL) lives in ``st.cache_resource``;
query results in ``st.cache_data`` with ``ttl = settings.dashboard.cache_ttl_seconds`` (10 s by default,
short because the worker writes while the dashboard reads), keyed by the database URL, the query's name
and its arguments. Only functions of the modules in :data:`QUERY_MODULES` can be run through :func:`query`.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Concatenate, ParamSpec, TypeVar

import streamlit as st
from sqlalchemy import Engine

import dashboard.analysis
import dashboard.bias
import dashboard.compare
import dashboard.images
import db.alerts
import db.audit
import db.prune
import db.queries
import db.queries_compare
import db.queries_images
import db.queries_qa
import db.queries_slices
import db.queue_status
import db.reviews
import db.versions
from camwatch.locations import folder_path
from camwatch.settings import Settings, load_settings
from db.migrate import upgrade
from db.session import make_engine

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

QUERY_MODULES: dict[str, ModuleType] = {
    module.__name__: module for module in (db.alerts, db.queries, db.queries_images, db.queries_slices, db.queries_qa,
                                           db.audit, db.queue_status, db.reviews, db.prune, db.versions, db.queries_compare,
                                           dashboard.analysis, dashboard.compare,
                                           dashboard.bias, dashboard.images)
}


@dataclass(frozen=True)
class AppConfig:
    settings: Settings
    source_roots: tuple[Path, ...]  # resolved


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamlit run dashboard/app.py --", allow_abbrev=False,
                                     description="camwatch dashboard")
    parser.add_argument("--db", help="database URL (default: settings, sqlite:///camwatch.db)")
    parser.add_argument("--config", type=Path, help="camwatch.toml shared with the worker")
    parser.add_argument("--source-root", action="append", type=Path, dest="source_roots", default=[],
                        help="folder under which original images may be read (repeatable; default: the "
                             "worker's source folders)")
    return parser


def image_roots(settings: Settings) -> list[Path]:
    """Where the worker reads originals: its folder sources, and with queue sources the spool folder and the
    ``allowed_roots`` of ``file://`` events."""
    folders = [p for p in map(folder_path, settings.source) if p is not None]
    if len(folders) < len(settings.source):
        folders += [settings.queue.spool_dir, *settings.allowed_roots]
    return folders


def load_config(argv: Sequence[str] | None = None) -> AppConfig:
    """Settings and source roots from ``argv`` (default ``sys.argv[1:]``). Unknown arguments are ignored,
    since under ``streamlit.testing`` the process's arguments are the test runner's."""
    args, _ = _parser().parse_known_args(list(sys.argv[1:] if argv is None else argv))
    settings = load_settings(args.config, db=args.db)
    roots = args.source_roots or image_roots(settings)
    return AppConfig(settings=settings, source_roots=tuple(Path(r).expanduser().resolve() for r in roots))


def config() -> AppConfig:
    """The configuration of this run (parsed once per script run and kept in the session)."""
    if "camwatch_config" not in st.session_state:
        st.session_state["camwatch_config"] = load_config()
    cfg: AppConfig = st.session_state["camwatch_config"]
    return cfg


@st.cache_resource(show_spinner="Connecting to the database...")
def engine_for(url: str) -> Engine:
    """The engine for ``url``, with the schema upgraded to the newest revision (once per URL and process)."""
    engine = make_engine(url, reader=True)
    upgrade(engine)
    log.info("dashboard connected to %s", engine.url.render_as_string(hide_password=True))
    return engine


def engine() -> Engine:
    return engine_for(config().settings.db)


def _execute(url: str, module: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if module not in QUERY_MODULES:
        raise ValueError(f"{module}.{name} is not a dashboard query (allowed modules: {sorted(QUERY_MODULES)})")
    function = getattr(QUERY_MODULES[module], name)
    return function(engine_for(url), *args, **kwargs)


@functools.cache
def _cached_runner(ttl_seconds: int) -> Any:
    return st.cache_data(ttl=ttl_seconds, show_spinner=False, max_entries=1000)(_execute)


def query(function: Callable[Concatenate[Engine, P], R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``function(engine, *args, **kwargs)`` through the query cache (see the module docstring)."""
    settings = config().settings
    runner = _cached_runner(settings.dashboard.cache_ttl_seconds)
    result: R = runner(settings.db, function.__module__, function.__qualname__, args, kwargs)
    return result


def clear_cache() -> None:
    """Forget every cached query result (the "Refresh" button)."""
    _cached_runner(config().settings.dashboard.cache_ttl_seconds).clear()
