"""Fault injection into the worker's pipeline stages, for the fault-isolation and crash tests.

:func:`install` patches one stage (``read``, ``decode``, ``sidecar``, ``model``, ``statistics``, ``write``)
so that processing the *victim* image there calls ``action`` (raise an exception, or SIGKILL the process).
The victim is recognised by its file name where the stage sees a file, and by its unique pixel size where
it sees pixels or results (:data:`VICTIM_SIZE`).

``python -m tests.support.faulty_worker slow SECONDS -- run ARGS...`` runs ``camwatch run ARGS`` once, each
batch taking at least SECONDS in the model stage (a batch slower than the lease).

As a script, ``python -m tests.support.faulty_worker STAGE VICTIM_NAME -- run ARGS...`` runs ``camwatch run
ARGS`` in forked children (a real process each, SIGKILLed for real at the stage) until one exits normally,
restarting after each crash as a supervisor would, and prints ``{"runs": [exit codes]}``. Forking from a
parent that already imported torch keeps a restart under a second.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

#: The victim image's size: no other test image has it.
VICTIM_SIZE = (37, 29)
STAGES = ("read", "decode", "sidecar", "model", "statistics", "write")


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def injected(stage: str) -> Callable[[], None]:
    def fail() -> None:
        raise RuntimeError(f"injected {stage} fault")
    return fail


def install(stage: str, victim: str, action: Callable[[], None], patch: Callable[[Any, str, Any], None]) -> None:
    """Make ``stage`` call ``action`` on the victim; ``patch(obj, name, value)`` sets attributes (setattr, or
    pytest's ``monkeypatch.setattr`` so that tests undo it)."""
    import worker.service.pipeline as pipeline
    import worker.service.writer as writer
    from worker.cam.engine import CamEngine

    if stage == "read":
        real_read = pipeline.read_claimed

        def read(claim, *args, **kwargs):  # type: ignore[no-untyped-def]
            if claim.uri.endswith(victim):
                action()
            return real_read(claim, *args, **kwargs)
        patch(pipeline, "read_claimed", read)
    elif stage == "decode":
        real_load = pipeline.load_image

        def load(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if str(path).endswith(victim):
                action()
            return real_load(path, *args, **kwargs)
        patch(pipeline, "load_image", load)
    elif stage == "sidecar":
        real_annotations = pipeline.read_annotations

        def annotations(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if str(path).endswith(victim):
                action()
            return real_annotations(path, *args, **kwargs)
        patch(pipeline, "read_annotations", annotations)
    elif stage == "model":
        real_prepare = CamEngine.prepare

        def prepare(self, images, *args, **kwargs):  # type: ignore[no-untyped-def]
            if any(tuple(i.size) == VICTIM_SIZE for i in images):
                action()
            return real_prepare(self, images, *args, **kwargs)
        patch(CamEngine, "prepare", prepare)
    elif stage == "statistics":
        real_statistics = pipeline.compute_statistics

        def statistics(heatmap, width, height, *args, **kwargs):  # type: ignore[no-untyped-def]
            if (width, height) == VICTIM_SIZE:
                action()
            return real_statistics(heatmap, width, height, *args, **kwargs)
        patch(pipeline, "compute_statistics", statistics)
    elif stage == "write":
        real_complete = writer.complete_batch

        def complete(engine, claimant, results, *args, **kwargs):  # type: ignore[no-untyped-def]
            if any(r.status == "ok" and (r.width, r.height) == VICTIM_SIZE for r in results):
                action()
            return real_complete(engine, claimant, results, *args, **kwargs)
        patch(writer, "complete_batch", complete)
    else:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")


def slow(seconds: float) -> None:
    """Every model pass takes at least ``seconds`` (sleeping in ``CamEngine.prepare``)."""
    import time

    from worker.cam.engine import CamEngine

    real_prepare = CamEngine.prepare

    def prepare(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(seconds)
        return real_prepare(self, *args, **kwargs)

    CamEngine.prepare = prepare  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    stage, victim = argv[0], argv[1]
    command = argv[argv.index("--") + 1:]
    if stage == "slow":
        import worker.cli

        slow(float(victim))
        return worker.cli.main(command)
    import torch  # noqa: F401  (imported once here, inherited by every forked run)

    import worker.cli
    from worker.service import worker as _service  # noqa: F401

    runs: list[int] = []
    for _ in range(12):
        pid = os.fork()
        if pid == 0:  # the worker process
            code = 1
            try:
                install(stage, victim, kill, setattr)
                code = worker.cli.main(command)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        runs.append(os.waitstatus_to_exitcode(status))
        if runs[-1] == 0:
            break
    print(json.dumps({"runs": runs}))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
