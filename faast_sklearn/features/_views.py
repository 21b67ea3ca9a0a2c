"""ViewSource: the rows of a LazyRows, read through the source of the data it wraps, each
row's key computed once per wrapped data, however many folds hold it."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..utils._cache import KEY_BYTES
from ._rows import LazyRows
from ._sources import ArraySource


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
