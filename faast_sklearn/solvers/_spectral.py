"""Regularised least squares from sufficient statistics, through one eigendecomposition.

With ``A = V diag(s) V^T`` (kept eigenpairs) and ``P = V^T B``, every regulariser is a filter
``f(s)`` on the spectrum (ridge ``1 / (s + alpha)``, truncation below ``rtol**2 s_max``) and
``W = V diag(f) P``; the RSS and ``df`` of any filter, hence GCV over a whole grid, follow at
O(k D) (derivation: the user guide's :ref:`method`). GCV's sample size ``n`` counts the rows
of positive weight, never the total weight, so that scaling every weight changes nothing and
the count adds up across batches. Few-shot (rows kept, N <= d), ``s``, ``V`` and ``P`` come
from the N x N kernel ``K = Xs Xs^T = U diag(s) U^T``; ``V`` is never formed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._backends import Backend
from ._stats import Array, Statistics, one_hot

# Strengths searched by alpha="auto", relative to the mean eigenvalue trace(A) / d, i.e. to the
# typical per-feature sum of squares. scikit-learn's alpha=1 on standardised data is 1/N there.
AUTO_GRID = np.logspace(-8, 3, 56)

_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Spectrum:
    """The eigen-representation of a least-squares problem (see the module docstring)."""

    s: np.ndarray  # (k,) kept eigenvalues
    # Arrays of size d x k or N x d are the backend's native arrays (on its device); the rest,
    # of size k x D at most, are NumPy.
    V: Array | None  # (d, k) orthonormal eigenvectors (primal), or None (kernel side)
    P: np.ndarray  # (k, D) projections of the cross-products
    rss_perp: np.ndarray  # (D,) residual outside the span of the features
    trace: float  # trace(A), for the scale of alpha="auto"
    n: float  # total weight W
    mean_x: np.ndarray  # (d,) zero without an intercept
    mean_y: np.ndarray  # (D,) zero without an intercept
    fit_intercept: bool
    # Kernel side: V = Xs^T (U s^-1/2) is never formed (that costs d N^2); V @ M is computed
    # as Xs^T ((U s^-1/2) @ M), d N D.
    Xs: Array | None = None
    U_scaled: Array | None = None
    n_rows: int = 0  # rows with a positive weight (GCV's sample size)

    @property
    def n_features(self) -> int:
        return int(self.V.shape[0] if self.V is not None else self.Xs.shape[1])

    def expand(self, M: np.ndarray, backend: Backend) -> np.ndarray:
        """``V @ M``: spectral coefficients (k, D) to feature-space weights (d, D)."""
        if self.V is not None:
            return backend.matmul(self.V, M)
        return backend.matmul(self.Xs.T, backend.asarray(self.U_scaled) @ backend.asarray(M))


@dataclass(frozen=True)
class Solution:
    coef: np.ndarray  # (d, D)
    intercept: np.ndarray  # (D,)
    alpha: float
    alphas: np.ndarray
    gcv_scores: np.ndarray
    rank: int  # number of spectral components used
    error_variance: np.ndarray  # (D,) GCV estimate of the out-of-sample squared error


def no_rows_solution(n_features: int, n_targets: int, alpha) -> Solution:
    """The solution before any row: zero coefficients (a prior alone predicts), error variance
    ``1 / n_targets``, and ``alpha`` NaN unless a single one is given."""
    alphas = np.zeros(0) if isinstance(alpha, str) else np.atleast_1d(alpha).astype(np.float64)
    return Solution(
        coef=np.zeros((n_features, n_targets)),
        intercept=np.zeros(n_targets),
        alpha=float(alphas[0]) if len(alphas) == 1 else float("nan"),
        alphas=alphas,
        gcv_scores=np.full(len(alphas), np.inf),
        rank=0,
        error_variance=np.full(n_targets, 1.0 / n_targets),
    )


def _first_kept(s: np.ndarray, shape: tuple[int, int]) -> int:
    """Index of the first eigenvalue (ascending ``s``) above eps * s_max * size, the rank
    tolerance of :func:`numpy.linalg.matrix_rank`: the kept eigenpairs are a suffix."""
    if not len(s):
        return 0
    tol = s[-1] * max(shape) * _EPS
    return int(s.searchsorted(tol, side="right"))


def spectrum(
    stats: Statistics,
    backend: Backend,
    *,
    fit_intercept: bool,
    embedding: np.ndarray | None = None,
) -> Spectrum:
    """Eigen-representation of the statistics; ``embedding`` (T x D), for one-hot class
    statistics only, maps class columns to the targets regressed (``Y @ embedding``)."""
    if stats.rows is not None:
        return _spectrum_from_rows(stats, backend, fit_intercept, embedding)
    return _spectrum_from_moments(stats, backend, fit_intercept, embedding)


def _spectrum_from_rows(stats, backend, fit_intercept, embedding):
    X, Y, w = stats.rows
    # Centred and weighted where they live, in one N x d temporary (the float64 copy, edited
    # in place): in a few-shot fit each temporary costs as much as its arithmetic.
    Xs, Ys = backend.asarray(X), backend.asarray(one_hot(Y, stats.n_targets))
    own = Xs.dtype != X.dtype  # a converted copy, not stats' own rows: ours to overwrite
    if embedding is not None:
        Ys = Ys @ backend.asarray(embedding)
    wd, w = backend.asarray(w), backend.to_numpy(w)  # w's sums are needed on the host: once
    n = float(w.sum())
    if fit_intercept:
        mean_xd, mean_yd = (wd @ Xs) / n, (wd @ Ys) / n
        if own:
            Xs -= mean_xd
        else:
            Xs, own = Xs - mean_xd, True
        Ys = Ys - mean_yd
        mean_x, mean_y = backend.fetch(mean_xd, mean_yd)
    else:
        mean_x, mean_y = np.zeros(X.shape[1]), np.zeros(Ys.shape[1])
    if not (w == 1.0).all():  # sqrt(w) on both sides
        root = wd[:, None] ** 0.5
        if own:
            Xs *= root
        else:
            Xs = Xs * root
        Ys = Ys * root
    # The kernel is a fresh array: the eigendecomposition may overwrite it.
    evals, U = backend.eigh(backend.gram(Xs), overwrite=True)
    s = backend.to_numpy(evals)
    trace = float(s.sum())  # trace(Xs^T Xs) = trace(K), the sum of all its eigenvalues
    first = _first_kept(s, X.shape)
    s, U, root_s = s[first:], U[:, first:], evals[first:] ** 0.5
    UtY = U.T @ Ys
    resid = Ys - U @ UtY
    P, rss_perp = backend.fetch(root_s[:, None] * UtY, (resid * resid).sum(0))
    return Spectrum(
        s=s,
        V=None,
        Xs=Xs,
        U_scaled=U / root_s,
        P=P,
        rss_perp=rss_perp,
        trace=trace,
        n=n,
        mean_x=mean_x,
        mean_y=mean_y,
        fit_intercept=fit_intercept,
        n_rows=int(np.count_nonzero(w > 0)),
    )


def _spectrum_from_moments(stats, backend, fit_intercept, embedding):
    m = stats.to_moments()
    n = m.weight
    # d x d and d x T stay native (on the device); vectors come to the host in one transfer.
    A, B = backend.asarray(m.cxx), backend.asarray(m.cxy)
    mean_x, mean_y, yy = backend.fetch(*(backend.asarray(a) for a in (m.mean_x, m.mean_y, m.cyy)))
    if embedding is not None:
        # One-hot class statistics: sum_i w_i y_ic y_ic' = diag(class weights), so the
        # embedded targets' centred sums of squares follow from the class weights alone.
        class_weight = mean_y * n
        mean_y = mean_y @ embedding
        B = B @ backend.asarray(embedding)
        yy = class_weight @ (embedding * embedding) - n * mean_y * mean_y
    if not fit_intercept:
        # Raw (uncentred) statistics: A + n m m^T etc. (addition, no cancellation).
        mx = backend.asarray(mean_x)
        A = A + n * (mx[:, None] * mx[None, :])
        B = B + n * (mx[:, None] * backend.asarray(mean_y)[None, :])
        yy = yy + n * mean_y * mean_y
        mean_x, mean_y = np.zeros_like(mean_x), np.zeros_like(mean_y)
    evals, Q = backend.eigh(A)
    # Projections on every eigenvector, fetched with the eigenvalues in one transfer; the
    # numerically absent directions are dropped afterwards.
    s, P, trace = backend.fetch(evals, Q.T @ B, A.diagonal().sum())
    first = _first_kept(s, A.shape)
    s, V, P = s[first:], Q[:, first:], P[first:]
    # Cancellation in yy - sum P^2/s only affects this constant of the GCV curve.
    rss_perp = np.maximum(yy - ((P * P) / s[:, None]).sum(0), 0.0)
    return Spectrum(
        s=s,
        V=V,
        P=P,
        rss_perp=rss_perp,
        trace=float(trace),
        n=n,
        mean_x=mean_x,
        mean_y=mean_y,
        fit_intercept=fit_intercept,
        n_rows=stats.n_rows,
    )


def solve(
    spec: Spectrum, backend: Backend, *, alpha, rtol: float | None, criterion=None
) -> Solution:
    """Coefficients for ``alpha`` ("auto", a float or an array of floats, chosen by GCV).

    ``criterion(spec, alphas, fitted)``, if given, scores every strength instead (lower is
    better; ``fitted`` is ``s_k f_k``, (L, k)); returning None leaves the choice to GCV.
    """
    s, P = spec.s, spec.P
    d = spec.n_features
    keep = s > rtol * rtol * s[-1] if rtol is not None and len(s) else None  # None: all
    if isinstance(alpha, str):  # "auto"
        scale = spec.trace / d if spec.trace > 0 else 1.0
        alphas = scale * AUTO_GRID
    else:
        alphas = np.sort(np.atleast_1d(np.asarray(alpha, dtype=np.float64)))
    # s_k f_k for every strength at once, (L, k): the filters themselves are only needed
    # at the chosen strength (each (L, k) pass costs ~20 us at k = 768 on a server core).
    fitted = s / (s + alphas[:, None]) if len(s) else np.zeros((len(alphas), 0))
    if keep is not None:
        fitted *= keep
    df = fitted.sum(1) + spec.fit_intercept
    energy = (P * P) / s[:, None] if len(s) else np.zeros((0, P.shape[1]))  # (k, D)
    shrink = 1.0 - fitted
    shrink *= shrink  # (1 - s_k f_k)^2, (L, k)
    rss = spec.rss_perp.sum() + shrink @ energy.sum(1)  # (L,)
    n, rows = spec.n, spec.n_rows
    dof = 1.0 - df / rows if rows else np.zeros_like(df)  # residual dof per row
    gcv = np.divide(rss / n, dof * dof, out=np.full(len(alphas), np.inf), where=dof > 1e-9)
    scores = criterion(spec, alphas, fitted) if criterion is not None else None
    if scores is None or not np.isfinite(scores).any():
        scores = gcv
    # Ties (flat or all-infinite curves) go to the strongest regularisation.
    best = len(alphas) - 1 - int(scores[::-1].argmin())
    f = fitted[best] / s if len(s) else fitted[best]
    coef = spec.expand(f[:, None] * P, backend) if len(s) else np.zeros((d, P.shape[1]))
    intercept = spec.mean_y - spec.mean_x @ coef
    # Per target, GCV's estimate of the squared error on new rows, (RSS / W) / (1 - df / n)^2.
    rss_t = spec.rss_perp + shrink[best] @ energy
    if math.isfinite(gcv[best]):
        error = rss_t / n / dof[best] ** 2  # GCV's own estimate, per target
    else:
        # No strength leaves residual degrees of freedom (one row, say): fall back on the
        # targets' variance, the error of predicting their mean.
        error = (spec.rss_perp + energy.sum(0)) / max(n, 1e-300)
    return Solution(
        coef=coef,
        intercept=intercept,
        alpha=float(alphas[best]),
        alphas=alphas,
        gcv_scores=gcv,
        rank=len(s) if keep is None else int(keep.sum()),
        error_variance=error,
    )
