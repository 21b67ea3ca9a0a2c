"""Dask: fit on ``dask.array`` / ``dask.dataframe`` partitions where they live, predict lazily.

:func:`dask_fit` builds one task per partition that fits a clone of the estimator on that
partition's rows (extracting backbone features there, on the worker's device), merges the
partial models in a tree of :func:`~faast_sklearn.merge_models` tasks, and brings back only
the merged statistics (O(n_features**2)), never rows. :func:`dask_predict` maps a fitted
estimator's method over the partitions and returns a dask collection.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from ._merge import adopt, check_compatible, merge_models


def _import_dask():
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise ImportError(
            "Dask support needs the optional dependencies: pip install 'faast-sklearn[dask]'."
        ) from exc
    return dask, da


def _is_frame(obj) -> bool:
    return hasattr(obj, "map_partitions") and hasattr(obj, "npartitions")


def _row_blocks(data, name: str, row_chunks=None) -> list:
    """One delayed object per row partition of a dask array, dataframe or series."""
    dask, da = _import_dask()
    if data is None:
        return None
    if _is_frame(data):
        return list(data.to_delayed())
    if isinstance(data, da.Array):
        if data.ndim == 0:
            raise ValueError(f"{name} must have at least one dimension; got a 0-d dask array.")
        chunks = {i: -1 for i in range(1, data.ndim)}  # partitions split rows only
        if row_chunks is not None and not any(np.isnan(row_chunks)):
            if data.shape[0] != sum(row_chunks):
                raise ValueError(f"{name} has {data.shape[0]} rows; X has {int(sum(row_chunks))}.")
            chunks[0] = row_chunks
        return list(data.rechunk(chunks).to_delayed().ravel())
    raise TypeError(
        f"{name} must be a dask array, dataframe or series (or None for sample_weight); got "
        f"{type(data).__name__}. For in-memory data call the estimator's fit directly."
    )


def _fit_partition(template, X, y, w):
    if len(X) == 0:
        return None
    return clone(template).partial_fit(X, y, sample_weight=w)


def _merge_partials(*models):
    models = [m for m in models if m is not None]
    return merge_models(models) if models else None


def dask_fit(estimator, X, y, sample_weight=None, *, partial=False, split_every=8):
    """Fit ``estimator`` on dask collections without bringing rows to the client.

    Each partition of ``X`` (with the matching partitions of ``y`` and ``sample_weight``) is
    fitted by a task on the worker that holds it (with a backbone, the features are extracted
    there); the partial models are merged in a tree of fan-in ``split_every``; only the merged
    statistics come back. The result equals ``estimator.fit`` on all the rows (to float64
    round-off) whatever the partitioning. It runs on the current Dask scheduler (a
    ``distributed.Client`` if one is active).

    Parameters
    ----------
    estimator : FAASTClassifier or FAASTRegressor
        Fitted in place; left unchanged if the computation fails (a lost worker, bad rows).
    X : dask.array.Array or dask.dataframe.DataFrame
        Features (or backbone input, such as an image array chunked along rows only).
    y : dask.array.Array, dask.dataframe.Series or DataFrame
        Targets, partitioned like ``X`` (arrays are rechunked to ``X``'s row chunks).
    sample_weight : dask.array.Array, dask.dataframe.Series or None, default=None
    partial : bool, default=False
        ``False``: like ``fit`` (the previous fit is replaced). ``True``: like
        ``partial_fit`` (the rows are added to the statistics fitted so far).
    split_every : int, default=8
        Fan-in of the merge tree.

    Returns
    -------
    estimator
        Solved at first use, as after ``partial_fit``.
    """
    dask, da = _import_dask()
    if split_every < 2:
        raise ValueError(f"split_every must be at least 2; got {split_every}.")
    row_chunks = X.chunks[0] if isinstance(X, da.Array) else None
    xs = _row_blocks(X, "X")
    ys = _row_blocks(y, "y", row_chunks)
    ws = _row_blocks(sample_weight, "sample_weight", row_chunks)
    for name, parts in (("y", ys), ("sample_weight", ws)):
        if parts is not None and len(parts) != len(xs):
            raise ValueError(
                f"{name} has {len(parts)} partitions but X has {len(xs)}: partition them alike."
            )
    template = clone(estimator)
    fit = dask.delayed(_fit_partition, pure=True)
    level = [
        fit(template, x, yb, None if ws is None else ws[i])
        for i, (x, yb) in enumerate(zip(xs, ys, strict=True))
    ]
    merge = dask.delayed(_merge_partials, pure=True)
    while len(level) > 1:
        level = [merge(*level[i : i + split_every]) for i in range(0, len(level), split_every)]
    (fitted,) = dask.compute(level[0])
    if fitted is None:
        raise ValueError("dask_fit found no rows in any partition of X.")
    if partial and "stats_" in estimator.__dict__:
        check_compatible(estimator, fitted, "the new rows' model")
        fitted = merge_models([estimator, fitted])
    return adopt(estimator, fitted)


def _apply(block, estimator, method):
    return getattr(estimator, method)(block)


def _apply_frame(frame, estimator, method):
    import pandas as pd

    out = getattr(estimator, method)(frame)
    if out.ndim == 1:
        return pd.Series(out, index=frame.index)
    return pd.DataFrame(out, index=frame.index)


def dask_predict(estimator, X, *, method="predict"):
    """Lazily map ``estimator.<method>`` over the row partitions of a dask collection.

    Parameters
    ----------
    estimator : fitted estimator or FeatureExtractor
    X : dask.array.Array or dask.dataframe.DataFrame
    method : str, default="predict"
        ``"predict"``, ``"predict_proba"``, ``"predict_log_proba"``,
        ``"decision_function"`` or ``"transform"``.

    Returns
    -------
    dask.array.Array, or dask.dataframe.Series/DataFrame for a dataframe ``X``
        Nothing is computed except the method on ``X``'s first row (for the output's shape).
    """
    _, da = _import_dask()
    if not callable(getattr(estimator, method, None)):
        raise ValueError(f"{type(estimator).__name__} has no method {method!r}.")
    if hasattr(estimator, "_ensure_solution"):
        estimator._ensure_solution()  # solve once on the client, not in every task
    if _is_frame(X):
        meta = _apply_frame(X.head(1, npartitions=-1), estimator, method).iloc[:0]
        return X.map_partitions(_apply_frame, estimator, method, meta=meta)
    if not isinstance(X, da.Array):
        raise TypeError(f"X must be a dask array or dataframe; got {type(X).__name__}.")
    X = X.rechunk({i: -1 for i in range(1, X.ndim)})
    probe = np.asarray(_apply(X[:1].compute(), estimator, method))
    return da.map_blocks(
        _apply,
        X,
        estimator,
        method,
        dtype=probe.dtype,
        chunks=(X.chunks[0], *((s,) for s in probe.shape[1:])),
        drop_axis=list(range(probe.ndim, X.ndim)),
        meta=np.empty((0,) * probe.ndim, dtype=probe.dtype),
    )
