"""Process-wide runtime settings of the worker, applied once when a command starts (never at import).

numpy's BLAS works on tiny per-image arrays while torch owns the cores: a multi-threaded BLAS only spins
against torch's threads (measured: statistics 30 ms -> 3 ms per image with one thread, and the next forward
pass 35 % slower after statistics computed with two BLAS threads). The pools already loaded (OpenBLAS,
MKL, BLIS) are limited to one thread through threadpoolctl, which works whatever was imported first.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def limit_blas_threads() -> None:
    """Limit the BLAS thread pools already loaded (OpenBLAS, MKL, BLIS) to one thread, for this process."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
