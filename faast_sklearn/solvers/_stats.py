"""Sufficient statistics of weighted least squares, and their exact merging.

Weighted means and centred co-moments (``cxx`` d x d, ``cxy`` d x T, diagonal ``cyy``) merge
exactly (Chan, Golub & LeVeque, 1979), so ``partial_fit`` equals ``fit``; while there are at
most ``max_rows`` rows (N <= d) the rows themselves are kept, for the kernel-side solve (see
the user guide's :ref:`method`). Arrays are the back-end's own (:data:`Array`); a pickle
holds NumPy only (:meth:`Statistics.to_numpy`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Union

import numpy as np

from ..utils._cache import nbytes_of
from ..utils._torch import import_torch, is_tensor, to_host

if TYPE_CHECKING:
    import torch

Array = Union[np.ndarray, "torch.Tensor"]


def _float64(a: Array) -> Array:
    return a.double() if is_tensor(a) else np.asarray(a, dtype=np.float64)


@dataclass(frozen=True)
class Moments:
    """Centred weighted moments of a set of rows (see the module docstring)."""

    count: int
    weight: float
    mean_x: Array
    mean_y: Array
    cxx: Array
    cxy: Array
    cyy: Array
    # Rows with a positive weight: the sample size of GCV, rtol="paper" and the prior (None
    # in older pickles: ``count`` stands in).
    positive: int | None = None

    @property
    def n_rows(self) -> int:
        return self.count if self.positive is None else self.positive

    def map(self, fn: Callable[[Array], Array]) -> Moments:
        """These moments with ``fn`` applied to every array."""
        return replace(self, **{k: fn(getattr(self, k)) for k in _MOMENT_ARRAYS})

    def __getstate__(self) -> dict:
        return {k: to_host(v) for k, v in vars(self).items()}

    @classmethod
    def empty(cls, n_features: int, n_targets: int) -> Moments:
        return cls(
            count=0,
            positive=0,
            weight=0.0,
            mean_x=np.zeros(n_features),
            mean_y=np.zeros(n_targets),
            cxx=np.zeros((n_features, n_features)),
            cxy=np.zeros((n_features, n_targets)),
            cyy=np.zeros(n_targets),
        )

    def merge(self, other: Moments) -> Moments:
        """Exact moments of the union of both row sets."""
        if other.weight == 0:
            return replace(self, count=self.count + other.count)
        if self.weight == 0:
            return replace(other, count=self.count + other.count)
        positive = None if None in (self.positive, other.positive) else self.n_rows + other.n_rows
        weight = self.weight + other.weight
        frac = other.weight / weight
        dx = other.mean_x - self.mean_x
        dy = other.mean_y - self.mean_y
        scale = self.weight * frac  # Wa Wb / W
        return Moments(
            count=self.count + other.count,
            positive=positive,
            weight=weight,
            mean_x=self.mean_x + frac * dx,
            mean_y=self.mean_y + frac * dy,
            cxx=self.cxx + other.cxx + scale * (dx[:, None] * dx[None, :]),
            cxy=self.cxy + other.cxy + scale * (dx[:, None] * dy[None, :]),
            cyy=self.cyy + other.cyy + scale * dy * dy,
        )


_MOMENT_ARRAYS = ("mean_x", "mean_y", "cxx", "cxy", "cyy")


def one_hot(Y: Array, n_targets: int) -> Array:
    """Kept targets as a dense (N, T) float64 array: 1-D class codes expanded."""
    if Y.ndim == 2:
        return Y
    if is_tensor(Y):  # compared on Y's device with the class indices: nothing from the host
        classes = import_torch().arange(n_targets, device=Y.device)
        return (Y.long()[:, None] == classes).double()
    out = np.zeros((len(Y), n_targets))
    out[np.arange(len(Y)), np.asarray(Y, dtype=np.intp)] = 1.0
    return out


def _count_positive(w: Array) -> int:
    return int((w > 0).sum())


def moments_from_rows(X: Array, Y: Array, w: Array) -> Moments:
    """Float64 moments of a small row set (the kept few-shot rows), where the rows live."""
    weight = float(w.sum())
    if weight == 0:
        return replace(Moments.empty(X.shape[1], Y.shape[1]), count=len(w))
    X = _float64(X)
    mean_x = w @ X / weight
    mean_y = w @ Y / weight
    Xc = X - mean_x
    Yc = Y - mean_y
    Xw = Xc * w[:, None]
    return Moments(
        count=len(w),
        positive=_count_positive(w),
        weight=weight,
        mean_x=mean_x,
        mean_y=mean_y,
        cxx=Xw.T @ Xc,
        cxy=Xw.T @ Yc,
        cyy=w @ (Yc * Yc),
    )


@dataclass(frozen=True)
class Statistics:
    """Everything a fit keeps about its training rows: exactly one of ``rows`` (``(X, Y, w)``,
    ``Y`` (N, T) or (N,) class codes of one-hot targets) while there are at most ``max_rows``
    (the number of features), and ``moments``."""

    n_features: int
    n_targets: int
    max_rows: int
    rows: tuple[Array, Array, Array] | None = None
    moments: Moments | None = None

    def map(self, fn: Callable[[Array], Array]) -> Statistics:
        """These statistics with ``fn`` applied to every array (to move them to a device)."""
        if self.rows is not None:
            return replace(self, rows=tuple(fn(a) for a in self.rows))
        if self.moments is None:  # a shell without statistics (distributed_fit's header)
            return self
        return replace(self, moments=self.moments.map(fn))

    def _placement(self) -> str | None:
        """The device of the arrays if they are tensors, None if NumPy (or none held)."""
        m = self.moments
        a = self.rows[0] if self.rows is not None else None if m is None else m.cxx
        return str(a.device) if is_tensor(a) else None

    def to_numpy(self) -> Statistics:
        """These statistics in NumPy arrays (copied from a GPU)."""
        return self.map(to_host)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        if self.rows is not None:
            return nbytes_of(self.rows)
        return nbytes_of([getattr(self.moments, k) for k in _MOMENT_ARRAYS])

    def __getstate__(self) -> dict:
        return vars(self.to_numpy()).copy()

    @property
    def count(self) -> int:
        return len(self.rows[2]) if self.rows is not None else self.moments.count

    @property
    def weight(self) -> float:
        return float(self.rows[2].sum()) if self.rows is not None else self.moments.weight

    @property
    def n_rows(self) -> int:
        """Rows with a positive weight (see :attr:`Moments.positive`)."""
        return _count_positive(self.rows[2]) if self.rows is not None else self.moments.n_rows

    @classmethod
    def empty(cls, n_features: int, n_targets: int) -> Statistics:
        """No rows yet; rows are kept up to ``n_features`` of them."""
        rows = (np.zeros((0, n_features)), np.zeros((0, n_targets)), np.zeros(0))
        return cls(n_features, n_targets, max_rows=n_features, rows=rows)

    def to_moments(self) -> Moments:
        if self.moments is not None:
            return self.moments
        X, Y, w = self.rows
        return moments_from_rows(X, one_hot(Y, self.n_targets), w)

    def merge(self, other: Statistics) -> Statistics:
        """Statistics of the union of both row sets (same features and targets)."""
        if (self.n_features, self.n_targets) != (other.n_features, other.n_targets):
            raise ValueError("Cannot merge statistics of different shapes.")
        if self._placement() != other._placement():  # e.g. tensors and an unpickled copy
            self, other = self.to_numpy(), other.to_numpy()
        if self.rows is not None and self.count == 0 and self.max_rows == other.max_rows:
            return other  # nothing kept yet: no copy of its rows, no d x d zeros
        if self.rows is not None and other.rows is not None:
            if self.count + other.count <= self.max_rows:
                cat = import_torch().cat if is_tensor(self.rows[0]) else np.concatenate
                rows = tuple(cat([a, b]) for a, b in zip(self.rows, other.rows, strict=True))
                return replace(self, rows=rows)
        return replace(self, rows=None, moments=self.to_moments().merge(other.to_moments()))

    def with_targets(self, n_targets: int, columns: np.ndarray) -> Statistics:
        """Re-index the target columns: old column ``j`` becomes column ``columns[j]``, new
        ones are zero (how ``partial_fit`` learns classes as they arrive)."""

        def spread(a: Array, axis: int) -> Array:
            shape = list(a.shape)
            shape[axis] = n_targets
            out = a.new_zeros(shape) if is_tensor(a) else np.zeros(shape)
            index = [slice(None)] * a.ndim
            index[axis] = columns if not is_tensor(a) else a.new_tensor(columns).long()
            out[tuple(index)] = a
            return out

        if self.rows is not None:
            X, Y, w = self.rows
            if Y.ndim == 1:  # class codes: renumbered
                Y = Y.new_tensor(columns)[Y.long()] if is_tensor(Y) else columns[Y.astype(np.intp)]
                return replace(self, n_targets=n_targets, rows=(X, _float64(Y), w))
            return replace(self, n_targets=n_targets, rows=(X, spread(Y, 1), w))
        m = self.moments
        return replace(
            self,
            n_targets=n_targets,
            moments=replace(
                m,
                mean_y=spread(m.mean_y, 0),
                cxy=spread(m.cxy, 1),
                cyy=spread(m.cyy, 0),
            ),
        )
