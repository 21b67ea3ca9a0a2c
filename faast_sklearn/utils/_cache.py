"""The package's one cache: one key function, one bounded least-recently-used store.

What is kept (extracted features, per-fold fit statistics) is keyed by :func:`content_key`,
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

import hashlib
import pickle
import sys
import threading
import types
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from .._config import _ON_BOUNDS_CHANGE, get_config
from ._threads import pool
from ._torch import is_tensor

KEY_BYTES = 16  # 128-bit digests: accidental collisions are out of reach at any data size
# Bytes of bookkeeping per entry beyond its value: the OrderedDict node, the key's bytes
# object and the entry tuple (measured with tracemalloc: about 230 bytes on CPython 3.11).
ENTRY_OVERHEAD = 256
# Arrays at least this large are hashed in parallel parts (hashlib releases the GIL).
_PARALLEL_BYTES = 1 << 23
_PART_BYTES = 1 << 22
# content_keys copies small rows, each with its closing byte, into buffers of this size.
_BUFFER_BYTES = 1 << 20


class Unkeyable(TypeError):
    """Raised by :func:`content_key` for a value whose content cannot be hashed."""


def content_key(*parts: Any) -> bytes:
    """A 16-byte SHA-256 digest of ``parts``, by content (SHA-256 runs at 1-2 GB/s a core where
    the CPU has SHA instructions, three times BLAKE2b).

    Handles None, numbers, strings, bytes, tuples, lists, dicts, NumPy arrays, torch tensors
    (their values, on any device), functions (code, defaults, closure cells, the globals they
    read, recursively), modules (by name and version), and other objects by their pickled
    state. Raises :class:`Unkeyable` where none of these applies (an unpicklable object).

    Examples
    --------
    >>> import numpy as np
    >>> from faast_sklearn.utils._cache import content_key
    >>> content_key(np.arange(3)) == content_key(np.arange(3))
    True
    >>> content_key(np.arange(3)) == content_key(np.arange(3.0))
    False
    """
    h = hashlib.sha256()
    _feed(h, parts, set())
    return h.digest()[:KEY_BYTES]


def content_keys(prefix: Any, rows: Any) -> list[bytes]:
    """``[content_key(prefix, row) for row in rows]`` for bytes-like rows (memoryviews of an
    array's rows, say, or the rows of a 2-D uint8 array), a fraction of the cost on small
    rows: the prefix is hashed once, and a 2-D array's rows are fed to SHA-256 from one
    buffer that already holds each row's closing byte (one update per row).

    Examples
    --------
    >>> from faast_sklearn.utils._cache import content_key, content_keys
    >>> content_keys("tag", [b"ab", b"c"]) == [content_key("tag", b"ab"), content_key("tag", b"c")]
    True
    """
    base = hashlib.sha256(b"tuple2(")  # what _feed writes for a tuple of two parts
    _feed(base, prefix, set())
    if isinstance(rows, np.ndarray) and rows.ndim == 2 and rows.dtype == np.uint8:
        return _array_keys(base, rows)
    out = []
    for row in rows:
        data = memoryview(row).cast("B")
        h = base.copy()
        h.update(b"b%d:" % len(data))
        h.update(data)
        h.update(b")")
        out.append(h.digest()[:KEY_BYTES])
    return out


def _array_keys(base, rows: np.ndarray) -> list[bytes]:
    """Keys of the rows of a 2-D uint8 array, ``base`` having hashed what precedes a row."""
    n, size = rows.shape
    base.update(b"b%d:" % size)
    step = size + 1
    out: list[bytes] = []
    append, copy = out.append, base.copy
    per = max(1, _BUFFER_BYTES // step)
    for start in range(0, n, per):
        part = rows[start : start + per]
        buf = np.empty((len(part), step), np.uint8)
        buf[:, :size] = part
        buf[:, size] = ord(")")
        data = memoryview(buf).cast("B")
        for i in range(0, len(data), step):
            h = copy()
            h.update(data[i : i + step])
            append(h.digest()[:KEY_BYTES])
    return out


def _feed(h, obj: Any, seen: set) -> None:
    update = h.update
    if obj is None or isinstance(obj, (bool, int, float, complex, np.generic)):
        update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, str):
        data = obj.encode("utf-8", "surrogatepass")
        update(b"s%d:" % len(data) + data)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = memoryview(obj).cast("B")
        update(b"b%d:" % len(data))
        update(data)
    elif isinstance(obj, (tuple, list)):
        update(f"{type(obj).__name__}{len(obj)}(".encode())
        for x in obj:
            _feed(h, x, seen)
        update(b")")
    elif isinstance(obj, dict):
        update(b"dict%d{" % len(obj))
        for k in sorted(obj, key=repr):
            _feed(h, k, seen)
            _feed(h, obj[k], seen)
        update(b"}")
    elif isinstance(obj, np.ndarray):
        _feed_array(h, obj, seen)
    elif is_tensor(obj):
        _feed_tensor(h, obj, seen)
    elif isinstance(obj, types.ModuleType):
        version = getattr(obj, "__version__", "")
        update(f"module:{obj.__name__}:{version};".encode())
    elif isinstance(obj, (types.FunctionType, types.MethodType, types.BuiltinFunctionType)):
        _feed_function(h, obj, seen)
    elif isinstance(obj, types.CodeType):
        _feed_code(h, obj, seen)
    elif isinstance(obj, type):
        update(f"type:{obj.__module__}.{obj.__qualname__};".encode())
    else:
        _feed_object(h, obj, seen)


def _feed_array(h, a: np.ndarray, seen: set) -> None:
    h.update(f"ndarray:{a.dtype.str}:{a.shape}:".encode())
    if a.dtype.hasobject:
        for x in a.reshape(-1).tolist():
            _feed(h, x, seen)
        return
    data = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    if data.nbytes < _PARALLEL_BYTES:
        h.update(data)
        return
    # Large arrays: digests of equal parts, hashed in parallel, then hashed in order.
    parts = [data[i : i + _PART_BYTES] for i in range(0, data.nbytes, _PART_BYTES)]
    for digest in pool(0).map(_part_digest, parts):
        h.update(digest)


def _part_digest(part: np.ndarray) -> bytes:
    return hashlib.sha256(part).digest()


def _feed_tensor(h, t: Any, seen: set) -> None:
    import torch

    t = t.detach()
    if t.dtype == torch.bfloat16:  # NumPy has no bfloat16: its bits, tagged apart from int16
        host, tag = t.view(torch.int16).cpu().numpy(), "bf16"
    else:
        host = t.cpu().numpy()
        tag = host.dtype.str
    h.update(f"tensor:{tag}:".encode())
    _feed_array(h, host, seen)


def _feed_function(h, fn: Any, seen: set) -> None:
    if isinstance(fn, types.MethodType):
        h.update(b"method:")
        _feed(h, fn.__func__, seen)
        _feed(h, fn.__self__, seen)
        return
    if isinstance(fn, types.BuiltinFunctionType):
        owner = getattr(fn, "__self__", None)
        if owner is not None and not isinstance(owner, types.ModuleType):
            _feed(h, owner, seen)  # a bound method of a C object: its object's content
        h.update(f"builtin:{getattr(fn, '__module__', '')}.{fn.__qualname__};".encode())
        return
    if id(fn) in seen:  # recursion (a function reading itself as a global): named only
        h.update(f"recursive:{fn.__qualname__};".encode())
        return
    seen.add(id(fn))
    version = _library_version(fn.__module__)
    if version is not None:
        # Installed libraries (and this package) do not change within a version: named, with
        # the per-instance state (defaults, closure cells) that tells their closures apart.
        h.update(f"library:{fn.__module__}.{fn.__qualname__}:{version}:".encode())
    else:
        h.update(f"function:{fn.__module__}.{fn.__qualname__}:".encode())
        _feed_code(h, fn.__code__, seen)
    _feed(h, fn.__defaults__, seen)
    _feed(h, fn.__kwdefaults__, seen)
    cells = fn.__closure__ or ()
    try:
        _feed(h, [c.cell_contents for c in cells], seen)
    except ValueError:  # an empty cell (a name bound later in the enclosing function)
        raise Unkeyable(f"function {fn.__qualname__} has an unbound closure cell") from None
    if version is not None:
        return
    # The globals the code reads (attribute names in co_names that are not globals are skipped).
    env = fn.__globals__
    builtins = env.get("__builtins__")
    for name in _global_names(fn.__code__):
        if name in env:
            h.update(f"global:{name}=".encode())
            _feed(h, env[name], seen)
        elif builtins is not None and name not in (
            builtins if isinstance(builtins, dict) else vars(builtins)
        ):
            h.update(f"unbound:{name};".encode())


def _library_version(module_name: str | None) -> str | None:
    """The version of the installed library (or of this package) defining a function, else
    None (user code: a script, a notebook, a module outside site-packages)."""
    top = (module_name or "").partition(".")[0]
    if top == __name__.partition(".")[0]:
        return sys.modules[top].__dict__.get("__version__", "")
    module = sys.modules.get(top)
    path = getattr(module, "__file__", None) or ""
    if top in sys.stdlib_module_names or "site-packages" in path or "dist-packages" in path:
        return str(getattr(module, "__version__", ""))
    return None


def _global_names(code: types.CodeType) -> list[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):  # nested functions, lambdas, comprehensions
            names.update(_global_names(const))
    return sorted(names)


def _feed_code(h, code: types.CodeType, seen: set) -> None:
    h.update(b"code:")
    h.update(code.co_code)
    _feed(h, code.co_names, seen)
    _feed(h, code.co_varnames, seen)
    for const in code.co_consts:
        _feed(h, const, seen)


def _feed_object(h, obj: Any, seen: set) -> None:
    """Other objects (fitted estimators, modules of torch, dataclasses...): their pickled state,
    with any function inside keyed by its content rather than pickled by name."""
    if id(obj) in seen:
        h.update(f"recursive:{type(obj).__qualname__};".encode())
        return
    seen.add(id(obj))
    h.update(f"object:{type(obj).__module__}.{type(obj).__qualname__}:".encode())
    sink = _HashWriter(h)
    try:
        _KeyPickler(sink, seen).dump(obj)
    except Unkeyable:
        raise
    except Exception as exc:  # pickling can fail in many ways: the object is not keyable
        raise Unkeyable(f"cannot key a {type(obj).__name__}: {exc}") from exc


class _HashWriter:
    def __init__(self, h):
        self.write = h.update


class _KeyPickler(pickle.Pickler):
    def __init__(self, sink, seen: set):
        super().__init__(sink, protocol=5)
        self._seen = seen

    def reducer_override(self, obj):
        if obj is _keyed:
            return NotImplemented
        if isinstance(obj, (types.FunctionType, types.MethodType)) or is_tensor(obj):
            return _keyed, (content_key_seen(obj, self._seen),)
        return NotImplemented


def _keyed(key: bytes) -> bytes:  # the stand-in that reducer_override pickles
    return key


def content_key_seen(obj: Any, seen: set) -> bytes:
    h = hashlib.sha256()
    _feed(h, obj, seen)
    return h.digest()[:KEY_BYTES]


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


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
    """A thread-safe LRU map from :func:`content_key` keys to values, bounded in bytes on the
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
