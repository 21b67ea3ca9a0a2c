"""The package's one cache: one key function, one bounded least-recently-used store.

What is kept (extracted features, per-fold fit statistics) is keyed by :func:`._content_key.content_key`,
a SHA-256 digest (the first 16 bytes) of what determines the value: arrays and tensors by their bytes, files by
path, size, inode and change times, functions by their code, defaults, closure cells and the
globals they read. Nothing is keyed by ``id()`` or by a name alone, so a value can only be
served for the inputs that made it.

:data:`STORE` holds the values. Its bound counts every byte it holds, keys and bookkeeping
included (:data:`ENTRY_OVERHEAD` per entry, plus what the caller declares), on the host and on
each device apart (``set_config(cache_bytes=..., device_cache_bytes=...)``); least recently
used entries go first, and :meth:`Store.evict` drops a device's entries when it runs out of
memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from .._config import _ON_BOUNDS_CHANGE, get_config
from ._torch import is_tensor

# Bytes of bookkeeping per entry beyond its value: the OrderedDict node, the key's bytes
# object and the entry tuple (measured with tracemalloc: about 230 bytes on CPython 3.11).
ENTRY_OVERHEAD = 256


def nbytes_of(value: Any) -> int:
    """Bytes held by a NumPy array, a tensor, or a (nested) tuple/list/dict of them."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if is_tensor(value):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(nbytes_of(v) for v in value)
    if isinstance(value, dict):
        return sum(nbytes_of(v) for v in value.values())
    if hasattr(value, "__dataclass_fields__"):
        return sum(nbytes_of(getattr(value, f)) for f in value.__dataclass_fields__)
    return 0


class Store:
    """A thread-safe LRU map from :func:`._content_key.content_key` keys to values, bounded in bytes on the
    host and on each device apart.

    Each entry counts ``nbytes + ENTRY_OVERHEAD``; ``nbytes`` is what the caller declares
    (the value's arrays, plus any index it keeps for the entry). ``on_evict`` runs, outside
    the lock, when an entry leaves the store for any reason but replacement by the same key.
    """

    def __init__(self):
        self._entries: OrderedDict[bytes, tuple[Any, int, str, Callable | None]] = OrderedDict()
        self._bytes: dict[str, int] = {}
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _budget(device: str) -> int:
        config = get_config()
        return config["cache_bytes"] if device == "cpu" else config["device_cache_bytes"]

    def get(self, key: bytes, accept: Callable[[Any], bool] | None = None) -> Any:
        """The value stored under ``key`` (now the most recently used), or None; a value that
        ``accept`` refuses (a key made from a sample of the data, whose full comparison
        fails) is a miss."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or (accept is not None and not accept(entry[0])):
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(
        self,
        key: bytes,
        value: Any,
        *,
        nbytes: int | None = None,
        device: str = "cpu",
        on_evict: Callable[[], None] | None = None,
    ) -> bool:
        """Keep ``value`` under ``key``; False (nothing kept) when caching is off or the value
        alone exceeds its device's bound."""
        size = nbytes_of(value) if nbytes is None else int(nbytes)
        if not self.admits(size, device):
            return False
        size += ENTRY_OVERHEAD
        dropped = []
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes[old[2]] -= old[1]
            self._entries[key] = (value, size, device, on_evict)
            self._bytes[device] = self._bytes.get(device, 0) + size
            dropped = self._shrink(device)
        _run_evicted(dropped)
        return True

    def admits(self, nbytes: int, device: str = "cpu") -> bool:
        """Whether :meth:`put` would keep a value of ``nbytes`` on ``device`` (caching is on
        and the value fits the bound): a caller can skip making a copy that would not be."""
        return bool(get_config()["cache"]) and nbytes + ENTRY_OVERHEAD <= self._budget(device)

    def _shrink(self, device: str) -> list:
        """Drop least recently used entries of ``device`` until it is within its bound."""
        budget, dropped = self._budget(device), []
        if self._bytes.get(device, 0) <= budget:
            return dropped
        for key in [k for k, e in self._entries.items() if e[2] == device]:
            if self._bytes[device] <= budget:
                break
            dropped.append(self._pop(key))
        return dropped

    def _pop(self, key: bytes):
        value, size, device, on_evict = self._entries.pop(key)
        self._bytes[device] -= size
        return on_evict

    def shrink(self) -> None:
        """Apply the current bounds (after ``set_config`` lowered one)."""
        with self._lock:
            dropped = [cb for device in list(self._bytes) for cb in self._shrink(device)]
        _run_evicted(dropped)

    def evict(self, device: str | None = None) -> None:
        """Drop every entry on ``device`` (every device but the host if None)."""
        with self._lock:
            keys = [
                k
                for k, e in self._entries.items()
                if (e[2] == device if device is not None else e[2] != "cpu")
            ]
            dropped = [self._pop(k) for k in keys]
        _run_evicted(dropped)

    def clear(self) -> None:
        """Drop every entry and zero the hit and miss counters."""
        with self._lock:
            dropped = [self._pop(k) for k in list(self._entries)]
            self.hits = self.misses = 0
        _run_evicted(dropped)

    def info(self) -> dict:
        with self._lock:
            return {
                "entries": len(self._entries),
                "nbytes": {d: n for d, n in self._bytes.items() if n},
                "hits": self.hits,
                "misses": self.misses,
            }


def _run_evicted(callbacks: list) -> None:
    for callback in callbacks:
        if callback is not None:
            callback()


STORE = Store()
_ON_BOUNDS_CHANGE.append(STORE.shrink)


def clear_cache() -> None:
    """Drop everything the package's cache holds (features and fit statistics, on the host and
    on every device) and zero its counters.

    Examples
    --------
    >>> import faast_sklearn
    >>> faast_sklearn.clear_cache()
    """
    STORE.clear()


def cache_info() -> dict:
    """What the cache holds now: ``entries``, ``nbytes`` per device (``"cpu"`` for the host),
    and the ``hits`` and ``misses`` of lookups since the last :func:`clear_cache`.

    Examples
    --------
    >>> import faast_sklearn
    >>> faast_sklearn.clear_cache()
    >>> faast_sklearn.cache_info()["entries"]
    0
    """
    return STORE.info()
