"""``fit`` and ``partial_fit`` on ``dask.array`` / ``dask.dataframe`` inputs, where they live.

:func:`fit_dask` builds one task per row partition that fits a clone of the estimator on that
partition's rows (with a backbone, the features are extracted there, on the worker's device),
merges the partial models in a tree of :func:`~faast_sklearn._merge.combine` tasks (fan-in
:data:`SPLIT_EVERY`), and brings back only the merged statistics (O(d^2 + d T) numbers),
never rows; the solve runs once, on the client. The estimators call it from ``fit`` and
``partial_fit`` when an input is a Dask collection; predictions map over partitions with
:func:`faast_sklearn.utils._dask.partitionwise`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.base import clone, is_classifier

from ._class_weight import mapping_factors
from ._guards import check_finite, estimator_lock
from ._merge import adopt, combine
from ._validation import validate_weights
from .utils._dask import import_dask, is_frame

# Fan-in of the merge tree: 64 partitions merge in 2 levels; a merge holds 8 models' statistics.
SPLIT_EVERY = 8


def _row_blocks(data, name: str, row_chunks=None) -> list | None:
    """One delayed object per row partition of a dask array, dataframe or series."""
    _, da = import_dask()
    if data is None:
        return None
    if is_frame(data):
        return list(data.to_delayed())
    if isinstance(data, da.Array):
        if data.ndim == 0:
            raise ValueError(f"{name} must have at least one dimension; got a 0-d dask array.")
        chunks = {i: -1 for i in range(1, data.ndim)}  # partitions split rows only
        if row_chunks is not None and not np.isnan([*row_chunks, data.shape[0]]).any():
            if data.shape[0] != sum(row_chunks):
                raise ValueError(f"{name} has {data.shape[0]} rows; X has {int(sum(row_chunks))}.")
            chunks[0] = row_chunks
        return list(data.rechunk(chunks).to_delayed().ravel())
    raise TypeError(
        f"{name} must be a dask array, dataframe or series like the other inputs (or None for "
        f"sample_weight); got {type(data).__name__}. Pass X, y and sample_weight all as dask "
        "collections, or all in memory."
    )


def _fit_partition(template, index: int, X, y, w, fit_params: dict):
    """``(name, model or None, rows)`` of one partition: None when it has no rows or no
    positive weight (it adds nothing to the statistics)."""
    name = f"partition {index}"
    n = len(X)
    try:
        if n == 0:
            return name, None, n
        w64 = None if w is None else np.asarray(w, dtype=np.float64)
        if w64 is not None and not w64.sum() > 0:
            if len(w64) == n and np.isfinite(w64).all() and (w64 >= 0).all():
                if getattr(template, "backbone", None) is None:  # features: checked as in fit
                    check_finite(np.asarray(X, dtype=np.float64))
                return name, None, n  # no weight: adds nothing
            validate_weights(w, np.empty((n, 0)))  # NaN, negative or misaligned: its error
        model = clone(template).partial_fit(X, y, sample_weight=w, **fit_params)
    except Exception as exc:
        exc.add_note(f"(in {name} of the Dask inputs)")
        raise
    return name, model, n


def _labels(y) -> np.ndarray | None:
    """The sorted labels of one partition of a 1-D ``y`` (None for 2-D: multilabel)."""
    y = np.asarray(y)
    return np.unique(y) if y.ndim == 1 else None


def _merge_partitions(*parts):
    """The models of consecutive partitions merged (errors name the partitions)."""
    fitted = [(name, model) for name, model, _ in parts if model is not None]
    rows = sum(n for _, _, n in parts)
    if not fitted:
        return parts[0][0], None, rows
    names, models = zip(*fitted, strict=True)
    return names[0], combine(list(models), list(names)), rows


def fit_dask(estimator, X, y, sample_weight=None, *, partial: bool, classes=None):
    """``estimator.fit`` (``partial=False``) or ``partial_fit`` on Dask collections.

    ``X`` is a dask array (chunked along rows only) or dataframe; ``y`` an array (rechunked
    to ``X``'s row chunks) or a dataframe partitioned alike; ``sample_weight`` likewise or
    None; ``classes`` is ``partial_fit``'s. Runs on the current Dask scheduler; the result
    equals ``fit`` on all the rows (to float64 round-off) whatever the partitioning, and
    ``estimator`` is left as it was if the computation fails.
    """
    dask, da = import_dask()
    estimator._validated_alpha()
    if estimator.get_params().get("class_weight") == "balanced":
        raise ValueError(
            "class_weight='balanced' needs the class counts of all the rows before the "
            "statistics, which Dask partitions fitted apart do not have. Pass class_weight as "
            "a dict (sklearn.utils.class_weight.compute_class_weight on y.compute())."
        )
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but it is None.")
    row_chunks = X.chunks[0] if isinstance(X, da.Array) else None
    xs = _row_blocks(X, "X")
    ys = _row_blocks(y, "y", row_chunks)
    ws = _row_blocks(sample_weight, "sample_weight", row_chunks)
    for name, parts in (("y", ys), ("sample_weight", ws)):
        if parts is not None and len(parts) != len(xs):
            raise ValueError(
                f"{name} has {len(parts)} partitions but X has {len(xs)}: partition them alike."
            )
    if not partial and classes is None and is_classifier(estimator):
        # Every partition learns every class (the class embeddings' rows, a class whose rows
        # all weigh 0), as one fit on all the rows does: one pass over y first.
        labels = dask.compute(*map(dask.delayed(_labels), ys))
        try:
            classes = np.unique(np.concatenate(labels))
        except (TypeError, ValueError):  # multilabel or mixed labels: the partitions say so
            classes = None
        weights = estimator.get_params().get("class_weight")
        if classes is not None and isinstance(weights, Mapping):
            mapping_factors(weights, classes, strict=True)  # labels unknown to y: its error
    fit_params = {} if classes is None else {"classes": classes}
    template = clone(estimator)
    fit = dask.delayed(_fit_partition, pure=True)
    level = [
        fit(template, i, x, ys[i], None if ws is None else ws[i], fit_params)
        for i, x in enumerate(xs)
    ]
    merge = dask.delayed(_merge_partitions, pure=True)
    while len(level) > 1:
        level = [merge(*level[i : i + SPLIT_EVERY]) for i in range(0, len(level), SPLIT_EVERY)]
    ((_, fitted, rows),) = dask.compute(level[0])
    if fitted is None:
        raise ValueError("X has no rows with a positive sample_weight in any partition.")
    with estimator_lock(estimator):
        if partial and "stats_" in estimator.__dict__:
            fitted = combine([estimator, fitted], ["the estimator", "the new rows' model"])
            rows += estimator.n_samples_seen_
        fitted.n_samples_seen_ = int(rows)
        if not partial and fitted.__dict__.get("_multilabel") is False:
            if len(fitted.classes_) < 2:
                raise ValueError(
                    f"{type(estimator).__name__} needs samples of at least 2 classes to fit; "
                    f"got 1 class ({fitted.classes_.tolist()}). Use partial_fit to start a "
                    "stream with one class."
                )
        if not partial:
            fitted._ensure_solution()  # as fit does: a solve that fails changes nothing
        return adopt(estimator, fitted)
