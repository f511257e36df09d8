"""How many CPU threads torch uses in a run's process, chosen in one place and recorded in every run.

Measured on the 2-core development machine (docs/performance.md, "Threads"): at the CPU presets one thread
is as fast as two on an idle machine (the tensors are small), and beside other busy processes it keeps
0.6-0.7 of its idle speed, while two threads with OpenMP's default (spinning) wait policy fall to
0.01-0.25 of theirs. So a run uses one thread unless told otherwise: ``--threads N``, or the usual
``OMP_NUM_THREADS`` (the parallel launchers set it to their share of the cores). With more than one thread
on a shared machine, ``OMP_WAIT_POLICY=PASSIVE`` (read when torch starts) keeps idle threads from spinning.
"""
from __future__ import annotations

import os

import torch

DEFAULT_THREADS = 1


def choose(requested: int = 0) -> int:
    """``requested`` when given (> 0), else ``OMP_NUM_THREADS`` when set, else :data:`DEFAULT_THREADS`."""
    if requested > 0:
        return requested
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return DEFAULT_THREADS


def apply(requested: int = 0) -> dict:
    """Set torch's intra-op threads for this process; what a run records of its thread settings."""
    threads = choose(requested)
    torch.set_num_threads(threads)
    return {"threads": threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")}
