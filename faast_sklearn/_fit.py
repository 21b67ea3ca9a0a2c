"""The steps of a fit after validation: rows -> statistics (cached per fold) -> spectrum.

Every alpha of a grid search's fold sees the same rows, hence the same statistics and
eigendecomposition: a fit keeps them in the package's one cache (:data:`~.utils._cache.STORE`),
keyed by content, so a grid over ``alpha`` or ``rtol`` costs one O(N d^2 + d^3) pass per
fold (see :ref:`caching`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._config import get_config
from ._guards import check_rows, check_statistics
from .solvers import Backend, Spectrum, Statistics, fit_flops, spectrum
from .utils._arrays import same_bytes
from .utils._cache import STORE, nbytes_of
from .utils._content_key import content_key
from .utils._torch import import_torch, is_tensor

# Largest NumPy X moved to a torch back-end's device whole (see placed); past it, X streams
# there in blocks of solvers._backends._CHUNK_BYTES. 256 MiB is small on any CUDA card.
PLACE_MAX_BYTES = 2**28

# Host fits smaller than this (in solvers.fit_flops) are not cached: keying costs more than
# their spectrum (10 rows x 768 features on 2 cores: 0.97 ms a fit with the cache, 0.61 without).
CACHE_MIN_FLOPS = 2**18


def placed(X, backend: Backend):
    """``X`` where the statistics pass reads it (see :data:`PLACE_MAX_BYTES`)."""
    if (
        backend.name == "torch"
        and not is_tensor(X)
        and X.shape[0] > X.shape[1]
        and X.nbytes <= PLACE_MAX_BYTES
    ):
        return backend.to_device(X)
    return X


def batch_statistics(backend: Backend, X, targets, w: np.ndarray, n_targets: int) -> Statistics:
    """Statistics of one batch of rows, in the back-end's arrays: few rows (N <= d) kept as a
    private copy in their own precision, more reduced to moments."""
    d = X.shape[1]
    X, targets, w = weighted_rows(w, X, targets)
    if X.shape[0] > d:
        return Statistics(
            d, n_targets, d, moments=backend.moments(placed(X, backend), targets, w, n_targets)
        )
    X = X.detach().clone() if is_tensor(X) else np.array(X, copy=True)
    # One-hot targets stay class codes (float64, exact): never an N x C one-hot.
    rows = (backend.to_device(X), backend.asarray(targets), backend.asarray(w))
    return Statistics(d, n_targets, d, rows=rows)


def weighted_rows(w: np.ndarray, *arrays) -> tuple:
    """``(*arrays, w)`` without the rows of zero weight: a zero weight leaves its row out
    (scikit-learn's rule), not even kept. Tensors are indexed where they live."""
    keep = np.asarray(w) > 0
    if keep.all():
        return (*arrays, w)
    index = np.flatnonzero(keep)
    rows = [
        a[import_torch().as_tensor(index, device=a.device)] if is_tensor(a) else np.asarray(a)[keep]
        for a in arrays
    ]
    return (*rows, np.asarray(w)[keep])


@dataclass
class FitEntry:
    """A fit's statistics and the spectra solved from them, per (fit_intercept, embedding);
    ``key``: its key in the cache (None: not cached); ``device``: where its arrays live."""

    stats: Statistics
    key: bytes | None = None
    device: str = "cpu"
    spectra: dict = field(default_factory=dict)
    X: Any = None  # a private copy of the rows, when they were keyed by a sample of them

    def spectrum(self, backend: Backend, *, fit_intercept: bool, embedding) -> Spectrum:
        """The spectrum of the statistics, computed once per intercept and class embedding."""
        memo = (fit_intercept, None if embedding is None else content_key(embedding))
        spec = self.spectra.get(memo)
        if spec is None:
            spec = spectrum(self.stats, backend, fit_intercept=fit_intercept, embedding=embedding)
            self.spectra[memo] = spec
            self.store()  # stored with each new spectrum: its size grew
        return spec

    def store(self) -> None:
        if self.key is not None:
            shared = self.stats.rows is not None and self.X is self.stats.rows[0]
            extra = [*self.spectra.values()] + ([] if shared else [self.X])
            nbytes = self.stats.nbytes + nbytes_of(extra)
            STORE.put(self.key, self, nbytes=nbytes, device=self.device)


def checked_statistics(backend: Backend, X, targets, w: np.ndarray, n_targets: int):
    """:func:`batch_statistics` of rows checked (:func:`~._guards.check_rows`) where the
    statistics pass reads them: on a GPU, the check is one reduction there."""
    X = placed(X, backend)
    check_rows(X, targets, w)
    stats = batch_statistics(backend, X, targets, w, n_targets)
    if stats.moments is not None:  # kept rows are the rows just checked
        check_statistics(stats, "statistics of these rows")
    return stats


def fit_statistics(backend: Backend, X, x_key, targets, n_targets: int, w) -> FitEntry:
    """The statistics of a whole fit's rows: from the cache when a clone fitted these very
    rows before (``x_key``: the extractor's key of the features, else a sample of ``X``'s
    content), else computed, checked and cached."""
    n, d = X.shape
    small = backend.device == "cpu" and fit_flops(n, d) < CACHE_MIN_FLOPS
    if small or not get_config()["cache"]:
        return FitEntry(checked_statistics(backend, X, targets, w, n_targets))
    # Features the extractor made come with the key of their inputs. Other arrays and tensors
    # are keyed by a sample of their entries and compared in full with the entry's private
    # copy: a grid search's clones refit each fold once per alpha.
    sampled = x_key is None
    x_key = _sample(X) if sampled else x_key
    key = content_key(f"fit:{backend.name}:{backend.device}", x_key, targets, n_targets, w)
    # Another array with the same sample is a miss (and its entry is replaced).
    entry = STORE.get(key, accept=(lambda e: _same(e.X, X)) if sampled else None)
    if entry is None:
        stats = checked_statistics(backend, X, targets, w, n_targets)
        copy = _private_copy(X, stats) if sampled else None
        # Stored with its first spectrum (FitEntry.spectrum), which the fit computes next:
        # each store sizes the whole entry again.
        entry = FitEntry(stats, key, backend.device, X=copy)
    return entry


def _private_copy(X, stats: Statistics):
    """A copy of ``X`` for the entry's comparisons: the kept rows themselves where they are
    one (batch_statistics' private copy, in X's kind, dtype and device), else a new one."""
    kept = stats.rows[0] if stats.rows is not None else None
    if (
        kept is not None
        and is_tensor(kept) == is_tensor(X)
        and kept.dtype == X.dtype
        and (not is_tensor(X) or kept.device == X.device)
    ):
        return kept
    return X.detach().clone() if is_tensor(X) else np.array(X, copy=True)


def _sample(X) -> tuple:
    """Shape and up to 8 x 64 entries of ``X`` (a strided view, first entry included; the
    key holds its dtype): a key only picks the entry that :func:`_same` then compares in
    full. Index arrays (and ``str(dtype)``, Python code in NumPy) cost a 20-row fit 0.05 ms."""
    n, d = X.shape
    return (tuple(X.shape), X[:: -(-n // 8), :: -(-d // 64)])


def _same(a, b) -> bool:
    """Whether two arrays, or two tensors on one device, hold the same bytes."""
    if is_tensor(a) != is_tensor(b) or a.shape != b.shape or a.dtype != b.dtype:
        return False
    if is_tensor(a):
        return a.device == b.device and bool(a.eq(b).all())
    return same_bytes(a, b)
