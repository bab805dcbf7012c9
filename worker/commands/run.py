"""``camwatch run``: the monitoring worker over its sources (folders, ``redis://`` streams, ``mqtt://`` topics),
continuously or ``--once``."""

from __future__ import annotations

import argparse
from pathlib import Path

from camwatch.heads import TARGET_MODES
from camwatch.settings import load_settings
from worker.commands.common import MODEL_KEYS, add_model_args, runtime_override, shadow_overrides

RUN_KEYS = ("db", "source", "worker_id", "thumbnails", "stable_seconds", "poll_seconds", "lease_seconds",
            "max_attempts", "heartbeat_seconds", "dead_after_seconds", "allowed_roots", "allowed_hosts", "target",
            "metrics_port", "metrics_host")


def cmd_run(args: argparse.Namespace) -> int:
    from worker.logs import configure_structured_logging
    from worker.runtime import configure_runtime

    configure_structured_logging(args.verbose)
    queue = {k: v for k, v in (("spool_dir", args.spool_dir), ("max_in_flight", args.max_in_flight),
                               ("claim_timeout_seconds", args.claim_timeout)) if v is not None}
    values = {k: getattr(args, k) for k in (*MODEL_KEYS, *RUN_KEYS)} | shadow_overrides(args)
    settings = load_settings(args.config, **values,
                             queue=queue or None,  # merged into [queue] of the file and the environment
                             runtime=runtime_override(args))
    if not settings.source:
        raise ValueError("no source: pass --source DIR|redis://...|mqtt://... (or set CAMWATCH_SOURCE / source "
                         "in camwatch.toml)")
    configure_runtime(settings.runtime)  # before torch is imported (the next import) and allocates
    from worker.service.worker import Worker

    worker = Worker(settings, freeze_gc=True)  # this process is the worker's: startup objects out of GC
    worker.install_signal_handlers()
    worker.work(burst=args.once)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="watch sources (folders, Redis streams, MQTT topics) and monitor every image")
    p.add_argument("--source", action="append",
                   help="folder, redis://host:6379/0?stream=S&group=G or mqtt://host:1883/topic/# (repeatable)")
    p.add_argument("--db", help="database URL (default sqlite:///camwatch.db)")
    p.add_argument("--once", action="store_true",
                   help="process everything present (files, queued events), then exit")
    p.add_argument("--worker-id", dest="worker_id")
    p.add_argument("--thumbnails", choices=["all", "flagged", "none"])
    p.add_argument("--stable-seconds", type=float, dest="stable_seconds")
    p.add_argument("--poll-seconds", type=float, dest="poll_seconds")
    p.add_argument("--lease-seconds", type=float, dest="lease_seconds")
    p.add_argument("--max-attempts", type=int, dest="max_attempts",
                   help="crashes of a worker processing an image alone before it is given up (default 3)")
    p.add_argument("--heartbeat-seconds", type=float, dest="heartbeat_seconds",
                   help="heartbeat and lease renewal interval (default 5)")
    p.add_argument("--dead-after-seconds", type=float, dest="dead_after_seconds",
                   help="a worker silent this long is taken for dead and its claims retried (default 60)")
    q = p.add_argument_group("queue sources")
    q.add_argument("--allow-root", type=Path, action="append", dest="allowed_roots", metavar="DIR",
                   help="folder under which file:// images of events may be read (repeatable)")
    q.add_argument("--allow-host", action="append", dest="allowed_hosts", metavar="HOST[:PORT]",
                   help="host from which http(s):// images of events may be fetched (repeatable)")
    q.add_argument("--spool-dir", type=Path, dest="spool_dir", help="folder for inline and downloaded images")
    q.add_argument("--max-in-flight", type=int, dest="max_in_flight",
                   help="events received and not yet acknowledged, per queue source (default 64)")
    q.add_argument("--claim-timeout", type=float, dest="claim_timeout",
                   help="seconds after which another worker takes over an idle Redis entry (default 300)")
    p.add_argument("--target", choices=TARGET_MODES,
                   help="class to explain: top1 (default), label (the image's known label, else top-1), or both "
                        "(two heatmaps when the label is known and differs)")
    m = p.add_argument_group("Prometheus metrics (docs/metrics.md)")
    m.add_argument("--metrics-port", type=int, dest="metrics_port", metavar="PORT",
                   help="serve /metrics on this port (env CAMWATCH_METRICS_PORT; off by default)")
    m.add_argument("--metrics-host", dest="metrics_host", metavar="ADDRESS",
                   help="address /metrics listens on (default 127.0.0.1: this machine only)")
    add_model_args(p, repeatable=True)
    p.set_defaults(func=cmd_run)
