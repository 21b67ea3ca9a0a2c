"""make_source: which input source reads which X, with clear errors for what none reads; and
ViewSource: the rows of a LazyRows, read through the source of the data it wraps, each row's
key computed once per wrapped data, however many folds hold it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.sparse import issparse

from ..utils._content_key import KEY_BYTES
from ..utils._torch import import_torch, is_tensor
from ._images import is_pil
from ._items import ItemSource
from ._rows import LazyRows
from ._sources import (
    ArraySource,
    TextSource,
    describe,
    is_dataset,
    is_image_item,
    text_model_error,
)


def _as_sequence_of_str(X: Any) -> list | None:
    if isinstance(X, str):
        return None
    if isinstance(X, np.ndarray) and X.dtype.kind in "UO" and X.ndim == 1:
        X = X.tolist()
    elif type(X).__name__ == "Series":  # pandas, without importing it
        X = X.tolist()
    if isinstance(X, (list, tuple)) and len(X) and all(isinstance(s, str) for s in X):
        return list(X)
    return None


def _name_the_non_string(X: Any) -> None:
    """A list of texts with a stray item (None, bytes, a number): a TypeError naming it."""
    if isinstance(X, np.ndarray) and X.dtype.kind == "O" and X.ndim == 1:
        X = X.tolist()
    if not isinstance(X, (list, tuple)) or not any(isinstance(s, str) for s in X):
        return  # not a list of texts at all: the generic error says what was expected
    for i, s in enumerate(X):
        if not isinstance(s, str):
            raise TypeError(
                f"X[{i}] is a {type(s).__name__} ({s!r:.60}), not a str: a text backbone "
                "reads a list of strings."
            )


def _callable_source(X: Any, num_workers: int) -> Any:
    """The input of a callable backbone, keyed by content. It gets ``X[indices]`` of an array
    or a tensor, and a list of the items of a list or a torch Dataset (the sample of
    ``(sample, label)`` items: scikit-learn's folds of a Dataset are lists of them)."""
    if isinstance(X, np.ndarray) and X.dtype.kind in "OUSV":
        X = list(X)  # objects (rows of a frame of strings, images of several sizes...)
    if isinstance(X, np.ndarray) or is_tensor(X):
        return ArraySource(X, num_workers, images=False)
    if is_dataset(X):
        return ItemSource(X, None, num_workers, "dataset")
    if not isinstance(X, (list, tuple)):
        raise TypeError(
            f"Unsupported input {describe(X)}; a callable backbone takes an array, a tensor, "
            "a list of samples or a torch Dataset."
        )
    return ItemSource(list(X), None, num_workers, "dataset" if _sample_pairs(X) else "object")


def _sample_pairs(X: Sequence) -> bool:
    """Whether X lists (image, label) items: what indexing a torch Dataset item by item gives."""
    return all(isinstance(x, (tuple, list)) and len(x) and is_image_item(x[0]) for x in X)


def make_source(X: Any, modality: str, cfg: dict | None, num_workers: int) -> Any:
    """Pick the adapter for ``X`` and the backbone's ``modality``; clear errors otherwise."""
    if isinstance(X, str):
        raise TypeError(
            "X must be a collection of samples, not a single string; wrap it in a list."
        )
    if isinstance(X, LazyRows):
        return view_source(X, modality, cfg, num_workers)
    if issparse(X):
        raise TypeError(
            "X is a sparse matrix; backbones read images, strings or dense arrays. "
            "Pass X.toarray() to a callable backbone."
        )
    if isinstance(X, np.ma.MaskedArray):
        raise TypeError("X is a masked array; pass X.filled(value) or X.compressed() instead.")
    if is_pil(X):
        raise TypeError("X is a single PIL image; pass a list of images: [image].")
    if hasattr(X, "__array__") and not (
        isinstance(X, (np.ndarray, list, tuple)) or is_tensor(X) or is_dataset(X)
    ):
        X = np.asarray(X)  # frames and other array-likes: their values
    texts = _as_sequence_of_str(X)
    if modality == "any":
        return TextSource(texts) if texts is not None else _callable_source(X, num_workers)
    if modality == "text":
        if texts is None:
            _name_the_non_string(X)
            raise text_model_error(describe(X))
        return TextSource(texts)
    if texts is not None:
        return ItemSource(texts, cfg, num_workers, "path")
    if isinstance(X, np.ndarray) or is_tensor(X):
        if isinstance(X, np.ndarray) and X.dtype.kind in "OUS":
            raise TypeError(f"Cannot read images from an array of dtype {X.dtype}.")
        return ArraySource(X, num_workers)
    if is_dataset(X):
        return ItemSource(X, cfg, num_workers, "dataset")
    if isinstance(X, (list, tuple)):
        if all(is_pil(x) for x in X):  # also an empty X: ItemSource says it has no samples
            return ItemSource(X, cfg, num_workers, "pil")
        if all(isinstance(x, (str, os.PathLike)) for x in X):
            return ItemSource(X, cfg, num_workers, "path")
        if all(isinstance(x, np.ndarray) or is_tensor(x) for x in X):
            shapes = {tuple(x.shape) for x in X}
            if len(shapes) == 1:
                torch = import_torch()
                return ArraySource(
                    torch.stack(list(X)) if is_tensor(X[0]) else np.stack(X), num_workers
                )
            return ItemSource(list(X), cfg, num_workers, "dataset")
        if _sample_pairs(X):
            # scikit-learn's folds of a Dataset. LazyRows(dataset) reads each item once.
            return ItemSource(list(X), cfg, num_workers, "dataset")
        kinds = sorted({type(x).__name__ for x in X})
        raise TypeError(
            f"Cannot read images from a {type(X).__name__} of {', '.join(kinds)}; expected image "
            "arrays, torch tensors, PIL images, image file paths or a torch Dataset."
        )
    raise TypeError(
        f"Unsupported input {describe(X)}; expected an image array (N, H, W[, C]) or "
        "(N, C, H, W), a torch tensor, a list of PIL images or file paths, a torch Dataset, or "
        "a list of strings for a text backbone."
    )


def view_source(view: LazyRows, modality: str, cfg: dict | None, num_workers: int) -> Any:
    """The input adapter of a LazyRows: its rows, through the adapter of the data it wraps.

    Arrays, tensors and datasets are read by row number, and their row keys are remembered in
    the wrapped data (per way of keying: a dataset item is keyed as decoded for ``cfg``), so
    that each row is keyed once, however many folds hold it. A list is gathered into a list:
    indexing one copies references only, and file paths are keyed anew each call (a file may
    change).
    """
    base = view._base
    if base.kind == "list":
        return make_source([base.data[i] for i in view.rows.tolist()], modality, cfg, num_workers)
    if base.kind == "array" and modality == "text":
        raise text_model_error(repr(view))
    if base.kind == "array":
        return ViewSource(
            view, ArraySource(base.data, num_workers, images=modality != "any"), ("keys", "array")
        )
    adapter = make_source(base.data, modality, cfg, num_workers)
    decoded_as = "raw" if cfg is None else repr(sorted(cfg.items()))
    return ViewSource(view, adapter, ("keys", "dataset", decoded_as))


class ViewSource:
    """Rows ``view.rows`` of an adapter; row keys memoised under ``signature`` (None: not)."""

    def __init__(self, view: LazyRows, adapter: Any, signature: tuple | None):
        self.adapter, self.rows, self.base = adapter, view.rows, view._base
        self.n = len(self.rows)
        self.kind, self.sized = adapter.kind, adapter.sized
        self.layout = getattr(adapter, "layout", None)
        self.memo = None
        if signature is not None:
            with self.base.lock:
                self.memo = self.base.memo.get(signature)
                if self.memo is None:
                    known = np.zeros(self.base.n, dtype=bool)
                    keys = np.zeros(self.base.n, dtype=f"V{KEY_BYTES}")
                    self.memo = self.base.memo[signature] = (keys, known)
        self.cheap_keys = adapter.cheap_keys or (
            self.memo is not None and bool(self.memo[1][self.rows].all())
        )
        if self.n == 0:
            raise ValueError("X has no samples.")

    def keys(self, idx: np.ndarray) -> list[bytes]:
        rows = self.rows[idx]
        if self.memo is None:
            return self.adapter.keys(rows)
        keys, known = self.memo
        need = np.unique(rows[~known[rows]])
        if len(need):
            keyer = self.adapter
            if isinstance(keyer, ArraySource):
                # One array adapter keys every call's new rows: a CUDA tensor is copied to
                # the host for keying once, not once per call, and let go once all are keyed.
                with self.base.lock:
                    keyer = self.base.memo.setdefault(("keyer",), keyer)
            new = np.frombuffer(b"".join(keyer.keys(need)), dtype=keys.dtype)
            with self.base.lock:
                keys[need] = new
                known[need] = True
                if known.all():
                    self.base.memo.pop(("keyer",), None)
        return keys[rows].tolist()

    def check_range(self) -> tuple[float, float] | None:
        # Each row's range is computed once per wrapped array; a view reduces its rows'.
        with self.base.lock:
            if ("range",) not in self.base.memo:
                self.base.memo[("range",)] = self.adapter.row_ranges()
            ranges = self.base.memo[("range",)]
        if ranges is None:
            return None
        return float(ranges[0][self.rows].min()), float(ranges[1][self.rows].max())

    def raw(self, idx: np.ndarray) -> Any:
        return self.adapter.raw(self.rows[idx])

    def load(self, idx: np.ndarray, device: str) -> Any:
        return self.adapter.load(self.rows[idx], device)

    def drop_memo(self) -> None:
        if hasattr(self.adapter, "drop_memo"):
            self.adapter.drop_memo()
