"""Process-wide, content-keyed feature cache and extraction counters.

Rows are keyed by (extraction configuration, digest of the row's content). Keying rows rather
than whole arrays is what makes a cross-validation fold -- a subset of the rows seen before --
hit the cache, so GridSearchCV runs the backbone once per distinct input, not once per fit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from itertools import repeat

import numpy as np

from ._inputs import _CHUNK_KEYS

# Bound on cached feature bytes per process; least recently used rows are dropped beyond it.
# 2 GiB holds about 700k ViT-B (768-d float32) rows.
DEFAULT_MAX_BYTES = 2 * 1024**3


class FeatureCache:
    """A thread-safe, size-bounded LRU map from (namespace, row key) to a float32 row.

    Rows live in the block they were computed in (one block per extraction call); a lookup
    returns integer handles (``block << 32 | row``, -1 for a miss) and :func:`gather` copies
    the rows of many handles with one fancy index per block, so a cross-validation fold of
    thousands of cached rows costs a dictionary lookup per row and no per-row copies. Blocks
    are evicted whole, least recently used first.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = int(max_bytes)
        self._index: dict[str, dict[bytes, int]] = {}  # namespace -> row key -> handle
        self._blocks: OrderedDict[int, tuple[str, list[bytes], np.ndarray]] = OrderedDict()
        self._next_block = 0
        self._nbytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def lookup(self, namespace: str, keys: list[bytes]) -> tuple[np.ndarray, dict]:
        """Handles of ``keys`` (-1 for a miss) and the blocks they point into.

        The blocks are returned (not looked up again in :func:`gather`) so that an eviction
        by another thread in between cannot pull rows from under the caller.
        """
        with self._lock:
            index = self._index.get(namespace, {})
            handles = np.fromiter(map(index.get, keys, repeat(-1)), np.int64, len(keys))
            found = handles >= 0
            blocks = {}
            for b in np.unique(handles[found] >> 32).tolist():
                self._blocks.move_to_end(b)
                blocks[b] = self._blocks[b][2]
            n_found = int(found.sum())
            self.hits += n_found
            self.misses += len(keys) - n_found
        return handles, blocks

    def put_many(
        self, namespace: str, keys: list[bytes], rows: np.ndarray, *, owned: bool = False
    ) -> int | None:
        """Store ``rows[i]`` under ``keys[i]`` as one block (a copy, unless ``owned``: the
        caller hands over a float32 array it never modifies); returns the block's number (None
        if not stored)."""
        if self.max_bytes <= 0 or len(keys) == 0:
            return None
        block = np.array(rows, dtype=np.float32, copy=None if owned else True, order="C")
        if block.nbytes > self.max_bytes:
            return None
        with self._lock:
            b = self._next_block
            self._next_block += 1
            self._blocks[b] = (namespace, list(keys), block)
            self._nbytes += block.nbytes
            index = self._index.setdefault(namespace, {})
            for j, key in enumerate(keys):
                index[key] = b << 32 | j
            while self._nbytes > self.max_bytes:
                self._evict_oldest()
        return b

    def _evict_oldest(self) -> None:
        b, (namespace, keys, block) = self._blocks.popitem(last=False)
        self._nbytes -= block.nbytes
        index = self._index[namespace]
        for j, key in enumerate(keys):
            if index.get(key) == b << 32 | j:  # not since re-stored in a newer block
                del index[key]

    def record_hits(self, n: int) -> None:
        """Count ``n`` rows served from a whole-output memo as hits."""
        with self._lock:
            self.hits += int(n)

    def clear(self) -> None:
        with self._lock:
            self._index.clear()
            self._blocks.clear()
            self._nbytes = 0
            self.hits = self.misses = 0

    def info(self) -> dict:
        with self._lock:
            return {
                "rows": sum(len(index) for index in self._index.values()),
                "nbytes": self._nbytes,
                "max_bytes": self.max_bytes,
                "hits": self.hits,
                "misses": self.misses,
            }


def gather(handles: np.ndarray, blocks: dict, out: np.ndarray, positions: np.ndarray) -> None:
    """``out[positions[i]] = row of handles[i]``, one fancy index per block."""
    block_of, row_of = handles >> 32, handles & 0xFFFFFFFF
    for b, block in blocks.items():
        mine = block_of == b
        out[positions[mine]] = block[row_of[mine]]


def gather_to_device(handles: np.ndarray, blocks: dict, out, positions: np.ndarray) -> None:
    """:func:`gather` into a tensor ``out`` on a GPU, from device copies of the blocks.

    A block's copy is made once, when a quarter of its rows or more are wanted, and kept in
    :data:`BLOCK_MEMO` (the block of an extraction on this device is its output itself): the
    folds of a cross-validation, each a new mix of rows extracted before, are then gathered on
    the device instead of on the host (a 20 MB fold of ViT-B features: 6 ms on an H200 host,
    plus its copy to the device). Fewer rows of a block travel alone.
    """
    import torch

    device = out.device
    block_of, row_of = handles >> 32, handles & 0xFFFFFFFF
    for b, block in blocks.items():
        mine = block_of == b
        rows = row_of[mine]
        twin = BLOCK_MEMO.get((b, str(device)))
        if twin is None and 4 * len(rows) >= len(block):
            twin = torch.from_numpy(block).to(device)
            BLOCK_MEMO.put((b, str(device)), twin)
        if twin is None:
            values = torch.from_numpy(block[rows]).to(device)
        else:
            values = twin[torch.as_tensor(rows, device=device)]
        out[torch.as_tensor(positions[mine], device=device)] = values


FEATURE_CACHE = FeatureCache()


class DeviceMemo:
    """Recent tensors kept on their GPU, within ``share`` of each device's memory, least
    recently used first out.

    Two of them serve grid searches on a GPU. :data:`OUTPUT_MEMO` keeps whole outputs, by the
    digest of their inputs' row keys: ``GridSearchCV(..., cv=5)`` hands the extractor the same
    ten fold arrays once per grid point, each a full hit of the row cache, and assembling it
    again would cost more than the rest of the fit. :data:`BLOCK_MEMO` keeps device copies of
    the row cache's blocks, by block number, for :func:`gather_to_device`.
    """

    def __init__(self, share: float = 0.05):
        self.share = share
        self._outputs: OrderedDict[tuple, object] = OrderedDict()
        self._nbytes: dict[str, int] = {}
        self._lock = threading.Lock()

    def _budget(self, device: str) -> int:
        import torch

        return int(self.share * torch.cuda.get_device_properties(device).total_memory)

    def get(self, key: tuple):
        with self._lock:
            out = self._outputs.get(key)
            if out is not None:
                self._outputs.move_to_end(key)
            return out

    def put(self, key: tuple, tensor) -> None:
        device = str(tensor.device)
        size = tensor.numel() * tensor.element_size()
        budget = self._budget(device)
        if size > budget:
            return
        with self._lock:
            if key in self._outputs:
                return
            self._outputs[key] = tensor
            self._nbytes[device] = self._nbytes.get(device, 0) + size
            for old in list(self._outputs):
                if self._nbytes[device] <= budget:
                    break
                if str(self._outputs[old].device) == device:
                    gone = self._outputs.pop(old)
                    self._nbytes[device] -= gone.numel() * gone.element_size()

    def clear(self) -> None:
        with self._lock:
            self._outputs.clear()
            self._nbytes.clear()


OUTPUT_MEMO = DeviceMemo()
BLOCK_MEMO = DeviceMemo()

_STATS_LOCK = threading.Lock()
_STATS = {"forward_calls": 0, "samples": 0}


def count_forward(n_samples: int) -> None:
    """Record one backbone forward call on ``n_samples`` inputs."""
    with _STATS_LOCK:
        _STATS["forward_calls"] += 1
        _STATS["samples"] += int(n_samples)


def extraction_stats() -> dict:
    """Counters of this process: backbone forward calls, samples through the backbone, cache.

    Returns
    -------
    stats : dict
        ``forward_calls`` and ``samples`` (inputs that went through a backbone since the last
        :func:`reset_extraction_stats`), and the feature cache's ``hits``, ``misses``,
        ``rows`` and ``nbytes``.

    Examples
    --------
    >>> from faast_sklearn.features import extraction_stats, reset_extraction_stats
    >>> reset_extraction_stats()
    >>> extraction_stats()["samples"]
    0
    """
    with _STATS_LOCK:
        stats = dict(_STATS)
    info = FEATURE_CACHE.info()
    stats.update(hits=info["hits"], misses=info["misses"], rows=info["rows"], nbytes=info["nbytes"])
    return stats


def reset_extraction_stats() -> None:
    """Zero the forward-call, sample and cache hit/miss counters (cached rows are kept)."""
    with _STATS_LOCK:
        _STATS["forward_calls"] = 0
        _STATS["samples"] = 0
    with FEATURE_CACHE._lock:
        FEATURE_CACHE.hits = FEATURE_CACHE.misses = 0


def clear_feature_cache() -> None:
    """Drop every cached feature row (and memoised output and chunk key) of this process and
    zero the hit/miss counters."""
    FEATURE_CACHE.clear()
    OUTPUT_MEMO.clear()
    BLOCK_MEMO.clear()
    _CHUNK_KEYS.clear()
