"""LazyRows: samples whose ``X[indices]`` is a view, so that cross-validation copies nothing."""

from __future__ import annotations

import numbers
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.sparse import issparse

from ..utils._threads import n_threads, pool
from ..utils._torch import is_tensor
from ._sources import describe, is_dataset

# Arrays at least this large are copied in parallel parts: one core copies at a fraction of
# what the host's memory system delivers (and first touches of new pages fault one by one).
_PARALLEL_COPY_BYTES = 2**24


def _copy(X: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``X``, made by the worker threads when it is large."""
    out = np.empty(X.shape, dtype=X.dtype)
    parts = min(n_threads(0), len(X)) if X.nbytes >= _PARALLEL_COPY_BYTES else 1
    if parts <= 1:
        np.copyto(out, X)
        return out
    bounds = np.linspace(0, len(X), parts + 1).astype(np.int64).tolist()
    spans = list(zip(bounds[:-1], bounds[1:], strict=True))
    # np.copyto releases the GIL: the parts run in parallel.
    list(pool(0).map(lambda s: np.copyto(out[s[0] : s[1]], X[s[0] : s[1]]), spans))
    return out


class _Base:
    """What every view of one LazyRows shares: the data, and memos (row keys, by the way they
    were computed; an array's value range; the adapter keying its rows)."""

    def __init__(self, data: Any, kind: str, owned: bool = False):
        self.data = data
        self.kind = kind  # "array", "dataset" or "list"
        self.owned = owned  # data is LazyRows' private copy (kept read-only when an array)
        self.n = len(data)
        self.memo: dict = {}
        self.lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["lock"]
        # Adapters hold per-process state (host copies, worker pools): rebuilt on use.
        state["memo"] = {k: v for k, v in self.memo.items() if k[0] == "keys"}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.lock = threading.Lock()
        if self.owned and isinstance(self.data, np.ndarray):
            self.data.flags.writeable = False  # unpickled arrays come back writeable


class LazyRows:
    """Samples whose ``X[indices]`` is a view of them, not a copy.

    scikit-learn's cross-validation copies every fold's pixels for each fit and score; folds of
    a ``LazyRows`` are views that record which rows they hold, so each row is keyed once and
    served from the feature cache by row number (see :ref:`gpu`).

    Parameters
    ----------
    X : ndarray, torch.Tensor, torch Dataset or sequence
        The samples, first axis first: image arrays or tensors, a torch ``Dataset`` (its items
        are read when needed, and must be the same at every read: no random augmentation),
        or a list (PIL images, file paths, strings...).
    copy : bool, default=True
        Keep a private copy of an array or tensor (a list is copied as a list; a dataset
        never is), so that row keys computed once cannot go stale if the caller changes X
        afterwards. An array copy is read-only; torch has no read-only tensors, so rows taken
        from a wrapped tensor must not be written to. ``copy=False`` shares X: it must not
        change while wrapped.

    Attributes
    ----------
    shape : tuple of int
        ``(n_samples, *X.shape[1:])`` for arrays and tensors, ``(n_samples,)`` otherwise.

    See Also
    --------
    FeatureExtractor : Extracts (and caches) the features of a LazyRows like any other input.

    Notes
    -----
    Indexing with an integer gives that sample; with a slice, an integer or boolean array, or
    a list, another LazyRows of the same data. ``np.asarray`` gives the rows of an array or
    tensor (or list) as a NumPy array, so estimators without a backbone accept a LazyRows too
    (at the cost of that copy).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import GridSearchCV
    >>> from faast_sklearn import FAASTClassifier, LazyRows
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 255, (60, 32, 32, 3), dtype=np.uint8)
    >>> y = np.arange(60) % 3
    >>> rows = LazyRows(X)
    >>> rows[10:20]
    LazyRows(ndarray of shape (60, 32, 32, 3) and dtype uint8: 10 of 60 rows)
    >>> search = GridSearchCV(
    ...     FAASTClassifier(backbone="test_tiny", device="cpu"), {"alpha": [0.1, 1.0]}, cv=3
    ... ).fit(rows, y)
    """

    def __init__(self, X, *, copy=True):
        if isinstance(X, LazyRows):
            self._base, self._rows = X._base, X._rows
            return
        if isinstance(X, np.ndarray) and X.dtype.kind in "OUS" and X.ndim:
            X = list(X)  # strings, paths or objects (or rows of them): samples, not pixels
        if isinstance(X, np.ndarray) or is_tensor(X):
            if X.ndim == 0:
                raise ValueError("LazyRows needs samples along a first axis; got a 0-d array.")
            if copy:
                X = X.detach().clone() if is_tensor(X) else _copy(X)
                if isinstance(X, np.ndarray):
                    X.flags.writeable = False
            base = _Base(X, "array", owned=copy)
        elif is_dataset(X):
            if not hasattr(X, "__len__"):
                raise TypeError("LazyRows needs a Dataset with a length (a map-style Dataset).")
            base = _Base(X, "dataset")
        elif hasattr(X, "iloc") or issparse(X) or isinstance(X, Mapping):
            raise TypeError(
                f"LazyRows wraps arrays, tensors, datasets and sequences, not a "
                f"{type(X).__name__}; pass it to scikit-learn as it is, or wrap its "
                "rows (to_numpy(), toarray(), list(values()))."
            )
        elif isinstance(X, (list, tuple)) or (
            hasattr(X, "__len__") and hasattr(X, "__getitem__") and not isinstance(X, str)
        ):
            base = _Base(list(X) if copy or not isinstance(X, list) else X, "list")
        else:
            raise TypeError(
                f"LazyRows wraps an array, a tensor, a torch Dataset or a sequence of samples; "
                f"got {type(X).__name__}."
            )
        self._base, self._rows = base, None

    def __len__(self) -> int:
        return self._base.n if self._rows is None else len(self._rows)

    @property
    def shape(self) -> tuple[int, ...]:
        rest = (
            tuple(int(s) for s in self._base.data.shape[1:]) if self._base.kind == "array" else ()
        )
        return (len(self), *rest)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> Any:
        """The array's or tensor's dtype; None for datasets and lists."""
        return self._base.data.dtype if self._base.kind == "array" else None

    @property
    def rows(self) -> np.ndarray:
        """Positions of this view's samples in the wrapped data."""
        return np.arange(self._base.n) if self._rows is None else self._rows

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rest = key[1:]
            if len(key) and all(k is Ellipsis for k in rest):
                key = key[0]  # scikit-learn indexes rows as X[indices, ...]
            else:
                return np.asarray(self)[key]
        if (isinstance(key, np.ndarray) or is_tensor(key)) and key.ndim == 0:
            key = key.item()  # X[np.int64(3)] and X[torch.tensor(3)] are X[3]
        if isinstance(key, numbers.Integral) and not isinstance(key, (bool, np.bool_)):
            n = len(self)
            if not -n <= key < n:
                raise IndexError(f"index {key} is out of bounds for {n} samples")
            pos = int(key) % n
            return self._base.data[pos if self._rows is None else int(self._rows[pos])]
        view = LazyRows.__new__(LazyRows)
        view._base, view._rows = self._base, self._select(key)
        return view

    def _select(self, key) -> np.ndarray:
        """Positions in the wrapped data of ``self[key]`` for a slice, list or index array
        (NumPy's rules and bounds errors, along the first axis)."""
        if not isinstance(key, slice):
            what = type(key).__name__
            key = np.asarray(key.detach().cpu() if is_tensor(key) else key)
            if key.size == 0 and key.dtype != bool:
                key = key.reshape(0).astype(np.int64)  # [] is a float array
            if key.ndim != 1 or key.dtype.kind not in "biu":
                raise IndexError(
                    "LazyRows indexes samples with an integer, a slice, or a 1-D integer or "
                    f"boolean array; got {what}"
                    + (f" of dtype {key.dtype} and shape {key.shape}" if key.ndim else "")
                )
        picked = np.arange(len(self))[key]
        return picked if self._rows is None else self._rows[picked]

    def __iter__(self):
        data = self._base.data
        for i in self.rows.tolist():
            yield data[i]

    def __array__(self, dtype=None, copy=None):
        if self._base.kind == "dataset":
            raise TypeError(
                "A LazyRows of a torch Dataset has no array form; pass it to an estimator with "
                "a backbone, or to FeatureExtractor.transform."
            )
        if copy is False:
            raise ValueError("A LazyRows becomes an array only by copying its rows.")
        data = self._base.data
        if self._base.kind == "list":
            out = np.asarray([data[i] for i in self.rows.tolist()])
        else:
            picked = data if self._rows is None else data[self._rows]
            if is_tensor(picked):
                picked = picked.detach().cpu()
                # NumPy has no bfloat16.
                picked = picked.float() if str(picked.dtype) == "torch.bfloat16" else picked
                out = picked.numpy()
            else:
                out = np.array(picked)
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        data = self._base.data
        what = describe(data) if self._base.kind != "dataset" else type(data).__name__
        return f"{type(self).__name__}({what}: {len(self)} of {self._base.n} rows)"
