"""Class weights (``class_weight=None | "balanced" | mapping``), exact in a stream.

A class weight multiplies ``sample_weight`` as in scikit-learn's ``RidgeClassifier``. The
balanced factors change with every batch, and merged statistics cannot be re-weighted: a
``"balanced"`` stream keeps one set of statistics per class and combines them with the current
factors at the solve, so that ``partial_fit`` over any split equals ``fit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import reduce

import numpy as np

from ._fit import batch_statistics
from .solvers import Statistics
from .utils._torch import import_torch, is_tensor


def row_weights(class_weight, codes, w, state: dict, *, partial: bool) -> np.ndarray:
    """``w`` times each row's class weight; a ``"balanced"`` stream's weights are applied at
    the solve instead (:func:`accumulate`, :func:`combine`)."""
    if class_weight is None:
        return w
    if state["_multilabel"]:
        raise ValueError("class_weight is not supported with multilabel targets.")
    if partial and not isinstance(class_weight, Mapping):
        return w
    return w * _factors(class_weight, codes, state["classes_"], strict=not partial)[codes]


def row_factors(class_weight, targets: np.ndarray, classes: np.ndarray) -> np.ndarray | None:
    """Each kept row's class weight (None without ``class_weight``): the weight of one copy
    of the row for leave-one-out. ``targets``: the rows' class codes or one-hot targets
    (NumPy); ``"balanced"`` counts them, as :func:`row_weights` does in ``fit``."""
    if class_weight is None:
        return None
    codes = np.asarray(targets)
    codes = (codes.argmax(1) if codes.ndim == 2 else codes).astype(np.intp)
    return _factors(class_weight, codes, classes, strict=False)[codes]


def _factors(class_weight, codes: np.ndarray, classes: np.ndarray, *, strict: bool):
    """The factor of each of ``classes``: from a mapping, or balanced over ``codes``."""
    if isinstance(class_weight, Mapping):
        return mapping_factors(class_weight, classes, strict=strict)
    return balanced_factors(np.bincount(codes, minlength=len(classes)))


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


def accumulate(backend, X, codes, w, n_targets: int, old, columns) -> dict[int, Statistics]:
    """Per-class statistics after a batch: ``old`` (re-indexed by ``columns`` when classes
    arrived, on ``backend``'s device; None: a stream begun without them), merged with each
    class's rows of the batch."""
    if old is None:
        raise ValueError(
            "class_weight='balanced' was set in the middle of a stream: call fit, or "
            "partial_fit from the start with it."
        )
    merged = {}
    for c, st in old.items():
        st = st.map(backend.to_device)
        if columns is not None:
            c, st = int(columns[c]), st.with_targets(n_targets, columns)
        merged[c] = st
    for c in np.unique(codes):
        idx = np.flatnonzero(codes == c)
        rows = X[import_torch().as_tensor(idx, device=X.device)] if is_tensor(X) else X[idx]
        batch = batch_statistics(backend, rows, codes[idx], w[idx], n_targets)
        base = merged.get(int(c), Statistics.empty(X.shape[1], n_targets))
        merged[int(c)] = base.merge(batch)
    return merged


def split_fitted(backend, stats: Statistics) -> dict[int, Statistics]:
    """Per-class statistics of the statistics ``fit`` made with ``"balanced"``: its kept rows,
    each weight divided by the balanced factor ``fit`` multiplied in. Moments (more rows than
    features) are merged across classes for good, and cannot be split."""
    if stats.rows is None:
        raise ValueError(
            "This FAASTClassifier(class_weight='balanced') was fitted with fit on more rows "
            "than features: its statistics merge the classes, and 'balanced' needs them "
            "apart to take more rows. Refit with fit on all the rows, or stream from the "
            "start with partial_fit."
        )
    X, codes, w = stats.map(backend.to_device).rows
    codes = backend.to_numpy(codes).astype(np.intp)
    factors = row_factors("balanced", codes, np.arange(stats.n_targets))  # what fit applied
    return accumulate(backend, X, codes, backend.to_numpy(w) / factors, stats.n_targets, {}, None)


def combine(class_stats: dict[int, Statistics], n_targets: int) -> Statistics:
    """The balanced statistics: each class's statistics scaled by its current factor."""
    codes = sorted(class_stats)
    counts = np.zeros(n_targets)
    counts[codes] = [class_stats[c].count for c in codes]
    factors = balanced_factors(counts)
    return reduce(Statistics.merge, (scaled(class_stats[c], factors[c]) for c in codes))
