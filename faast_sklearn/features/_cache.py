"""Process-wide, content-keyed feature cache and extraction counters.

Rows are keyed by (extraction configuration, digest of the row's content). Keying rows rather
than whole arrays is what makes a cross-validation fold -- a subset of the rows seen before --
hit the cache, so GridSearchCV runs the backbone once per distinct input, not once per fit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

# Bound on cached feature bytes per process; least recently used rows are dropped beyond it.
# 2 GiB holds about 700k ViT-B (768-d float32) rows.
DEFAULT_MAX_BYTES = 2 * 1024**3


class FeatureCache:
    """A thread-safe, size-bounded LRU map from (namespace, row key) to a float32 row."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = int(max_bytes)
        self._rows: OrderedDict[tuple[str, bytes], np.ndarray] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_many(self, namespace: str, keys: list[bytes]) -> list[np.ndarray | None]:
        """Look up rows; ``None`` for each miss. Hits become most recently used."""
        out: list[np.ndarray | None] = []
        with self._lock:
            for key in keys:
                row = self._rows.get((namespace, key))
                if row is not None:
                    self._rows.move_to_end((namespace, key))
                out.append(row)
            found = sum(r is not None for r in out)
            self.hits += found
            self.misses += len(out) - found
        return out

    def put_many(self, namespace: str, keys: list[bytes], rows: np.ndarray) -> None:
        """Store ``rows[i]`` under ``keys[i]`` (rows are copied once, as one block)."""
        if self.max_bytes <= 0 or len(keys) == 0:
            return
        block = np.array(rows, dtype=np.float32, copy=True)
        row_bytes = block[0].nbytes
        with self._lock:
            for key, row in zip(keys, block, strict=True):
                full = (namespace, key)
                if full in self._rows:
                    self._rows.move_to_end(full)
                    continue
                self._rows[full] = row
                self._nbytes += row_bytes
            while self._nbytes > self.max_bytes and self._rows:
                _, old = self._rows.popitem(last=False)
                self._nbytes -= old.nbytes

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._nbytes = 0
            self.hits = self.misses = 0

    def info(self) -> dict:
        with self._lock:
            return {
                "rows": len(self._rows),
                "nbytes": self._nbytes,
                "max_bytes": self.max_bytes,
                "hits": self.hits,
                "misses": self.misses,
            }


FEATURE_CACHE = FeatureCache()

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
    """Drop every cached feature row of this process and zero the hit/miss counters."""
    FEATURE_CACHE.clear()
