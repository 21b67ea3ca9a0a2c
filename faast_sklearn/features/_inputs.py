"""Input adapters: turn any supported X into row keys (for the cache) and device batches.

Every source answers three questions for a set of row indices: what are their content keys,
what is the host batch, and has it already been resized to the backbone's input size. Images
that share a shape (arrays, tensors) travel to the device as they are -- uint8 when given as
uint8, four times smaller than float -- and are resized and normalised there; images of varying
sizes (PIL, files, datasets) are decoded and resized on the host, in worker threads.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.sparse import issparse

from ..utils._arrays import same_bytes
from ..utils._threads import n_threads, pool
from ..utils._torch import import_torch, is_tensor

_KEY_BYTES = 16  # 128-bit digests: accidental collisions are out of reach at any data size


def _digest(*parts: bytes | memoryview) -> bytes:
    h = hashlib.sha256()  # SHA-NI makes it ~2 GB/s per core; it releases the GIL
    for part in parts:
        h.update(part)
    return h.digest()[:_KEY_BYTES]


def _is_pil(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(x, Image.Image)


def _is_dataset(x: Any) -> bool:
    # Only a torch Dataset can be one, and only if torch is already imported.
    torch_mod = sys.modules.get("torch")
    return torch_mod is not None and isinstance(x, torch_mod.utils.data.Dataset)


def describe(X: Any) -> str:
    """Short description of X for error messages."""
    if isinstance(X, np.ndarray) or is_tensor(X):
        return f"{type(X).__name__} of shape {tuple(X.shape)} and dtype {X.dtype}"
    if isinstance(X, (list, tuple)):
        first = type(X[0]).__name__ if len(X) else "nothing"
        return f"{type(X).__name__} of {len(X)} {first}"
    return type(X).__name__


# ---------------------------------------------------------------------------------------------
# Image geometry, shared by the host (PIL) and device (torch) paths so that both follow timm's
# evaluation transform: resize the shorter side to size / crop_pct, then centre-crop to size.
# ---------------------------------------------------------------------------------------------


def resize_plan(h: int, w: int, cfg: dict) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """((new_h, new_w), (top, left, crop_h, crop_w)) for an (h, w) image under ``cfg``."""
    out_h, out_w = cfg["input_size"][1:]
    crop_pct = cfg.get("crop_pct") or 1.0
    scale_h, scale_w = math.floor(out_h / crop_pct), math.floor(out_w / crop_pct)
    if cfg.get("crop_mode") == "squash" or scale_h < out_h or scale_w < out_w:
        new = (scale_h, scale_w) if scale_h >= out_h and scale_w >= out_w else (out_h, out_w)
    elif scale_h == scale_w:  # torchvision Resize(int): shorter side to scale, keep aspect
        if h <= w:
            new = (scale_h, int(scale_h * w / h))
        else:
            new = (int(scale_w * h / w), scale_w)
    else:
        new = (scale_h, scale_w)
    top = int(round((new[0] - out_h) / 2.0))
    left = int(round((new[1] - out_w) / 2.0))
    return new, (top, left, out_h, out_w)


def resize_crop_tensor(x: Any, cfg: dict, max_value: float = 1.0) -> Any:
    """Resize + centre-crop a float (N, C, H, W) batch on its device, like timm's eval transform.

    ``max_value`` is the top of the pixel range (1 for [0, 1] images, 255 for uint8 ones).
    """
    torch = import_torch()
    (nh, nw), (top, left, oh, ow) = resize_plan(x.shape[-2], x.shape[-1], cfg)
    if (nh, nw) != tuple(x.shape[-2:]):
        mode = cfg.get("interpolation", "bilinear")
        mode = mode if mode in {"bilinear", "bicubic", "nearest"} else "bilinear"
        kwargs = {} if mode == "nearest" else {"align_corners": False, "antialias": True}
        x = torch.nn.functional.interpolate(x, size=(nh, nw), mode=mode, **kwargs)
        if mode == "bicubic":  # bicubic overshoots; PIL clamps to the pixel range
            x = x.clamp_(0.0, max_value)
    return x[..., top : top + oh, left : left + ow]


def resize_crop_pil(img: Any, cfg: dict) -> np.ndarray:
    """Decode-side resize + centre-crop of a PIL image to a (H, W, 3) uint8 array."""
    from PIL import Image

    resample = {
        "bicubic": Image.Resampling.BICUBIC,
        "bilinear": Image.Resampling.BILINEAR,
        "nearest": Image.Resampling.NEAREST,
        "lanczos": Image.Resampling.LANCZOS,
    }.get(cfg.get("interpolation", "bilinear"), Image.Resampling.BILINEAR)
    img = img.convert("RGB")  # grey -> 3 channels, alpha dropped (as PIL does)
    w, h = img.size
    (nh, nw), (top, left, oh, ow) = resize_plan(h, w, cfg)
    if (nh, nw) != (h, w):
        img = img.resize((nw, nh), resample=resample)
    img = img.crop((left, top, left + ow, top + oh))
    return np.asarray(img, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


def image_layout(shape: tuple[int, ...], *, prefer_channels_first: bool) -> str:
    """Infer "NHW", "NHWC" or "NCHW" from a batch shape, or raise a ValueError saying why."""
    if len(shape) == 3:
        if shape[-1] in (3, 4) and shape[1] > 4:
            raise ValueError(
                f"X has shape {shape}: a 3-D array is read as a batch of grey images (N, H, W), "
                "but its last axis looks like colour channels. For one colour image pass "
                "X[None] (shape (1, H, W, C))."
            )
        return "NHW"
    if len(shape) != 4:
        raise ValueError(
            f"Image arrays must be (N, H, W), (N, H, W, C) or (N, C, H, W); got shape {shape}."
        )
    last, second = shape[-1] in (1, 3, 4), shape[1] in (1, 3, 4)
    if last and second:
        return "NCHW" if prefer_channels_first else "NHWC"
    if last:
        return "NHWC"
    if second:
        return "NCHW"
    raise ValueError(
        f"X has shape {shape}: no axis has 1, 3 or 4 colour channels. Image arrays must be "
        "(N, H, W), (N, H, W, C) or (N, C, H, W) with C in (1, 3, 4)."
    )


# Rows at least this large are hashed in worker threads (hashlib releases the GIL on them);
# below it a thread hand-off costs more than hashing the row.
_THREADED_ROW_BYTES = 16 * 1024


# Odd 64-bit multipliers of the row fingerprints (fixed: fingerprints are compared across calls).
_ROW_MULTIPLIERS = np.random.default_rng(0x5EED).integers(
    0, 2**63, _THREADED_ROW_BYTES // 8, dtype=np.uint64, endpoint=False
) * np.uint64(2) + np.uint64(1)


def _row_fingerprints(data: np.ndarray, size: int) -> np.ndarray | None:
    """A 64-bit fingerprint of each ``size``-byte row of ``data`` (uint8, 1-D), or None where
    rows are not whole 64-bit words. Equal rows have equal fingerprints; a fingerprint only
    proposes a match, which the row's bytes then confirm."""
    if size % 8 or size // 8 > len(_ROW_MULTIPLIERS) or not len(data):
        return None
    words = data.view(np.uint64).reshape(-1, size // 8)
    mixed = words ^ (words >> np.uint64(29))  # high bytes reach the low bits of the products
    mixed *= _ROW_MULTIPLIERS[: size // 8]
    return mixed.sum(axis=1, dtype=np.uint64)


class _Chunk:
    """A keyed chunk: its bytes, its keys, and for rows found one by one (``size`` > 0) their
    fingerprints in sorted order and the keys as one array."""

    __slots__ = ("prefix", "data", "keys", "size", "sorted_fps", "order", "key_array")

    def __init__(self, prefix, data, keys, size: int, fps: np.ndarray | None):
        self.prefix, self.data, self.keys, self.size = prefix, data, keys, size
        joined = b"".join(keys)
        if fps is None or len(joined) != _KEY_BYTES * len(keys) or len(keys) != len(fps):
            self.size = 0
            return
        self.order = np.argsort(fps, kind="stable")
        self.sorted_fps = fps[self.order]
        self.key_array = np.frombuffer(joined, dtype=f"V{_KEY_BYTES}")


class _ChunkKeys:
    """Row keys of recently keyed chunks of small rows, found by comparing their bytes.

    A grid search hands the estimator the same fold arrays once per grid point. For rows of a
    few KB, finding a chunk here costs a fingerprint of a few KB sampled from it and one
    comparison with a private copy (a 1024-row chunk of 28 x 28 images, 0.8 MB: 30 us), where
    hashing the chunk costs 20 times that and hashing its rows one by one (a Python-level
    loop) more still. Equal bytes under an equal prefix (dtype, row shape, layout) mean equal
    row keys. Bounded by the bytes held: the copies and about 64 bytes per key.

    Rows are found one by one too (:meth:`known_rows`): each fold of a cross-validation is a
    new array of rows seen in other folds. A 64-bit fingerprint per row, computed and looked
    up in the chunks held with array operations only and confirmed by the row's bytes, costs
    a fraction of hashing the rows in a Python loop.
    """

    _SAMPLE = 4096  # bytes of a chunk that its fingerprint reads
    # Chunks kept per fingerprint: chunks that differ only off the sample (nearly blank images,
    # say) share one, and a lookup compares with each of them.
    _PER_FINGERPRINT = 4
    # Chunks that known_rows searches, most recent first.
    _SEARCHED = 32

    def __init__(self, max_bytes: int = 2**28):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, list[_Chunk]] = OrderedDict()
        self._rowwise: dict[bytes, list[_Chunk]] = {}  # prefix -> chunks with a row index
        self._nbytes = 0
        self._lock = threading.Lock()

    def _fingerprint(self, prefix: bytes, data: np.ndarray) -> bytes:
        h = hashlib.blake2b(prefix, digest_size=16)
        h.update(len(data).to_bytes(8, "little"))
        h.update(np.ascontiguousarray(data[:: max(1, len(data) // self._SAMPLE)]))
        return h.digest()

    @staticmethod
    def _cost(chunk: _Chunk) -> int:
        # The copy, ~64 bytes per key, and 32 per row of the row index.
        return chunk.data.nbytes + (64 + 32 * (chunk.size > 0)) * len(chunk.keys)

    def get(self, prefix: bytes, data: np.ndarray) -> list[bytes] | None:
        """The row keys of the chunk whose bytes are ``data`` (uint8, 1-D), or None."""
        fp = self._fingerprint(prefix, data)
        with self._lock:
            for chunk in self._entries.get(fp, ()):
                if chunk.prefix == prefix and same_bytes(chunk.data, data):
                    self._entries.move_to_end(fp)
                    return chunk.keys
        return None

    def known_rows(
        self, prefix: bytes, data: np.ndarray, size: int, fps: np.ndarray | None
    ) -> tuple[list, list[int]]:
        """Keys of the ``size``-byte rows of ``data`` (with :func:`_row_fingerprints` ``fps``)
        that chunks held here contain (their bytes compared), and the positions of the other
        rows, whose keys are left empty."""
        n = len(data) // size
        with self._lock:
            chunks = self._rowwise.get(prefix, [])[-self._SEARCHED :][::-1]
        if fps is None or not chunks:
            return [b""] * n, list(range(n))
        mine = data.view(np.uint64).reshape(n, size // 8)
        keys = np.zeros(n, dtype=f"V{_KEY_BYTES}")
        todo = np.arange(n)
        for chunk in chunks:
            f = fps[todo]
            pos = np.minimum(np.searchsorted(chunk.sorted_fps, f), len(chunk.sorted_fps) - 1)
            proposed = chunk.sorted_fps[pos] == f
            rows, js = chunk.order[pos[proposed]], todo[proposed]
            theirs = chunk.data.view(np.uint64).reshape(-1, size // 8)
            same = (theirs[rows] == mine[js]).all(axis=1)
            keys[js[same]] = chunk.key_array[rows[same]]
            found = np.zeros(len(todo), dtype=bool)
            found[np.flatnonzero(proposed)[same]] = True
            todo = todo[~found]
            if not len(todo):
                break
        return keys.tolist(), todo.tolist()

    def put(
        self,
        prefix: bytes,
        data: np.ndarray,
        keys: list[bytes],
        row_size: int = 0,
        fps: np.ndarray | None = None,
    ) -> None:
        """Keep the keys of a chunk; with ``row_size`` (bytes per row, one key per row) and
        its rows' fingerprints ``fps``, its rows are also found one by one by
        :meth:`known_rows`."""
        chunk = _Chunk(prefix, data.copy(), keys, row_size, fps)
        cost = self._cost(chunk)
        if cost > self.max_bytes:
            return
        fp = self._fingerprint(prefix, data)
        with self._lock:
            bucket = self._entries.setdefault(fp, [])
            bucket.append(chunk)
            if len(bucket) > self._PER_FINGERPRINT:
                self._drop(bucket.pop(0))
            self._entries.move_to_end(fp)
            self._nbytes += cost
            if chunk.size:
                self._rowwise.setdefault(prefix, []).append(chunk)
            while self._nbytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                for old in evicted:
                    self._drop(old)

    def _drop(self, chunk: _Chunk) -> None:
        self._nbytes -= self._cost(chunk)
        if chunk.size:
            rowwise = self._rowwise[chunk.prefix]
            rowwise.remove(chunk)
            if not rowwise:
                del self._rowwise[chunk.prefix]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._rowwise.clear()
            self._nbytes = 0


_CHUNK_KEYS = _ChunkKeys()


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
            raise TypeError(
                f"Image arrays must be uint8 (0-255) or floating point (0-1); got dtype {dtype}. "
                "Convert with X.astype(np.uint8) or X / 255."
            )
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
            self._host = _host_bits(self.X) if self.is_tensor else (self.X, self.X.dtype.str)
        return self._host

    def keys(self, idx: np.ndarray) -> list[bytes]:
        host, tag = self._host_array()
        base = hashlib.sha256(f"{tag}{host.shape[1:]}{self.layout}".encode())
        size = host[0].nbytes
        if host.flags.c_contiguous:
            flat8 = host.reshape(-1).view(np.uint8)  # rows are byte ranges
            flat = memoryview(flat8)

            def row(i: int) -> memoryview:
                return flat[i * size : (i + 1) * size]
        else:

            def row(i: int) -> memoryview:
                return memoryview(np.ascontiguousarray(host[i])).cast("B")

        def run(block: list[int]) -> list[bytes]:
            out = []
            for i in block:
                h = base.copy()
                h.update(row(i))
                out.append(h.digest()[:_KEY_BYTES])
            return out

        rows = idx.tolist()
        if size < _THREADED_ROW_BYTES:
            if not (host.flags.c_contiguous and _is_range(idx)):
                return run(rows)
            prefix = base.digest()
            chunk = flat8[rows[0] * size : (rows[-1] + 1) * size]
            keys = _CHUNK_KEYS.get(prefix, chunk)
            if keys is None:
                fps = _row_fingerprints(chunk, size)
                keys, missing = _CHUNK_KEYS.known_rows(prefix, chunk, size, fps)
                for j, k in zip(missing, run([rows[j] for j in missing]), strict=True):
                    keys[j] = k
                _CHUNK_KEYS.put(prefix, chunk, keys, row_size=size, fps=fps)
            return keys
        threads = n_threads(self.num_workers)
        if threads == 1 or len(rows) < 2 * threads:
            return run(rows)
        parts = pool(self.num_workers).map(run, [rows[k::threads] for k in range(threads)])
        keys: list[bytes] = [b""] * len(rows)
        for k, part in enumerate(parts):
            keys[k::threads] = part
        return keys

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
            if _is_range(idx):
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


def _is_range(idx: np.ndarray) -> bool:
    return len(idx) > 0 and idx[-1] - idx[0] == len(idx) - 1 and bool(np.all(np.diff(idx) == 1))


def _as_index(idx: np.ndarray, tensor: bool, X: Any) -> Any:
    if _is_range(idx):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    if tensor:
        return import_torch().as_tensor(idx, device=X.device)
    return idx


class ItemSource:
    """PIL images, image file paths, or a torch Dataset: decoded lazily, in worker threads."""

    kind = "image"
    sized = True
    layout = "NHWC"

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
        self._memo: dict[int, Any] = {}  # decoded images, or a callable's items, until used
        if what == "path":
            missing = [p for p in X if not os.path.isfile(os.fspath(p))]
            if missing:
                raise ValueError(
                    f"{len(missing)} of {self.n} image paths do not exist, e.g. {missing[0]!r}. "
                    "An image backbone reads strings as image file paths; for text use a text "
                    "backbone such as backbone='minilm'."
                )

    def _item(self, i: int) -> Any:
        item = self.X[int(i)]
        if self.what == "path":
            from PIL import Image

            with Image.open(os.fspath(item)) as img:
                if self.cfg is not None:
                    # JPEG only (a no-op elsewhere): decode at the smallest DCT scale (1/2, 1/4,
                    # 1/8) that is still at least the size the image is resized to. A 2048 x
                    # 1536 photo then decodes and resizes 5x faster, within 2/255 of a full
                    # decode.
                    (nh, nw), _ = resize_plan(img.height, img.width, self.cfg)
                    img.draft(None, (nw, nh))
                img.load()
                return img
        if self.what == "dataset" and isinstance(item, (tuple, list)):
            item = item[0]  # (image, label) pairs: the image
        return item

    def _decoded(self, i: int) -> np.ndarray:
        if i in self._memo:
            return self._memo.pop(i)
        item = self._item(i)
        if _is_pil(item):
            return resize_crop_pil(item, self.cfg)
        return _array_item_to_uint8(item, self.cfg)

    def keys(self, idx: np.ndarray) -> list[bytes]:
        if self.what == "path":
            # A stat per path, in this thread: threads would cost more than the system call.
            # One loop, locals only: a grid search keys every fold's paths once per grid point.
            X, fspath, isabs, abspath, stat = (
                self.X,
                os.fspath,
                os.path.isabs,
                os.path.abspath,
                os.stat,
            )
            sha256, out = hashlib.sha256, []
            for i in idx.tolist():
                p = fspath(X[i])
                if not isabs(p):
                    p = abspath(p)
                st = stat(p)
                text = b"path:%s:%d:%d" % (p.encode(), st.st_size, st.st_mtime_ns)
                out.append(sha256(text).digest()[:_KEY_BYTES])  # = _digest(text)
            return out
        if self.what == "pil":

            def key(i: int) -> bytes:
                return _pil_key(self.X[int(i)])
        elif self.cfg is None:  # a callable's items, as they are (read once: kept for raw)

            def key(i: int) -> bytes:
                item = self._item(int(i))
                self._memo[int(i)] = item
                return _item_key(item)
        else:
            # A dataset item is only known once loaded: decode now, keep it for load().
            def key(i: int) -> bytes:
                arr = self._decoded(int(i))
                self._memo[int(i)] = arr
                return _digest(f"ds:{arr.shape}".encode(), memoryview(arr).cast("B"))

        return list(pool(self.num_workers).map(key, idx))

    def raw(self, idx: np.ndarray) -> list:
        memo = self._memo
        return [memo.pop(int(i)) if int(i) in memo else self._item(i) for i in idx]

    def load(self, idx: np.ndarray, device: str) -> Any:
        torch = import_torch()
        arrays = list(pool(self.num_workers).map(self._decoded, [int(i) for i in idx]))
        batch = torch.from_numpy(np.stack(arrays))
        if device.startswith("cuda"):
            batch = batch.pin_memory().to(device, non_blocking=True)
        return batch

    def drop_memo(self) -> None:
        self._memo.clear()


def _array_item_to_uint8(item: Any, cfg: dict) -> np.ndarray:
    """One dataset item (array or tensor, HW / HWC / CHW) -> resized (H, W, 3) uint8."""
    torch = import_torch()
    x = item.detach().cpu() if is_tensor(item) else torch.from_numpy(np.asarray(item))
    if x.ndim == 2:
        x = x[None]
    elif x.ndim == 3:
        layout = image_layout((1, *x.shape), prefer_channels_first=True)
        x = x.permute(2, 0, 1) if layout == "NHWC" else x
    else:
        raise ValueError(
            f"A dataset item must be one image (2-D or 3-D); got shape {tuple(x.shape)}."
        )
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if not bool(torch.isfinite(x).all()):
        raise ValueError("X contains NaN or infinity; image pixels must be finite.")
    x = x[:3] if x.shape[0] == 4 else x.expand(3, -1, -1) if x.shape[0] == 1 else x
    x = resize_crop_tensor(x[None].clamp(0.0, 1.0), cfg)[0]
    return (x * 255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


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

    def keys(self, idx: np.ndarray) -> list[bytes]:
        return [_digest(b"text:", self.X[int(i)].encode("utf-8", "surrogatepass")) for i in idx]

    def raw(self, idx: np.ndarray) -> list[str]:
        return [self.X[int(i)] for i in idx]


def _pil_key(img: Any) -> bytes:
    palette = img.getpalette() if img.mode in ("P", "PA") else None  # indices need colours
    return _digest(f"pil:{img.mode}:{img.size}".encode(), bytes(palette or b""), img.tobytes())


def _host_bits(t: Any) -> tuple[np.ndarray, str]:
    """A tensor's values on the host, and the dtype tag to key them by. NumPy has no
    bfloat16: its int16 bits are hashed, under a tag that keeps them apart from int16."""
    torch = import_torch()
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).cpu().numpy(), "bf16"
    host = t.cpu().numpy()
    return host, host.dtype.str


def _item_key(item: Any) -> bytes:
    """Content key of one item given to a callable backbone as it is."""
    tag = None
    if is_tensor(item):
        item, tag = _host_bits(item)
    if isinstance(item, np.ndarray) and item.dtype.kind not in "OV":
        item = np.ascontiguousarray(item)  # a view's own bytes, not its base's
        head = f"raw:{tag or item.dtype.str}:{item.shape}".encode()
        return _digest(head, item.reshape(-1).view(np.uint8))
    if _is_pil(item):
        return _pil_key(item)
    if isinstance(item, (tuple, list)):  # element by element: tensors inside are not pickled
        return _digest(f"seq:{type(item).__name__}".encode(), *(_item_key(x) for x in item))
    if isinstance(item, dict):
        return _digest(b"dict:", *(_item_key((repr(k), v)) for k, v in sorted(item.items())))
    from joblib import hash as joblib_hash

    return _digest(f"obj:{joblib_hash(item)}".encode())


def _is_image_item(x: Any) -> bool:
    return isinstance(x, np.ndarray) or is_tensor(x) or _is_pil(x)


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


def _callable_source(X: Any, num_workers: int) -> Any:
    """The input of a callable backbone, keyed by content. It gets ``X[indices]`` of an array
    or a tensor, and a list of the items of a list or a torch Dataset (the sample of
    ``(sample, label)`` items: scikit-learn's folds of a Dataset are lists of them)."""
    if isinstance(X, np.ndarray) and X.dtype.kind in "OUSV":
        X = list(X)  # objects (rows of a frame of strings, images of several sizes...)
    if isinstance(X, np.ndarray) or is_tensor(X):
        return ArraySource(X, num_workers, images=False)
    if _is_dataset(X):
        return ItemSource(X, None, num_workers, "dataset")
    if not isinstance(X, (list, tuple)):
        raise TypeError(
            f"Unsupported input {describe(X)}; a callable backbone takes an array, a tensor, "
            "a list of samples or a torch Dataset."
        )
    if len(X) == 0:
        raise ValueError("X has no samples.")
    return ItemSource(list(X), None, num_workers, "dataset" if _sample_pairs(X) else "object")


def _sample_pairs(X: Sequence) -> bool:
    """Whether X lists (image, label) items: what indexing a torch Dataset item by item gives."""
    return all(isinstance(x, (tuple, list)) and len(x) and _is_image_item(x[0]) for x in X)


def text_model_error(what: str) -> TypeError:
    return TypeError(
        f"This backbone is a text model: X must be a list of strings; got {what}. "
        "For images use an image backbone such as 'efficientnet_lite0' or 'vit_base'."
    )


def make_source(X: Any, modality: str, cfg: dict | None, num_workers: int) -> Any:
    """Pick the adapter for ``X`` and the backbone's ``modality``; clear errors otherwise."""
    if isinstance(X, str):
        raise TypeError(
            "X must be a collection of samples, not a single string; wrap it in a list."
        )
    from ._rows import LazyRows, view_source  # _rows builds on this module

    if isinstance(X, LazyRows):
        return view_source(X, modality, cfg, num_workers)
    if issparse(X):
        raise TypeError(
            "X is a sparse matrix; backbones read images, strings or dense arrays. "
            "Pass X.toarray() to a callable backbone."
        )
    if isinstance(X, np.ma.MaskedArray):
        raise TypeError("X is a masked array; pass X.filled(value) or X.compressed() instead.")
    if _is_pil(X):
        raise TypeError("X is a single PIL image; pass a list of images: [image].")
    if hasattr(X, "__array__") and not (
        isinstance(X, (np.ndarray, list, tuple)) or is_tensor(X) or _is_dataset(X)
    ):
        X = np.asarray(X)  # frames and other array-likes: their values
    texts = _as_sequence_of_str(X)
    if modality == "any":
        return TextSource(texts) if texts is not None else _callable_source(X, num_workers)
    if modality == "text":
        if texts is None:
            raise text_model_error(describe(X))
        return TextSource(texts)
    if texts is not None:
        return ItemSource(texts, cfg, num_workers, "path")
    if isinstance(X, np.ndarray) or is_tensor(X):
        if isinstance(X, np.ndarray) and X.dtype.kind in "OUS":
            raise TypeError(f"Cannot read images from an array of dtype {X.dtype}.")
        return ArraySource(X, num_workers)
    if _is_dataset(X):
        return ItemSource(X, cfg, num_workers, "dataset")
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError("X has no samples.")
        if all(_is_pil(x) for x in X):
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
