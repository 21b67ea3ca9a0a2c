"""Sufficient statistics of weighted least squares, and their exact merging.

A fit needs only these statistics of the rows ``(x_i, y_i, w_i)``:

- ``weight = sum_i w_i`` and the weighted means ``mean_x``, ``mean_y``;
- the centred co-moments ``cxx = sum_i w_i (x_i - mean_x)(x_i - mean_x)^T`` (d x d),
  ``cxy = sum_i w_i (x_i - mean_x)(y_i - mean_y)^T`` (d x T) and the diagonal
  ``cyy = sum_i w_i (y_i - mean_y)**2`` (T,).

Keeping them centred (rather than raw sums such as ``X^T X``) avoids the cancellation of
``X^T X - n m m^T`` when features have large means, and two sets of statistics merge exactly
(Chan, Golub & LeVeque, 1979)::

    W = Wa + Wb,  delta = mean_b - mean_a
    cxx = cxx_a + cxx_b + (Wa Wb / W) delta_x delta_x^T          (and likewise cxy, cyy)

so ``partial_fit`` over any split of the rows equals ``fit`` on all of them to float64
round-off, in O(d^2 + d T) memory. While there are at most ``max_rows`` rows (few-shot: N <= d),
the rows themselves are kept instead: they cost no more memory than ``cxx`` and allow the
N x N kernel-side solve, which is far cheaper than a d x d eigendecomposition there.
Everything here is NumPy on the CPU: moments in float64, kept rows in their input precision
(a float32 row is exact in float64; the arithmetic on them is float64).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Moments:
    """Centred weighted moments of a set of rows (see the module docstring)."""

    count: int
    weight: float
    mean_x: np.ndarray
    mean_y: np.ndarray
    cxx: np.ndarray
    cxy: np.ndarray
    cyy: np.ndarray

    @classmethod
    def empty(cls, n_features: int, n_targets: int) -> Moments:
        return cls(
            count=0,
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
        weight = self.weight + other.weight
        frac = other.weight / weight
        dx = other.mean_x - self.mean_x
        dy = other.mean_y - self.mean_y
        scale = self.weight * frac  # Wa Wb / W
        return Moments(
            count=self.count + other.count,
            weight=weight,
            mean_x=self.mean_x + frac * dx,
            mean_y=self.mean_y + frac * dy,
            cxx=self.cxx + other.cxx + scale * np.outer(dx, dx),
            cxy=self.cxy + other.cxy + scale * np.outer(dx, dy),
            cyy=self.cyy + other.cyy + scale * dy * dy,
        )


def moments_from_rows(X: np.ndarray, Y: np.ndarray, w: np.ndarray) -> Moments:
    """Float64 moments of a small NumPy row set (the kept few-shot rows)."""
    weight = float(w.sum())
    if weight == 0:
        return replace(Moments.empty(X.shape[1], Y.shape[1]), count=len(w))
    mean_x = w @ X / weight
    mean_y = w @ Y / weight
    Xc = X - mean_x
    Yc = Y - mean_y
    Xw = Xc * w[:, None]
    return Moments(
        count=len(w),
        weight=weight,
        mean_x=mean_x,
        mean_y=mean_y,
        cxx=Xw.T @ Xc,
        cxy=Xw.T @ Yc,
        cyy=w @ (Yc * Yc),
    )


@dataclass(frozen=True)
class Statistics:
    """Everything a fit keeps about its training rows: the rows while few, else moments.

    Exactly one of ``rows`` (a tuple ``(X, Y, w)``: float32 or float64 ``X``, float64 ``Y``
    and ``w``) and ``moments`` is set.
    ``max_rows`` is the row count up to which rows are kept (the number of features: past it,
    the d x d moments are the smaller and faster representation).
    """

    n_features: int
    n_targets: int
    max_rows: int
    rows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    moments: Moments | None = None

    @property
    def count(self) -> int:
        return len(self.rows[2]) if self.rows is not None else self.moments.count

    @property
    def weight(self) -> float:
        return float(self.rows[2].sum()) if self.rows is not None else self.moments.weight

    @property
    def target_weight(self) -> np.ndarray:
        """Weighted sum of each target column (for one-hot targets: the class weights)."""
        if self.rows is not None:
            X, Y, w = self.rows
            return w @ Y
        return self.moments.mean_y * self.moments.weight

    @classmethod
    def empty(cls, n_features: int, n_targets: int) -> Statistics:
        """No rows yet; rows are kept up to ``n_features`` of them."""
        rows = (np.zeros((0, n_features)), np.zeros((0, n_targets)), np.zeros(0))
        return cls(n_features, n_targets, max_rows=n_features, rows=rows)

    def to_moments(self) -> Moments:
        if self.moments is not None:
            return self.moments
        return moments_from_rows(*self.rows)

    def merge(self, other: Statistics) -> Statistics:
        """Statistics of the union of both row sets (same features and targets)."""
        if (self.n_features, self.n_targets) != (other.n_features, other.n_targets):
            raise ValueError("Cannot merge statistics of different shapes.")
        if self.rows is not None and self.count == 0 and self.max_rows == other.max_rows:
            return other  # nothing kept yet: no copy of its rows, no d x d zeros
        if self.rows is not None and other.rows is not None:
            if self.count + other.count <= self.max_rows:
                rows = tuple(
                    np.concatenate([a, b]) for a, b in zip(self.rows, other.rows, strict=True)
                )
                return replace(self, rows=rows)
        return replace(self, rows=None, moments=self.to_moments().merge(other.to_moments()))

    def with_targets(self, n_targets: int, columns: np.ndarray) -> Statistics:
        """Re-index the target columns: old column ``j`` becomes column ``columns[j]``.

        The new columns are exactly zero for every earlier row (a class not yet seen has a
        zero one-hot entry), so this is how ``partial_fit`` learns classes as they arrive.
        """

        def spread(a: np.ndarray, axis: int) -> np.ndarray:
            shape = list(a.shape)
            shape[axis] = n_targets
            out = np.zeros(shape)
            index = [slice(None)] * a.ndim
            index[axis] = columns
            out[tuple(index)] = a
            return out

        if self.rows is not None:
            X, Y, w = self.rows
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
