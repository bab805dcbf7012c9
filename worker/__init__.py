"""camwatch worker: model loading and the CAM engine (:mod:`worker.cam`), image sources and sidecars
(:mod:`worker.sources`), the monitoring service (:mod:`worker.service`) and the commands
(:mod:`worker.commands`, entry point :mod:`worker.cli`). Importing it has no side effects; process-wide
settings (thread pools) are applied by :func:`worker.runtime.configure_runtime` when a command starts.
"""
