"""Exact leave-one-out predictions for every ridge strength, and criteria on them.

With the rows kept, the kernel ``K = Xs Xs^T = U diag(s) U^T`` gives, for every strength at
once, the leverages ``h_i = sum_k U_ik^2 s_k f_k (+ w_i / n)`` and the residuals ``r_i``; the
exact leave-one-out residual is ``r_i / (sqrt(w_i) (1 - delta_i h_i / w_i))`` (Allen's PRESS,
as scikit-learn's ``_RidgeGCV``) with ``delta_i = min(w_i, u_i)``: one unit ``u_i`` of a row's
weight is left out, its class weight (1 without ``class_weight``). With moments only, GCV
decides. The criteria (``CRITERIA``) and the temperature, fitted to targets smoothed by
``_PSEUDO_ERRORS`` so that it stays finite on separable rows, are described in the user
guide (:ref:`regularisation`, :ref:`method`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from ._stats import one_hot

CRITERIA = ("gcv", "loo", "loo_error", "loo_log_loss")

# Coarse step of a long grid's leave-one-out scan (see LeaveOneOut.__call__).
_STEP = 4


def leave_one_out(Y, w, n_targets: int, kind: str, backend, unit=None) -> LeaveOneOut | None:
    """The :class:`LeaveOneOut` of the kept rows (class codes or one-hot ``Y``, weights ``w``,
    NumPy), or None where it would score no row (GCV then decides). A row alone in its class
    is not scored: with class codes, one shot per class (and no row weighing more than one
    copy of itself, ``unit``) is known without forming the one-hot targets."""
    Y, w = np.asarray(Y), np.asarray(w, dtype=np.float64)
    if Y.ndim == 1:
        rows_per_class = np.bincount(Y[w > 0].astype(np.intp))
        if rows_per_class.max(initial=0) <= 1 and (w <= (1.0 if unit is None else unit)).all():
            return None
    loo = LeaveOneOut(Y, w, n_targets, kind, backend, unit)
    return loo if loo.valid.any() else None


class LeaveOneOut:
    """Leave-one-out predictions of a kernel-side spectrum, for :func:`solve`'s ``criterion``:
    rows ``Y`` (class codes or one-hot) of weights ``w``, scored by ``kind`` (one of
    ``CRITERIA``; ``"gcv"``: only the predictions are kept), ``unit`` the weight of one copy
    of each row (its class weight; None: 1)."""

    def __init__(self, Y, w, n_targets: int, kind: str, backend, unit=None):
        self.Y = np.asarray(one_hot(Y, n_targets), dtype=np.float64)
        # Rows alone in their class (see leave_one_out) are scored with weight 0; with none
        # left, GCV decides.
        self.unit = 1.0 if unit is None else np.asarray(unit, dtype=np.float64)
        own_class = self.Y @ (w @ self.Y)
        self.valid = (w > 0) & (own_class - np.minimum(w, self.unit) > 1e-12 * own_class)
        self.w = np.where(self.valid, w, 0.0)
        self.w_fit = w
        # The temperature is fitted on the scored rows of classes of at least 3 rows: out of
        # a two-shot class, a row is predicted by a less sure one-shot model (see method.rst).
        counts = self.Y.T @ (w > 0)
        self.calibrated = self.valid & (self.Y @ counts >= 3)
        self.kind = kind
        self.backend = backend
        self.loo = {}  # grid index -> (N, D) leave-one-out predictions, once computed
        self.alphas = None
        self.spec = self.fitted = self._basis = None

    def __call__(self, spec, alphas, fitted):
        """Scores of every strength (lower is better), or None: GCV decides."""
        if spec.V is not None:
            return None
        self.spec, self.alphas, self.fitted, self._basis = spec, alphas, fitted, None
        if self.kind == "gcv" or len(alphas) == 1:
            # Nothing to choose: only the chosen strength's predictions may be needed (at).
            return None
        # A long grid is scored coarse to fine (every _STEP-th strength, then the neighbours
        # of the best): the error is smooth in log(alpha), each strength costs O(N k D).
        L = len(alphas)
        step = _STEP if L > 4 * _STEP else 1
        scores = np.full(L, np.inf)
        coarse = np.arange(0, L, step)
        if coarse[-1] != L - 1:
            coarse = np.append(coarse, L - 1)
        scores[coarse] = self._scores(coarse)
        if step > 1:
            best = int(scores.argmin())
            fine = np.arange(max(best - step + 1, 0), min(best + step, L))
            fine = fine[(fine % step != 0) & (fine != L - 1)]  # not scored yet
            scores[fine] = self._scores(fine)
        return scores

    @property
    def basis(self) -> _LooBasis:
        """Built once per spectrum, when first needed (one transfer from a GPU)."""
        if self._basis is None:
            self._basis = _LooBasis(self.spec, self.Y, self.w_fit, self.unit, self.backend)
        return self._basis

    def _scores(self, idx):
        if self.kind == "loo":  # from the residuals: no predictions formed
            return self.basis.squared_error(self.fitted[idx], self.w)
        return _score(self.kind, self._predict(idx), self.Y, self.w)

    def _predict(self, idx):
        loo = self.basis.predictions(self.fitted[idx], self.Y)
        self.loo.update(zip(idx.tolist(), loo, strict=True))
        return loo

    def at(self, alpha: float) -> np.ndarray | None:
        """Leave-one-out predictions (N, D) at the chosen strength (None: not available)."""
        if self.alphas is None:
            return None
        i = int(np.argmin(np.abs(self.alphas - alpha)))
        if i not in self.loo:
            self._predict(np.array([i]))
        return self.loo[i]

    def inverse_temperature(self, alpha: float, prior: float) -> float | None:
        """The factor on the predictions at ``alpha`` minimising the log-loss of the calibrated
        rows' leave-one-out predictions, shrunk towards ``prior`` (GCV's) as if that were
        fitted on ``n_targets`` rows (see :ref:`method`); None: no such row."""
        if not self.calibrated.any():  # checked before any prediction is computed
            return None
        loo = self.at(alpha)
        if loo is None:
            return None
        w = np.where(np.isfinite(loo).all(1) & self.calibrated, self.w, 0.0)
        if not w.any():
            return None
        beta = max(float(fit_inverse_temperature(loo, self.Y, w)), 1e-12)
        n, n0 = float(np.count_nonzero(w)), float(self.Y.shape[1])
        return float(np.exp((n * np.log(beta) + n0 * np.log(prior)) / (n + n0)))


class _LooBasis:
    """What every strength's leave-one-out residuals share (computed once per spectrum):
    ``U`` (N, k), ``U^T Ys`` (k, D), the residual outside the span ``perp`` (N, D), ``U^2``
    and the scale ``delta_i / w_i`` of the leverages (see the module's docstring)."""

    def __init__(self, spec, Y, w, unit, backend):
        root_s = np.sqrt(spec.s)
        self.U = backend.to_numpy(spec.U_scaled) * root_s  # (N, k)
        self.sw = np.sqrt(w)
        self.UtY = spec.P / root_s[:, None]  # U^T Ys, (k, D)
        self.perp = self.sw[:, None] * (Y - spec.mean_y) - self.U @ self.UtY
        self.U2 = (self.U * self.U).T  # (k, N)
        self.h0 = w / spec.n if spec.fit_intercept else 0.0
        self.pos = w > 0
        self.frac = np.where(self.pos, np.minimum(w, unit) / np.where(self.pos, w, 1.0), 0.0)

    def residuals(self, fitted):
        """``sqrt(w)`` times the residuals (L, N, D) and the scaled leverages ``delta h / w``
        (L, N) of every strength at once, from one GEMM."""
        h = (fitted @ self.U2 + self.h0) * self.frac
        L, (N, D) = len(fitted), self.perp.shape
        A = (1.0 - fitted).T[:, :, None] * self.UtY[:, None, :]  # (k, L, D)
        r = (self.U @ A.reshape(len(A), L * D)).reshape(N, L, D)
        r += self.perp[:, None, :]  # in place (addition commutes: the same numbers)
        return r.transpose(1, 0, 2), h

    def predictions(self, fitted, Y):
        """Leave-one-out predictions (L, N, D); NaN for a row its own fit interpolates."""
        r, h = self.residuals(fitted)
        denom = self.sw * (1.0 - h)  # (L, N)
        with np.errstate(divide="ignore", invalid="ignore"):
            loo = Y - np.where(self.pos[:, None], r / denom[:, :, None], 0.0)
        loo[(1.0 - h) <= 1e-10] = np.nan
        return loo

    def squared_error(self, fitted, w):
        """``_score("loo", predictions(fitted), Y, w)`` without forming the predictions:
        ``w_i |loo_i - y_i|^2 = |r_i|^2 / (1 - h_i)^2`` on the scored rows (``w > 0``)."""
        keep = w > 0
        r, h = self.residuals(fitted)
        if not keep.all():
            r, h = r[:, keep], h[:, keep]
        g = 1.0 - h
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = ((r * r).sum(2) / (g * g)).sum(1) / w.sum()
        return np.where((g > 1e-10).all(1) & np.isfinite(out), out, np.inf)


def _score(kind, loo, Y, w):
    n = w.sum()
    loo, Y, w = _scored(loo, Y, w)
    finite = np.isfinite(loo).all(axis=(1, 2))
    if not finite.all():
        loo = np.nan_to_num(loo)
    sq = ((loo - Y) ** 2).sum(2) @ w / n  # (L,)
    if kind == "loo":
        out = sq
    elif kind == "loo_error":
        wrong = loo.argmax(2) != Y.argmax(1)
        rel = sq / max(sq[finite].max(initial=0.0), 1e-300)
        out = (wrong @ w) / n + 1e-6 * rel
    else:
        beta = fit_inverse_temperature(loo, Y, w)
        # No better than chance (beta = 0): exactly log(C), so that such strengths tie
        # exactly and the strongest of them is chosen.
        out = np.where(beta > 0, _log_loss(beta[:, None, None] * loo, Y, w), np.log(Y.shape[1]))
    return np.where(finite, out, np.inf)


def _scored(z, Y, w):
    """``z[:, w > 0]``, ``Y[w > 0]`` and ``w[w > 0]`` (as they are when every row is)."""
    pos = w > 0
    if pos.all():
        return z, Y, w
    return z[:, pos], Y[pos], w[pos]


def _log_loss(z, Y, w):
    return -(log_softmax(z, axis=-1) * Y).sum(-1) @ w / w.sum()


# Pseudo-errors added to the temperature's targets, in rows (see the module's docstring).
_PSEUDO_ERRORS = 0.1


def smoothed_targets(Y: np.ndarray, n: int) -> np.ndarray:
    """One-hot ``Y`` with ``eps = _PSEUDO_ERRORS / (n + 1)`` of each row's mass spread over
    the other classes (the temperature's targets; see the module's docstring)."""
    C = Y.shape[1]
    if C < 2:
        return Y
    eps = _PSEUDO_ERRORS / (n + 1)
    return (1.0 - eps) * Y + eps * (1.0 - Y) / (C - 1)


def fit_inverse_temperature(z, Y, w, n_iter: int = 100) -> np.ndarray:
    """``beta >= 0`` minimising the weighted cross-entropy of ``softmax(beta z)`` against the
    smoothed one-hot ``Y`` (Newton, per leading index of ``z``: (L, N, D) -> (L,); (N, D) ->
    scalar array); 0 without iterating where the slope at 0 is not negative."""
    single = z.ndim == 2
    z = z[None] if single else z
    if not np.isfinite(z).all():
        z = np.nan_to_num(z)
    z, Y, w = _scored(z, Y, w)
    # Shifting a row changes neither softmax(beta z) nor its derivatives in beta: with each
    # row's maximum at 0, exp(beta z) cannot overflow.
    z = z - z.max(-1, keepdims=True)
    T = smoothed_targets(Y, len(w))
    zy = (z * T).sum(-1)  # (L, N)
    n = w.sum()
    beta = np.zeros(len(z))
    on = (z.mean(-1) - zy) @ w / n < 0  # the slope at beta = 0
    if not on.any():
        return beta[0] if single else beta
    z, zy = z[on], zy[on]
    b = 1.0 / np.maximum(z.std(-1) @ w / n, 1e-12)  # log-odds of order one
    for _ in range(n_iter):
        e = np.exp(b[:, None, None] * z)
        pz = e / e.sum(-1, keepdims=True) * z
        mean = pz.sum(-1)
        grad = (mean - zy) @ w / n
        hess = ((pz * z).sum(-1) - mean * mean) @ w / n
        new = np.minimum(np.maximum(b - grad / np.maximum(hess, 1e-300), b / 4), b * 4)
        done = (np.abs(new - b) <= 1e-11 * b).all()
        b = new
        if done:
            break
    beta[on] = b
    return beta[0] if single else beta
