"""Extracted features in the package's one cache (:data:`~faast_sklearn.utils._cache.STORE`).

Each extraction call's computed rows form one block, stored where they were computed: a CUDA
tensor stays on its GPU (``device="cuda:0"``), CPU features are a read-only float32 NumPy
copy in pages of its own. A row index maps (namespace, row key) to (block, row); a block's
``on_evict`` removes its rows from the index, and the block's declared size includes the
index's cost per row, so the store's bound counts every byte. Keying rows rather than calls
is what makes a cross-validation fold -- a subset of rows seen before -- hit: its rows are
gathered with one fancy index per block, on the device where the block lives.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from itertools import compress, repeat
from typing import Any

import numpy as np

from ..utils._arrays import kept_copy
from ..utils._cache import STORE
from ..utils._content_key import KEY_BYTES, content_key
from ..utils._torch import import_torch

# Host bytes per row of the row index: the 16-byte key object, its dict slot, the handle int
# and the block's packed copy of the key. tracemalloc counts 142 B a row when filled once and
# 160 B in the steady state of a bounded cache (deleted slots stay until the dict is resized);
# the process's resident memory grows by 232 B a row in that steady state (the allocator's
# partly filled pools; benchmarks/bench_cache_memory.py, 1-d rows): that is what is counted.
ROW_INDEX_BYTES = 232

_LOCK = threading.Lock()
_INDEX: dict[bytes, dict[bytes, int]] = {}  # namespace -> row key -> block << 32 | row
_BLOCK_IDS = itertools.count()
_STATS = {"forward_calls": 0, "samples": 0, "hits": 0, "misses": 0}


def _block_key(block: int) -> bytes:
    return content_key("feature block", block)


def lookup(namespace: bytes, keys: list[bytes]) -> tuple[np.ndarray, dict]:
    """Handles of ``keys`` (-1 for a miss) and the blocks they point into, by number.

    The blocks are returned (not looked up again when gathered) so that an eviction by
    another thread in between cannot pull rows from under the caller.
    """
    with _LOCK:
        index = _INDEX.get(namespace, {})
        handles = np.fromiter(map(index.get, keys, repeat(-1)), np.int64, len(keys))
    blocks = {}
    for b in np.unique(handles[handles >= 0] >> 32).tolist():
        value = STORE.get(_block_key(b))
        if value is None:  # evicted since: its rows are misses
            handles[(handles >> 32) == b] = -1
        else:
            blocks[b] = value
    n_found = int((handles >= 0).sum())
    with _LOCK:
        _STATS["hits"] += n_found
        _STATS["misses"] += len(keys) - n_found
    return handles, blocks


def put(namespace: bytes, keys: list[bytes], rows: Any) -> bool:
    """Keep ``rows`` (float32, a NumPy array or a tensor on its device) under ``keys`` as one
    block: a host array as a read-only copy in pages of its own (see
    :func:`~faast_sklearn.utils._arrays.kept_copy`), a device tensor as it is, which the caller
    must then never modify. Returns whether the cache holds ``rows`` itself."""
    host = isinstance(rows, np.ndarray)
    device = "cpu" if host else str(rows.device)
    nbytes = rows.nbytes if host else rows.numel() * rows.element_size()
    nbytes += ROW_INDEX_BYTES * len(keys)
    if not len(keys) or not STORE.admits(nbytes, device):
        return False  # nothing copied for a block that would not be kept
    b = next(_BLOCK_IDS)
    if host:
        rows = kept_copy(rows)

    handles = range(b << 32, (b << 32) + len(keys))
    # The keys, packed in pages of their own: a list of them would pin the heap for as long.
    packed = kept_copy(np.frombuffer(b"".join(keys), dtype=f"V{KEY_BYTES}"))

    def forget() -> None:
        keys = packed.tolist()
        with _LOCK:
            index = _INDEX.get(namespace)
            if index is None:
                return
            now = np.fromiter(map(index.get, keys, repeat(-1)), np.int64, len(keys))
            mine = (now == np.asarray(handles)).tolist()  # not since re-stored in a newer block
            deque(map(index.__delitem__, compress(keys, mine)), maxlen=0)
            if not index:
                del _INDEX[namespace]

    with _LOCK:
        _INDEX.setdefault(namespace, {}).update(zip(keys, handles, strict=True))
    kept = STORE.put(
        _block_key(b),
        rows,
        nbytes=nbytes,
        device=device,
        on_evict=forget,
    )
    if not kept:
        forget()
    return kept and not host


def gather(handles: np.ndarray, blocks: dict, out: Any, positions: np.ndarray) -> None:
    """``out[positions[i]] = row of handles[i]``, one fancy index per block, on the block's
    device; then moved to ``out``'s (a NumPy array or a tensor)."""
    block_of, row_of = handles >> 32, handles & 0xFFFFFFFF
    for b, block in blocks.items():
        mine = block_of == b
        rows, pos = row_of[mine], positions[mine]
        if isinstance(block, np.ndarray):
            values = block[rows]
            if isinstance(out, np.ndarray):
                out[pos] = values
            else:
                torch = import_torch()
                out[torch.as_tensor(pos, device=out.device)] = torch.from_numpy(values).to(
                    out.device
                )
            continue
        torch = import_torch()
        values = block[torch.as_tensor(rows, device=block.device)]
        if isinstance(out, np.ndarray):
            out[pos] = values.cpu().numpy()
        else:
            out[torch.as_tensor(pos, device=out.device)] = values.to(out.device)


def count_forward(n_samples: int) -> None:
    """Record one backbone forward call on ``n_samples`` inputs."""
    with _LOCK:
        _STATS["forward_calls"] += 1
        _STATS["samples"] += int(n_samples)


def extraction_stats() -> dict:
    """Counters of this process: backbone forward calls, samples through the backbone, and
    feature rows found in or missing from the cache.

    Returns
    -------
    stats : dict
        ``forward_calls`` and ``samples`` (inputs that went through a backbone), ``hits``
        and ``misses`` (rows looked up in the cache), since the last
        :func:`reset_extraction_stats`; ``rows``, the feature rows cached now. See
        :func:`faast_sklearn.cache_info` for the cache's size.

    Examples
    --------
    >>> from faast_sklearn.features import extraction_stats, reset_extraction_stats
    >>> reset_extraction_stats()
    >>> extraction_stats()["samples"]
    0
    """
    with _LOCK:
        stats = dict(_STATS)
        stats["rows"] = sum(len(index) for index in _INDEX.values())
    return stats


def reset_extraction_stats() -> None:
    """Zero the forward-call, sample and hit/miss counters (cached rows are kept).

    Examples
    --------
    >>> from faast_sklearn.features import reset_extraction_stats
    >>> reset_extraction_stats()
    """
    with _LOCK:
        for name in _STATS:
            _STATS[name] = 0
