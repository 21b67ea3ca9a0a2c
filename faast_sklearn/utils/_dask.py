"""Dask collections as inputs: recognised without importing Dask, mapped over lazily.

:func:`is_dask_collection` looks in ``sys.modules`` (a NumPy fit never imports Dask);
:func:`partitionwise` makes a row-to-row method return a lazy Dask collection for a Dask input.
"""

from __future__ import annotations

import functools
import sys

import numpy as np


def is_dask_collection(*objs) -> bool:
    """Whether any of ``objs`` is a Dask collection (imports nothing)."""
    dask = sys.modules.get("dask")
    return dask is not None and any(dask.is_dask_collection(obj) for obj in objs)


def import_dask():
    """``(dask, dask.array)``, or an ImportError naming the extra to install."""
    try:
        import dask
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise ImportError(
            "Dask inputs need the optional dependencies: pip install 'faast-sklearn[dask]'."
        ) from exc
    return dask, da


def is_frame(obj) -> bool:
    """Whether ``obj`` is a Dask DataFrame or Series (partitioned along rows)."""
    return hasattr(obj, "map_partitions") and hasattr(obj, "npartitions")


def _apply(block, estimator, method: str):
    return getattr(estimator, method)(block)


def _apply_frame(frame, estimator, method: str):
    import pandas as pd

    out = getattr(estimator, method)(frame)
    if out.ndim == 1:
        return pd.Series(out, index=frame.index)
    return pd.DataFrame(out, index=frame.index)


def _probe(X, da):
    """One row shaped like ``X``'s, for the output's shape and dtype: zeros for a numeric
    array (nothing of ``X`` is computed), else ``X``'s first row."""
    if isinstance(X, da.Array) and X.dtype.kind in "biuf":
        return np.zeros((1, *X.shape[1:]), dtype=X.dtype)
    return X[:1].compute()


def map_partitions(estimator, X, method: str):
    """``estimator.<method>`` over the row partitions of the Dask collection ``X``, lazily:
    a Dask array (``X``'s row chunks) or Series/DataFrame (``X``'s index). The method runs
    once on the client on one row (:func:`_probe`) for the output's shape and dtype."""
    _, da = import_dask()
    if is_frame(X):
        from dask.dataframe.utils import meta_nonempty

        meta = _apply_frame(meta_nonempty(X._meta).iloc[:1], estimator, method).iloc[:0]
        return X.map_partitions(_apply_frame, estimator, method, meta=meta)
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X must be a dask array, dataframe or series; got the dask collection "
            f"{type(X).__name__}."
        )
    X = X.rechunk({i: -1 for i in range(1, X.ndim)})  # partitions split rows only
    probe = np.asarray(_apply(_probe(X, da), estimator, method))
    return da.map_blocks(
        _apply,
        X,
        estimator,
        method,
        dtype=probe.dtype,
        chunks=(X.chunks[0], *((s,) for s in probe.shape[1:])),
        drop_axis=list(range(probe.ndim, X.ndim)),
        new_axis=list(range(X.ndim, probe.ndim)) or None,
        meta=np.empty((0,) * probe.ndim, dtype=probe.dtype),
    )


def partitionwise(method):
    """Decorate a method ``f(self, X)`` mapping rows to rows: on a Dask collection ``X`` it
    returns ``f`` mapped lazily over the partitions (:func:`map_partitions`)."""

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        if not args and not kwargs and is_dask_collection(X):
            solve = getattr(self, "_ensure_solution", None)
            if solve is not None:
                solve()  # once on the client, not in every task
            return map_partitions(self, X, method.__name__)
        return method(self, X, *args, **kwargs)

    return wrapper
