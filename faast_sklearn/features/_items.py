"""ItemSource: PIL images, image files, dataset items and a callable's samples, decoded lazily
(they may differ in size). Image files go through :func:`._decode.decode_images` (nvJPEG on
CUDA, PIL worker threads into pinned memory elsewhere); the rest is decoded on the host, in
worker threads."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..utils._content_key import content_key
from ..utils._threads import pool
from ..utils._torch import to_device
from ._decode import decode_images, iter_decoded
from ._images import array_item_to_uint8, is_pil, resize_crop_pil
from ._keys import item_key, path_key, pil_key


class ItemSource:
    """PIL images, image file paths, or a torch Dataset: decoded lazily, in worker threads."""

    kind = "image"
    sized = True
    on_error = "raise"  # image files: "skip" leaves unreadable ones out (see skipped)

    def __init__(self, X: Any, cfg: dict | None, num_workers: int, what: str):
        self.X = X
        self.n = len(X)
        if self.n == 0:
            raise ValueError("X has no samples.")
        self.cfg = cfg
        self.what = what  # "pil", "path", "dataset" or "object" (a callable's items)
        # An image dataset's item is decoded to be keyed; a callable's items are keyed as
        # they are (cfg None).
        self.cheap_keys = what != "dataset" or cfg is None
        self.num_workers = num_workers
        # decode_images gives (N, 3, H, W) batches; the host decoders here (N, H, W, 3).
        self.layout = "NCHW" if what == "path" else "NHWC"
        self._memo: dict[int, Any] = {}  # decoded images, or a callable's items, until used
        self._decoding = None  # image files: the batches being decoded ahead (prefetch)
        self.skipped: list[tuple[int, str, str]] = []  # (position, path, reason), "skip" only
        # Paths that are no file: an error in check_files() (once on_error is set), or, with
        # on_error="skip", rows skipped as files that cannot be read.
        self._missing = (
            [i for i, p in enumerate(X) if not os.path.isfile(os.fspath(p))]
            if what == "path"
            else []
        )

    def _item(self, i: int) -> Any:
        item = self.X[int(i)]
        if self.what == "dataset" and isinstance(item, (tuple, list)):
            item = item[0]  # (image, label) pairs: the image
        return item

    def _decoded(self, i: int) -> np.ndarray:
        if i in self._memo:
            return self._memo.pop(i)
        item = self._item(i)
        if is_pil(item):
            return resize_crop_pil(item, self.cfg)
        try:
            return array_item_to_uint8(item, self.cfg)
        except (TypeError, ValueError) as exc:  # the error names the item
            raise type(exc)(f"X[{i}]: {exc}") from None

    def check_files(self) -> None:
        """With on_error="raise", a ValueError naming the first path that is no file."""
        missing = self._missing
        if missing and self.on_error == "raise":
            p = self.X[missing[0]]
            what = "is a folder" if os.path.isdir(os.fspath(p)) else "does not exist"
            raise ValueError(
                f"{len(missing)} of {self.n} image paths are no file: X[{missing[0]}] = {p!r} "
                f"{what}. An image backbone reads strings as image file paths; for text use a "
                "text backbone such as backbone='minilm'."
            )

    def keys(self, idx: np.ndarray) -> list[bytes]:
        if self.what == "path":
            # A stat per path, in this thread: threads would cost more than the system call.
            return [path_key(self.X[i]) for i in idx.tolist()]

        def key(i: int) -> bytes:
            if self.what == "pil":
                return pil_key(self.X[i])
            if self.cfg is None:  # a callable's items, as they are (read once: kept for raw)
                item = self._memo[i] = self._item(i)
                return item_key(item)
            # A dataset item is only known once loaded: decode now, keep it for load().
            arr = self._memo[i] = self._decoded(i)
            return content_key("decoded", arr)

        return list(pool(self.num_workers).map(key, idx.tolist()))

    def raw(self, idx: np.ndarray) -> list:
        memo = self._memo
        return [memo.pop(int(i)) if int(i) in memo else self._item(i) for i in idx]

    def prefetch(self, batches: list[np.ndarray], device: str) -> None:
        """Image files only: start decoding ``batches`` (index arrays, in the order
        :meth:`load` will ask for them) in a background thread, so that reading and decoding
        batch k+1 overlaps the forward pass of batch k."""
        self.close()
        self._decoding = (
            iter_decoded(
                self.X,
                self.cfg,
                batches=batches,
                device=device,
                num_workers=self.num_workers,
                on_error=self.on_error,
            ),
            [np.asarray(b) for b in reversed(batches)],
        )

    def close(self) -> None:
        """Stop decoding ahead (the loop is done, or left early on an error)."""
        if self._decoding is not None:
            self._decoding[0].close()
            self._decoding = None

    def load(self, idx: np.ndarray, device: str) -> Any:
        if self.what == "path":
            # A file that cannot be decoded raises a ValueError naming its path and its
            # position in X (or, with on_error="skip", is listed in self.skipped and its row
            # is left black: the caller drops it).
            if self._decoding is not None and np.array_equal(self._decoding[1][-1], idx):
                self._decoding[1].pop()
                batch = next(self._decoding[0])
            else:
                self.close()  # not the batch decoded ahead: decode this one here
                paths = [self.X[i] for i in idx.tolist()]
                batch = decode_images(
                    paths,
                    self.cfg,
                    device=device,
                    index=idx,
                    num_workers=self.num_workers,
                    on_error=self.on_error,
                )
            if not batch.skipped:
                return batch.images
            self.skipped.extend(batch.skipped)
            out = batch.images.new_zeros((len(idx), *batch.images.shape[1:]))
            out[to_device(_rows_of(idx, batch.index), out.device)] = batch.images
            return out
        arrays = list(pool(self.num_workers).map(self._decoded, [int(i) for i in idx]))
        return to_device(np.stack(arrays), device)

    def drop_memo(self) -> None:
        self._memo.clear()


def _rows_of(idx: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Where each of ``positions`` sits in ``idx``."""
    order = np.argsort(idx, kind="stable")
    return order[np.searchsorted(idx, positions, sorter=order)]
