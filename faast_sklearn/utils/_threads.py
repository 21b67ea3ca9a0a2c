"""The process-wide worker pools (decoding, hashing, comparing large arrays)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def n_threads(num_workers: int) -> int:
    """``num_workers`` if positive, else one thread per CPU core this process may use."""
    if num_workers > 0:
        return num_workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pool(num_workers: int) -> ThreadPoolExecutor:
    """This process's worker pool of that size: its threads outlive a call (a grid search makes
    a hundred), and a forked child makes its own."""
    key = (os.getpid(), n_threads(num_workers))
    with _POOLS_LOCK:
        executor = _POOLS.get(key)
        if executor is None:
            executor = _POOLS[key] = ThreadPoolExecutor(key[1], thread_name_prefix="faast-io")
        return executor
