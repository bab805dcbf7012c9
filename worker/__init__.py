"""camwatch worker: model loading, the CAM engine, heatmap statistics and the monitoring service."""

import os

# numpy's BLAS works on tiny per-image arrays here while torch owns the cores: a multi-threaded BLAS
# only spins against torch's threads (measured: statistics 30 ms -> 3 ms per image with one thread).
# Set before numpy is imported; an explicit user setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
