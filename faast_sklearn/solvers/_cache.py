"""Statistics and spectra of recently fitted data, reused by clones fitted on the same rows.

``GridSearchCV(FAASTClassifier(), {"alpha": [...]}, cv=5)`` fits one clone per (fold, alpha):
every alpha of a fold sees the same rows, hence the same sufficient statistics and the same
eigendecomposition (the regularisation is only a filter on the spectrum). This cache keeps
them, so a grid over ``alpha`` or ``rtol`` costs one O(N d^2 + d^3) pass per fold, not one per
grid point.

A hit needs the very same data: a cheap fingerprint selects candidates, then the inputs are
compared in full with a private copy taken at insertion (never with the caller's array, which
may have been modified in place since). The cache is bounded (bytes, least recently used
first) and per process.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..utils._arrays import same_bytes
from ..utils._torch import is_tensor
from ._stats import Statistics

# Total bytes kept (copies of X plus statistics and spectra); an X larger than a quarter of it
# is never cached, so one huge fit cannot evict everything or hold a large copy.
MAX_BYTES = 2**30


@dataclass
class _Entry:
    X: object  # a private copy (NumPy array or torch tensor on X's device)
    backend: str  # statistics are reused only by the back-end (and device) that made them
    targets: np.ndarray
    weights: np.ndarray
    stats: Statistics
    spectra: dict = field(default_factory=dict)  # (fit_intercept, embedding digest) -> Spectrum
    nbytes: int = 0


def _digest(*arrays: np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.data)
    return h.digest()


def _spread(n: int, k: int) -> np.ndarray:
    """``min(n, k)`` distinct indices into ``range(n)``, evenly spaced, first and last."""
    k = min(n, k)
    return np.arange(k) * (n - 1) // max(k - 1, 1)


def _sample(a) -> np.ndarray:
    """Up to 8 rows by 64 columns of a matrix, or 64 entries of a vector (evenly spaced, ends
    included), as NumPy: a cheap fingerprint. Whole rows cost more to hash (24 KB at 768
    float32 features: 20 us, a tenth of a one-shot fit; the targets and weights of 2,560 rows:
    40 KB) than they add: a fingerprint only selects candidates, which are then compared in
    full."""
    if a.ndim == 1:
        return a[_spread(a.shape[0], 64)]
    sample = a[_spread(a.shape[0], 8)][:, _spread(a.shape[1], 64)]
    return sample.detach().cpu().numpy() if is_tensor(sample) else sample


def _same(a, b) -> bool:
    if is_tensor(a) != is_tensor(b) or a.shape != b.shape or a.dtype != b.dtype:
        return False
    if is_tensor(a):
        import torch

        return a.device == b.device and bool(torch.equal(a, b))
    return same_bytes(a, b)


def _nbytes(a) -> int:
    return a.numel() * a.element_size() if is_tensor(a) else a.nbytes


def _stats_nbytes(stats: Statistics) -> int:
    parts = stats.rows if stats.rows is not None else vars(stats.moments).values()
    return sum(getattr(p, "nbytes", 0) for p in parts)


class FitCache:
    def __init__(self, max_bytes: int = MAX_BYTES):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, list[_Entry]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def fingerprint(self, backend: str, X, targets, weights) -> bytes:
        """A cheap key of the inputs (sampled entries): equal inputs, as NumPy arrays or
        tensors on any device, have equal fingerprints."""
        shapes = np.asarray([*X.shape, len(targets), len(weights)])
        return backend.encode() + _digest(shapes, _sample(X), _sample(targets), _sample(weights))

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def lookup(
        self, backend: str, X, targets: np.ndarray, weights: np.ndarray, key: bytes
    ) -> _Entry | None:
        """The entry for exactly these inputs (of :meth:`fingerprint` ``key``), or None."""
        with self._lock:
            for entry in self._entries.get(key, []):
                if (
                    entry.backend == backend
                    and same_bytes(entry.targets, targets)
                    and same_bytes(entry.weights, weights)
                    and _same(entry.X, X)
                ):
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return entry
            self.misses += 1
        return None

    def put(
        self,
        backend: str,
        X,
        targets: np.ndarray,
        weights: np.ndarray,
        stats: Statistics,
        key: bytes | None = None,
        private=None,
    ) -> _Entry:
        """Keep ``stats`` for these inputs; ``private`` is a copy of ``X`` the caller made
        already and never modifies (the statistics' own rows), else ``X`` is copied."""
        if private is not None and (private.shape, private.dtype) == (X.shape, X.dtype):
            copy = private
        else:
            copy = X.clone() if is_tensor(X) else np.array(X, copy=True)
        entry = _Entry(copy, backend, targets.copy(), weights.copy(), stats)
        # Allowance for two spectra (with and without intercept): V (d x d) and P (d x T).
        d, t = stats.n_features, stats.n_targets
        spectra = 2 * 8 * d * (d + t)
        entry.nbytes = _nbytes(copy) + targets.nbytes + weights.nbytes + _stats_nbytes(stats)
        entry.nbytes += spectra
        if entry.nbytes > self.max_bytes // 4:
            return entry  # usable by the caller, not kept
        key = key if key is not None else self.fingerprint(backend, X, targets, weights)
        with self._lock:
            self._entries.setdefault(key, []).append(entry)
            self._entries.move_to_end(key)
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes and self._entries:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= sum(e.nbytes for e in evicted)
        return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self.hits = self.misses = 0


FIT_CACHE = FitCache()
