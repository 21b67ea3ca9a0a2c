"""Row keys: what identifies one input row in the cache, always :func:`content_key` by content.

Arrays and tensors by their row's bytes with a tag of dtype, row shape and layout (a tensor
and an array of equal values and dtype share keys; bfloat16 bits are tagged apart from
int16); strings by their text; PIL images by mode, size, palette and pixels; image files by
absolute path, size, ``st_mtime_ns``, ``st_ino`` and ``st_ctime_ns`` (a file replaced by one
of the same size and modification time still gets a new inode or change time); other items
(a callable's samples) by :func:`content_key` of the item.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..utils._arrays import kept_copy, same_bytes
from ..utils._cache import STORE
from ..utils._content_key import KEY_BYTES, content_key, content_keys
from ..utils._threads import n_threads, pool
from ..utils._torch import import_torch, is_tensor
from ._images import is_pil

# Rows at least this large are hashed in worker threads (hashlib releases the GIL on them);
# below it a thread hand-off costs more than hashing the row.
_THREADED_ROW_BYTES = 16 * 1024


def host_bits(t: Any) -> tuple[np.ndarray, str]:
    """A tensor's values on the host, and the dtype tag to key them by. NumPy has no
    bfloat16: its int16 bits are keyed, under a tag that keeps them apart from int16."""
    torch = import_torch()
    t = t.detach()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).cpu().numpy(), "bf16"
    host = t.cpu().numpy()
    return host, host.dtype.str


def array_row_keys(host: np.ndarray, tag: str, idx: np.ndarray, num_workers: int) -> list[bytes]:
    """Keys of rows ``idx`` of a host array whose values are tagged ``tag``."""
    size = host[0].nbytes if len(host) else 0
    threads = n_threads(num_workers)
    if size < _THREADED_ROW_BYTES or threads == 1 or len(idx) < 2 * threads:
        return content_keys(_prefix(host, tag), _row_bytes(host, idx))
    if host.flags.c_contiguous:
        flat = memoryview(host.reshape(-1).view(np.uint8))

        def row(i: int) -> memoryview:
            return flat[i * size : (i + 1) * size]
    else:

        def row(i: int) -> memoryview:
            return memoryview(np.ascontiguousarray(host[i]).reshape(-1).view(np.uint8))

    def run(block: list[int]) -> list[bytes]:
        return content_keys(_prefix(host, tag), map(row, block))

    rows = idx.tolist()
    keys: list[bytes] = [b""] * len(rows)
    parts = pool(num_workers).map(run, [rows[k::threads] for k in range(threads)])
    for k, part in enumerate(parts):
        keys[k::threads] = part
    return keys


def _prefix(host: np.ndarray, tag: str) -> str:
    return f"row:{tag}:{host.shape[1:]}"


def _row_bytes(host: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of ``host`` as a 2-D uint8 array (a view where they are a range)."""
    chunk = host[idx[0] : idx[-1] + 1] if is_range(idx) else host[idx]
    return np.ascontiguousarray(chunk).reshape(len(idx), -1).view(np.uint8)


def is_range(idx: np.ndarray) -> bool:
    """Whether ``idx`` is a run of consecutive row numbers (then a slice, a view, serves)."""
    return len(idx) > 0 and idx[-1] - idx[0] == len(idx) - 1 and bool(np.all(np.diff(idx) == 1))


def chunk_row_keys(host: np.ndarray, tag: str, idx: np.ndarray, num_workers: int) -> list[bytes]:
    """:func:`array_row_keys`, remembered in the cache for chunks of small rows seen before.

    A grid search hands the extractor each fold once per grid point, each time a new array of
    the same rows. A chunk of small rows (a 1,024-row chunk of 28 x 28 images is 0.8 MB) is
    found again by a sample of its bytes, then compared in full with a private copy: a
    fraction of the cost of hashing its rows one by one. Large rows are hashed in parallel
    threads instead, where a copy would cost as much as the hashing.
    """
    size = host[0].nbytes if len(host) else 0
    if size >= _THREADED_ROW_BYTES or not len(idx):
        return array_row_keys(host, tag, idx, num_workers)
    rows = _row_bytes(host, idx)
    data = rows.reshape(-1)
    shape = (len(idx), *host.shape[1:])
    key = content_key("chunk", tag, shape, data[:: max(1, data.size // 4096)])
    found = STORE.get(key, accept=lambda entry: same_bytes(entry[0], data))
    if found is not None:
        return found[1].tolist()
    keys = content_keys(_prefix(host, tag), rows)
    # The rows' bytes and their keys, packed (16 B a key), each in pages of their own.
    packed = kept_copy(np.frombuffer(b"".join(keys), dtype=f"V{KEY_BYTES}"))
    STORE.put(key, (kept_copy(data), packed), nbytes=data.nbytes + packed.nbytes)
    return keys


def path_key(path: Any) -> bytes:
    """An image file: absolute path, size, modification and change times (ns) and inode."""
    p = os.path.abspath(os.fspath(path))
    try:
        st = os.stat(p)
    except OSError:  # no such file (skipped, with on_error="skip": never cached)
        return content_key("path", p, "missing")
    return content_key("path", p, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def pil_key(img: Any) -> bytes:
    palette = img.getpalette() if img.mode in ("P", "PA") else None  # indices need colours
    return content_key("pil", img.mode, img.size, bytes(palette or b""), img.tobytes())


def text_key(text: str) -> bytes:
    return content_key("text", text)


def item_key(item: Any) -> bytes:
    """Key of one item given to a callable backbone as it is (array rows key as rows do)."""
    if is_tensor(item):
        host, tag = host_bits(item)
        return content_key("item", tag, host)
    if isinstance(item, np.ndarray) and item.dtype.kind not in "OV":
        return content_key("item", item.dtype.str, item)
    if is_pil(item):
        return pil_key(item)
    if isinstance(item, (tuple, list)):  # element by element: tensors inside are not pickled
        return content_key(type(item).__name__, [item_key(x) for x in item])
    if isinstance(item, dict):
        return content_key("dict", [(repr(k), item_key(v)) for k, v in sorted(item.items())])
    return content_key("object", item)
