"""Input sources of numeric rows and strings: each answers, for a set of row indices, what
their keys are (:mod:`._keys`), what the host batch is, and what the device batch is.

Images that share a shape (arrays, tensors) travel to the device as they are -- uint8 when
given as uint8, four times smaller than float -- and are resized and normalised there.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..utils._torch import import_torch, is_tensor
from ._images import image_dtype_error, image_layout, is_pil
from ._keys import chunk_row_keys, host_bits, is_range, text_key


def is_dataset(x: Any) -> bool:
    # Only a torch Dataset can be one, and only if torch is already imported.
    torch_mod = sys.modules.get("torch")
    return torch_mod is not None and isinstance(x, torch_mod.utils.data.Dataset)


def is_image_item(x: Any) -> bool:
    return isinstance(x, np.ndarray) or is_tensor(x) or is_pil(x)


def describe(X: Any) -> str:
    """Short description of X for error messages."""
    if isinstance(X, np.ndarray) or is_tensor(X):
        return f"{type(X).__name__} of shape {tuple(X.shape)} and dtype {X.dtype}"
    if isinstance(X, (list, tuple)):
        first = type(X[0]).__name__ if len(X) else "nothing"
        return f"{type(X).__name__} of {len(X)} {first}"
    return type(X).__name__


def text_model_error(what: str) -> TypeError:
    return TypeError(
        f"This backbone is a text model: X must be a list of strings; got {what}. "
        "For images use an image backbone such as 'efficientnet_lite0' or 'vit_base'."
    )


class ArraySource:
    """NumPy arrays and torch tensors (CPU or CUDA) of equally sized images, or, for a callable
    backbone (``images=False``), of any numeric rows: the callable gets them as they are."""

    kind = "image"
    cheap_keys = True  # keying reads the rows, nothing more
    sized = False

    def __init__(self, X: Any, num_workers: int, images: bool = True):
        torch = import_torch()
        self.is_tensor = is_tensor(X)
        dtype = X.dtype
        if not images:
            ok = self.is_tensor or dtype.kind in "biuf"
        elif self.is_tensor:
            ok = dtype == torch.uint8 or dtype.is_floating_point
        else:
            ok = dtype == np.uint8 or np.issubdtype(dtype, np.floating)
        if dtype.is_complex if self.is_tensor else dtype.kind == "c":
            raise ValueError(f"Complex data not supported: X has dtype {dtype}.")
        if not ok and not images:
            raise TypeError(f"Cannot pass an array of dtype {dtype} to a callable backbone.")
        if not ok:
            raise image_dtype_error(dtype)
        if X.ndim == 0:
            raise ValueError("X must hold samples along a first axis; got a 0-d array.")
        if X.shape[0] == 0:
            raise ValueError("X has no samples.")
        if math.prod(X.shape[1:]) == 0:
            raise ValueError(
                f"X has 0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 is required."
            )
        self.layout = (
            image_layout(tuple(X.shape), prefer_channels_first=self.is_tensor) if images else None
        )
        self.X = X
        self.n = X.shape[0]
        self.num_workers = num_workers
        self._host = None

    def check_range(self) -> tuple[float, float] | None:
        """(min, max) of a floating point input (NaN if it holds one), None for uint8."""
        ranges = self.row_ranges()
        return None if ranges is None else (float(ranges[0].min()), float(ranges[1].max()))

    def row_ranges(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Each row's (min, max) of a floating point input (NaN propagates: the caller reports
        it), None for uint8."""
        X = self.X
        if self.is_tensor:
            if not X.dtype.is_floating_point:
                return None
            lo, hi = X.reshape(len(X), -1).float().aminmax(dim=1)
            return lo.cpu().numpy(), hi.cpu().numpy()
        if X.dtype == np.uint8:
            return None
        flat = X.reshape(len(X), -1)
        return flat.min(axis=1), flat.max(axis=1)

    def _host_array(self) -> tuple[np.ndarray, str]:
        if self._host is None:
            # CUDA input: one device-to-host copy, only for keys.
            self._host = host_bits(self.X) if self.is_tensor else (self.X, self.X.dtype.str)
        return self._host

    def keys(self, idx: np.ndarray) -> list[bytes]:
        host, tag = self._host_array()
        return chunk_row_keys(host, f"{tag}:{self.layout}", idx, self.num_workers)

    def raw(self, idx: np.ndarray) -> Any:
        return self.X[_as_index(idx, self.is_tensor, self.X)]

    def load(self, idx: np.ndarray, device: str) -> Any:
        """The batch on ``device``, still in its input dtype and layout."""
        torch = import_torch()
        X = self.X
        if self.is_tensor:
            batch = X[_as_index(idx, True, X)]
            return batch.to(device, non_blocking=True)
        if device.startswith("cuda"):
            # Gather straight into pinned memory, then copy without blocking the host.
            buf = torch.empty(
                (len(idx), *X.shape[1:]), dtype=_torch_dtype(X.dtype), pin_memory=True
            )
            out = buf.numpy()
            if is_range(idx):
                out[...] = X[idx[0] : idx[-1] + 1]
            else:
                # mode="clip": with the default "raise", NumPy buffers `out` (an extra copy).
                np.take(X, idx, axis=0, out=out, mode="clip")
            return buf.to(device, non_blocking=True)
        batch = np.ascontiguousarray(X[_as_index(idx, False, X)])
        # A slice of a read-only array (a LazyRows copy, a memory map) is read-only: torch
        # wants its own copy of such a batch (it never writes to it, but warns otherwise).
        return torch.from_numpy(batch if batch.flags.writeable else batch.copy())


def _torch_dtype(dtype: np.dtype) -> Any:
    torch = import_torch()
    return torch.from_numpy(np.empty(0, dtype=dtype)).dtype


def _as_index(idx: np.ndarray, tensor: bool, X: Any) -> Any:
    if is_range(idx):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    if tensor:
        return import_torch().as_tensor(idx, device=X.device)
    return idx


class TextSource:
    """A sequence of strings."""

    kind = "text"
    cheap_keys = True
    sized = True

    def __init__(self, X: Sequence[str]):
        self.X = list(X)
        self.n = len(self.X)
        if self.n == 0:
            raise ValueError("X has no samples.")
        try:
            "".join(self.X).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: find it, name it
            for i, s in enumerate(self.X):
                try:
                    s.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise ValueError(
                        f"X[{i}] is not valid text: {exc.reason} at position {exc.start} "
                        f"({s[max(0, exc.start - 10) : exc.start + 10]!r}). Lone surrogates "
                        "cannot be encoded; decode the source with errors='replace'."
                    ) from None

    def keys(self, idx: np.ndarray) -> list[bytes]:
        return [text_key(self.X[int(i)]) for i in idx]

    def raw(self, idx: np.ndarray) -> list[str]:
        return [self.X[int(i)] for i in idx]
