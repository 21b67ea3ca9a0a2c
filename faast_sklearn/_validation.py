"""Validation of the features and weights a fit or a prediction receives."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.utils.validation import _check_sample_weight, validate_data

from ._guards import check_finite
from .utils._torch import import_torch, is_tensor, to_host

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def validate_features(est, X, *, reset: bool, finite: bool = True, empty: bool = False):
    """2-D float features, through ``validate_data`` or (a tensor, a plain 2-D float array)
    :func:`_validate_unnamed`; ``finite=False``: NaN and infinity are left to
    :func:`._guards.check_rows`; ``empty``: zero rows are accepted."""
    ndim = getattr(X, "ndim", None)
    if ndim is not None and ndim >= 3:
        raise ValueError(
            f"X has {ndim} dimensions (shape {tuple(X.shape)}): without a backbone, "
            f"{type(est).__name__} expects a 2-D feature matrix (n_samples, n_features). "
            "Pass backbone=... (for example backbone='efficientnet_lite0') to fit on images."
        )
    if is_tensor(X) or (
        type(X) is np.ndarray and X.ndim == 2 and X.size and X.dtype in _FLOAT_DTYPES
    ):
        return _validate_unnamed(est, X, reset=reset, finite=finite, empty=empty)
    return validate_data(
        est,
        X,
        reset=reset,
        dtype=[np.float64, np.float32],
        ensure_min_samples=int(not empty),
        ensure_all_finite=finite,
    )


def _validate_unnamed(est, X, *, reset: bool, finite: bool, empty: bool = False):
    """``validate_data`` for a torch tensor or a non-empty 2-D float NumPy array, which carry
    no feature names: skipping the dataframe probes is 40% of a one-shot fit (0.32 against
    0.56 ms, min of 101 on 2 cores; benchmarks/results/removed-cpu-2core.json)."""
    name = type(est).__name__
    if is_tensor(X):
        torch = import_torch()
        if X.ndim != 2:
            raise ValueError(
                f"Expected a 2-D tensor (n_samples, n_features), got shape {tuple(X.shape)}."
            )
        if X.shape[0] == 0 and not empty:
            raise ValueError(
                f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a "
                f"minimum of 1 is required by {name}."
            )
        if X.shape[1] == 0:
            raise ValueError(
                f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a "
                f"minimum of 1 is required by {name}."
            )
        if X.is_complex():
            raise ValueError("Complex data not supported.")
        if X.dtype not in (torch.float32, torch.float64):
            X = X.float()
    if finite:
        check_finite(X)  # where X lives
    if reset:
        est.n_features_in_ = int(X.shape[1])
        est.__dict__.pop("feature_names_in_", None)
        return X
    if X.shape[1] != est.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {name} is expecting "
            f"{est.n_features_in_} features as input."
        )
    if "feature_names_in_" in est.__dict__:
        warnings.warn(
            f"X does not have valid feature names, but {name} was fitted with feature names",
            UserWarning,
            stacklevel=3,
        )
    return X


def validate_weights(sample_weight, X) -> np.ndarray:
    """``sample_weight`` as non-negative float64 of one per row (ones when None)."""
    if sample_weight is None:
        return np.ones(X.shape[0])
    w, empty = to_host(sample_weight), np.empty((X.shape[0], 0))
    w = _check_sample_weight(w, empty, dtype=np.float64, ensure_non_negative=True)
    if len(w) and w.sum() == 0:
        raise ValueError(
            "sample_weight is zero for every sample: at least one sample needs a positive weight."
        )
    return w
