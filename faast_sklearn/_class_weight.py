"""Class weights (``class_weight=None | "balanced" | mapping``), exact in a stream.

A class weight ``k_c`` multiplies the ``sample_weight`` of every row of class ``c``, as
scikit-learn's ``RidgeClassifier`` does (``sample_weight * compute_sample_weight(...)``).
``"balanced"`` is ``k_c = n / (n_classes n_c)`` with ``n_c`` the (unweighted) count of class
``c`` and ``n_classes`` the number of classes present, as
:func:`sklearn.utils.class_weight.compute_class_weight`.

A mapping is fixed: its factors are applied to each batch's weights as it arrives. The
balanced factors change with every batch of a stream, and the weighted statistics cannot be
re-weighted after they are merged: the Gram matrix ``sum_c k_c S_c`` needs each class's own
scatter ``S_c``. A ``"balanced"`` stream therefore keeps one set of statistics per class (the
rows while few, then a d x d moment matrix per class: ``n_classes`` times the memory of one
fit's statistics) and combines them with the current factors at the solve, so that
``partial_fit`` over any split equals ``fit`` to round-off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from .solvers import Statistics
from .utils._torch import is_tensor


def mapping_factors(class_weight: Mapping, classes: np.ndarray, *, strict: bool) -> np.ndarray:
    """Factor of each of ``classes`` from a ``label -> weight`` mapping (1 if absent).

    ``strict`` (fit): every key must be one of ``classes``, as scikit-learn requires.
    """
    factors = np.ones(len(classes))
    unknown = []
    for label, weight in class_weight.items():
        pos = np.flatnonzero(classes == label)
        if not len(pos):
            unknown.append(label)
            continue
        weight = float(weight)
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(
                f"class_weight[{label!r}] must be a finite non-negative number; got {weight!r}."
            )
        factors[pos[0]] = weight
    if strict and unknown:
        raise ValueError(
            f"The classes {unknown!r} of class_weight are not among the labels of y "
            f"({classes[:10].tolist()}{'...' if len(classes) > 10 else ''})."
        )
    return factors


def balanced_factors(counts: np.ndarray) -> np.ndarray:
    """``n / (n_classes n_c)`` for the classes present, 0 (unused) for absent ones."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    factors = np.zeros(len(counts))
    factors[present] = counts.sum() / (present.sum() * counts[present])
    return factors


def scaled(stats: Statistics, factor: float) -> Statistics:
    """The statistics of the same rows with every weight multiplied by ``factor``."""
    if stats.rows is not None:
        X, Y, w = stats.rows
        return replace(stats, rows=(X, Y, w * factor))
    m = stats.moments
    return replace(
        stats,
        moments=replace(
            m, weight=m.weight * factor, cxx=m.cxx * factor, cxy=m.cxy * factor, cyy=m.cyy * factor
        ),
    )


def split_by_class(batch_statistics, X, codes, w, n_targets) -> dict[int, Statistics]:
    """Statistics of each class's rows of one batch, keyed by class code.

    ``batch_statistics(X, codes, w, n_targets)`` builds one set (the estimator's own rule).
    """
    out = {}
    for c in np.unique(codes):
        idx = np.flatnonzero(codes == c)
        if is_tensor(X):
            import torch

            Xc = X[torch.as_tensor(idx, device=X.device)]
        else:
            Xc = X[idx]
        out[int(c)] = batch_statistics(Xc, codes[idx], w[idx], n_targets)
    return out


def merge_class_statistics(old, new, n_targets, columns, n_features):
    """Per-class statistics after a batch: ``old`` re-indexed by ``columns``, then merged."""
    merged = {}
    if old is not None:
        for c, st in old.items():
            c_new = int(c if columns is None else columns[c])
            merged[c_new] = st if columns is None else st.with_targets(n_targets, columns)
    for c, st in new.items():
        base = merged.get(c, Statistics.empty(n_features, n_targets))
        merged[c] = base.merge(st)
    return merged


def combine(class_stats: dict[int, Statistics], n_targets: int) -> Statistics:
    """The balanced statistics: each class's statistics scaled by its current factor."""
    codes = sorted(class_stats)
    counts = np.zeros(n_targets)
    for c in codes:
        counts[c] = class_stats[c].count
    factors = balanced_factors(counts)
    total = None
    for c in codes:
        part = scaled(class_stats[c], factors[c])
        total = part if total is None else total.merge(part)
    return total
