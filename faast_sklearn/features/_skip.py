"""Image files left out on request (``FeatureExtractor(on_error="skip")``): the warning that
names them, and the estimators' dropping of their rows with ``y`` and ``sample_weight``."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..utils._content_key import content_key
from ..utils._torch import import_torch, is_tensor


def warn_skipped(source: Any) -> None:
    skipped = getattr(source, "skipped", None)
    if skipped:
        first = ", ".join(f"X[{i}] = {p!r} ({why})" for i, p, why in sorted(skipped)[:3])
        warnings.warn(
            f"Skipped {len(skipped)} image file(s) that could not be read (on_error='skip'), "
            f"e.g. {first}. Their rows are NaN; an estimator's fit drops them with their y.",
            UserWarning,
            stacklevel=4,
        )


def drop_skipped(backbone: Any, X: Any, y: Any, sample_weight: Any, key: bytes | None):
    """``(X, y, sample_weight, key)`` without the rows of image files that a
    ``FeatureExtractor(on_error="skip")`` backbone skipped (NaN rows of the features ``X``);
    unchanged for any other backbone."""
    if getattr(backbone, "on_error", None) != "skip":  # a FeatureExtractor asked to skip
        return X, y, sample_weight, key
    from sklearn.utils import _safe_indexing

    first = X[:, 0]
    bad = (first.isnan().cpu().numpy() if is_tensor(X) else np.isnan(first)).astype(bool)
    if not bad.any():
        return X, y, sample_weight, key
    if bad.all():
        raise ValueError("Every image file was skipped (on_error='skip'): nothing to fit.")
    keep = np.flatnonzero(~bad)
    X = X[import_torch().as_tensor(keep, device=X.device)] if is_tensor(X) else X[keep]
    if y is not None:
        y = _safe_indexing(y, keep)
    if sample_weight is not None:
        sample_weight = _safe_indexing(sample_weight, keep)
    key = None if key is None else content_key(key, "rows kept", keep)
    return X, y, sample_weight, key
