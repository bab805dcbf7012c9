"""camwatch worker: model loading, the CAM engine, heatmap statistics and the monitoring service."""

import os

# numpy's BLAS works on tiny per-image arrays here while torch owns the cores: a multi-threaded BLAS
# only spins against torch's threads (measured: statistics 30 ms -> 3 ms per image with one thread, and
# the next forward pass 35 % slower after statistics computed with two BLAS threads). Set before numpy
# is imported; an explicit user setting wins. numpy imported earlier (an embedding program, a notebook)
# keeps its pool: the worker service then limits it at run time, see limit_blas_threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


def limit_blas_threads() -> None:
    """Limit the BLAS thread pools already loaded (OpenBLAS, MKL, BLIS) to one thread, for this process."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
