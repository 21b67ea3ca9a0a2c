"""Guards of the fit path: batches whose statistics would leave float64, and the estimator lock.

A finite batch can still overflow its second moments (X at 1e200) and poison a stream: a
batch is refused before its statistics exist when a bound on them leaves float64's range,
and its statistics are checked (finite) before and after they are merged; a refused batch
changes nothing (:meth:`_BaseFAAST._fit_batch` restores the estimator).
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

from .solvers import Statistics
from .solvers._stats import _MOMENT_ARRAYS
from .utils._torch import is_tensor

# log10 of the largest statistic allowed (float64 overflows past 1.8e308; the headroom covers
# the merges and the eigendecomposition's own products).
_MAX_LOG10 = 300.0
# log10 of the smallest square of the largest |x| allowed: below it (|x| < 1e-140) every
# product of two features is subnormal or zero and the spectrum is noise.
_MIN_LOG10 = -280.0


def _abs_max(a) -> float:
    """``max |a|``, NaN when ``a`` holds a NaN (one pass, no temporary; a tensor: one sync);
    0 for no entries."""
    if (a.numel() if is_tensor(a) else a.size) == 0:
        return 0.0
    if is_tensor(a):
        lo, hi = a.aminmax()
        return float(lo.abs().maximum(hi.abs()))
    return float(max(abs(float(a.max())), abs(float(a.min()))))


def check_finite(X) -> float:
    """``max |X|``, after a ValueError if ``X`` holds a NaN or an infinity."""
    amax = _abs_max(X)
    if not math.isfinite(amax):
        bad = ~(X.isfinite() if is_tensor(X) else np.isfinite(X))
        rows = bad.reshape(len(X), -1).any(1)
        rows = rows.cpu().numpy() if is_tensor(rows) else rows
        i = int(np.flatnonzero(rows)[0])
        row = X[i].reshape(-1)
        row = row.float().cpu().numpy() if is_tensor(row) else row
        j = int(np.flatnonzero(~np.isfinite(row))[0])
        raise ValueError(
            f"Input X contains NaN or infinity: {int(rows.sum())} row(s), the first row {i} "
            f"({row[j]} in column {j})."
        )
    return amax


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else -math.inf


# Weights (their largest) within a factor 1e100 of 1: the solve squares products of the
# statistics, which scale with the weights (1e160 overflowed, 1e-200 underflowed).
_MIN_WEIGHT = 1e-100


def check_rows(X, targets, w: np.ndarray) -> None:
    """Refuse a batch with NaN or infinity in ``X`` or whose statistics would overflow (or
    underflow) float64, checked where ``X`` lives. The bound, in log10: ``4 max|x|^2 sum(w)``
    per moment, ``max(N, d)`` times that for their sums; dense targets likewise."""
    scales = {"X": check_finite(X)}
    weight = float(w.sum())
    if not math.isfinite(weight):
        raise ValueError(
            "sample_weight sums to infinity in float64: this batch would overflow the "
            "statistics. Rescale sample_weight (only ratios between weights matter for "
            "alpha='auto')."
        )
    largest = float(w.max()) if len(w) else 0.0
    if largest and not _MIN_WEIGHT <= largest <= 1.0 / _MIN_WEIGHT:
        raise ValueError(
            f"The largest sample_weight is {largest:.3g}, outside [{_MIN_WEIGHT:.0e}, "
            f"{1 / _MIN_WEIGHT:.0e}]: squares of the statistics would overflow or underflow "
            "float64. The batch was refused and the estimator left as it was; rescale "
            "sample_weight (only ratios between weights matter for alpha='auto')."
        )
    size = math.log10(4.0 * max(X.shape[0], X.shape[1])) + _log10(weight)
    if getattr(targets, "ndim", 1) == 2 and np.issubdtype(
        np.asarray(targets[:0]).dtype, np.floating
    ):
        scales["y"] = _abs_max(targets)
    for name, amax in scales.items():
        if 2 * _log10(amax) + size > _MAX_LOG10:
            raise ValueError(
                f"This batch would overflow float64: max |{name}| = {amax:.3g} with total "
                f"sample_weight {weight:.3g} gives second moments beyond 1e{_MAX_LOG10:.0f}. "
                f"The batch was refused and the estimator left as it was; rescale {name} "
                "(for example with StandardScaler) or sample_weight."
            )
    amax = scales["X"]
    if 0 < amax and 2 * _log10(amax) < _MIN_LOG10:
        raise ValueError(
            f"X is too small for float64: max |X| = {amax:.3g}, so the products of features "
            f"underflow (below 1e{_MIN_LOG10:.0f}). Rescale X (for example with StandardScaler)."
        )


def check_statistics(stats: Statistics, what: str) -> None:
    """Raise a ValueError unless every number in ``stats`` is finite (kept rows were checked
    already: only their total weight is new)."""
    if stats.rows is not None:
        finite = math.isfinite(stats.weight)
    else:
        m = stats.moments
        arrays = [getattr(m, k) for k in _MOMENT_ARRAYS]
        tensors = [a for a in arrays if is_tensor(a)]
        finite = math.isfinite(m.weight)
        finite = finite and all(np.isfinite(a).all() for a in arrays if not is_tensor(a))
        if finite and tensors:  # one reduction, one sync
            flags = [a.isfinite().all().to(tensors[0].device) for a in tensors]
            finite = bool(sys.modules["torch"].stack(flags).all())
    if not finite:
        raise ValueError(
            f"The {what} overflow float64 (inf or NaN): the batch was refused and the "
            "estimator left as it was. Rescale X, y or sample_weight."
        )


_GUARD = threading.Lock()


def estimator_lock(est) -> threading.RLock:
    """The estimator's own re-entrant lock, created at first use in ``__dict__["_lock"]``;
    pickles and clones leave it out, so every copy gets its own."""
    lock = est.__dict__.get("_lock")
    if lock is None:
        with _GUARD:
            lock = est.__dict__.setdefault("_lock", threading.RLock())
    return lock
