"""Process-wide runtime settings of the worker, applied once when a command starts (never at import).

:func:`configure_runtime` is the first thing ``camwatch run`` and ``camwatch explain`` do after reading
their settings, and what the dashboard's on-demand CAM does before it imports torch. It applies, and logs:

- **The allocator** (``[runtime] allocator = "pinned"``, the default). With glibc's default malloc, every
  activation tensor above the dynamic mmap threshold is ``mmap``ed and given back on ``free``, so each
  batch pays its page faults again (measured: ``worker run --once`` 48.9 s with 18.9 s of system time, 28.1 s
  with 1.6 s pinned). ``mallopt(M_MMAP_MAX, 0)`` serves every allocation from the heap and a large
  ``M_TRIM_THRESHOLD`` keeps freed memory in the process for reuse: RSS settles at one batch's peak. It is
  called through ctypes, so nothing is needed from the environment (``MALLOC_MMAP_MAX_`` and
  ``MALLOC_TRIM_THRESHOLD_`` are only read by glibc at process start). Where glibc is absent (musl, macOS)
  it is a no-op with a log line. Allocations already made keep their kind; that is why it runs before torch
  is imported.
- **torch's intra-op threads** (``[runtime] threads``, default: the cores this process may run on).
- **numpy's BLAS**, limited to one thread: BLAS works on tiny per-image arrays while torch owns the cores;
  a multi-threaded BLAS only spins against torch's threads (measured: statistics 30 ms -> 3 ms per image
  with one thread, and the next forward pass 35 % slower after statistics computed with two BLAS threads).
  The pools already loaded (OpenBLAS, MKL, BLIS) are limited through threadpoolctl, whatever was imported
  first.

- **The garbage collector**: once the worker has loaded its model, :func:`freeze_startup_objects` moves the
  half-million objects of torch, the model and SQLAlchemy into the collector's permanent generation
  (``gc.freeze``). Otherwise each full collection — one every few hundred images, as results accumulate —
  walks all of them again (measured: 0.4 s per collection of about 511,000 objects on the 2-core machine,
  about 1 ms per image at 50 images/s); afterwards it walks only what the batches create.

Importing this module applies nothing and imports neither torch nor numpy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys
from dataclasses import dataclass

from camwatch.settings import RuntimeSettings

log = logging.getLogger(__name__)

#: glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


@dataclass(frozen=True)
class AllocatorReport:
    """What :func:`pin_allocator` did: ``applied`` False with the ``reason`` where it could not."""

    applied: bool
    mmap_max_result: int | None = None  # mallopt's return value: 1 on success, 0 on error
    trim_threshold_result: int | None = None
    trim_threshold: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class RuntimeReport:
    allocator: AllocatorReport
    torch_threads: int
    blas_threads: int | None  # None: no BLAS pool loaded
    before_torch: bool  # the allocator was set before torch was imported (torch's own allocations included)

    def describe(self) -> str:
        a = self.allocator
        alloc = (f"glibc mallopt(M_MMAP_MAX=0) -> {a.mmap_max_result}, mallopt(M_TRIM_THRESHOLD={a.trim_threshold}) "
                 f"-> {a.trim_threshold_result}" if a.applied else f"allocator unchanged ({a.reason})")
        blas = "no BLAS pool loaded" if self.blas_threads is None else f"BLAS threads {self.blas_threads}"
        when = "before torch was imported" if self.before_torch else "after torch was imported"
        return f"runtime: {alloc}; torch threads {self.torch_threads}; {blas}; {when}"


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has ``gnu_get_libc_version``), else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def pin_allocator(trim_threshold: int) -> AllocatorReport:
    """Serve all allocations from glibc's heap and keep up to ``trim_threshold`` bytes of freed memory."""
    libc = _glibc()
    if libc is None:
        return AllocatorReport(applied=False, reason="not glibc: mallopt unavailable, nothing to do")
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    threshold = min(trim_threshold, 2**31 - 1)  # mallopt takes an int
    mmap_max = int(libc.mallopt(M_MMAP_MAX, 0))
    trim = int(libc.mallopt(M_TRIM_THRESHOLD, threshold))
    applied = mmap_max == 1 and trim == 1
    return AllocatorReport(applied=applied, mmap_max_result=mmap_max, trim_threshold_result=trim,
                           trim_threshold=threshold, reason="" if applied else "mallopt returned an error")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def limit_blas_threads() -> int | None:
    """Limit the BLAS thread pools already loaded (OpenBLAS, MKL, BLIS) to one thread, for this process;
    returns the limit, or None when no pool is loaded."""
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    return 1 if any(p.get("user_api") == "blas" for p in threadpool_info()) else None


def configure_runtime(settings: RuntimeSettings) -> RuntimeReport:
    """Apply ``settings`` to this process (allocator first, then torch's and BLAS's threads) and log them.
    Call it before torch is imported; calling it again re-applies the same settings."""
    before_torch = "torch" not in sys.modules
    if settings.allocator == "pinned":
        allocator = pin_allocator(settings.trim_threshold_bytes)
        if not allocator.applied:
            log.warning("allocator settings not applied: %s", allocator.reason)
    else:
        allocator = AllocatorReport(applied=False, reason="[runtime] allocator = 'default'")
    import numpy  # noqa: F401  (loads the BLAS pool, so that it is limited now)
    import torch

    threads = settings.threads or available_cores()
    torch.set_num_threads(threads)
    report = RuntimeReport(allocator=allocator, torch_threads=torch.get_num_threads(),
                           blas_threads=limit_blas_threads(), before_torch=before_torch)
    log.info(report.describe())
    return report


def freeze_startup_objects() -> int:
    """Collect, then move every object alive now (modules, the model, the database engine) into the garbage
    collector's permanent generation, so later full collections skip them; returns how many were frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("garbage collector: %d objects alive after start-up frozen out of garbage collection", frozen)
    return frozen
