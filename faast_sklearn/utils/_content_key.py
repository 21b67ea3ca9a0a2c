"""The package's one key function: :func:`content_key`, a SHA-256 digest (its first 16 bytes)
of what determines a value (see :mod:`._cache`, which keys every entry with it)."""

from __future__ import annotations

import hashlib
import pickle
import sys
import types
from typing import Any

import numpy as np

from ._threads import pool
from ._torch import is_tensor

KEY_BYTES = 16  # 128-bit digests: accidental collisions are out of reach at any data size
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

    Handles None, numbers, strings, bytes, tuples, lists, dicts, sets, NumPy arrays, torch
    tensors (their values, on any device), functions (code, defaults, closure cells, the
    globals they read, recursively), classes and modules (an installed library's by name and
    version, a user's class by its bases, methods and class attributes), and other objects by
    their pickled state (their class as a class). Raises :class:`Unkeyable` where none of these applies (an unpicklable object).

    Examples
    --------
    >>> import numpy as np
    >>> from faast_sklearn.utils._content_key import content_key
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
    >>> from faast_sklearn.utils._content_key import content_key, content_keys
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
    elif isinstance(obj, (set, frozenset)):  # in an order that no hash seed changes
        update(f"{type(obj).__name__}{len(obj)}(".encode())
        for x in sorted(obj, key=repr):
            _feed(h, x, seen)
        update(b")")
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
        _feed_type(h, obj, seen)
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


# Entries of a class's namespace that its methods and attributes already determine, or that
# say nothing about its behaviour (several cannot be pickled).
_CLASS_BOOKKEEPING = {
    "__dict__",
    "__weakref__",
    "__module__",
    "__qualname__",
    "__doc__",
    "_abc_impl",
    "__dataclass_fields__",
    "__dataclass_params__",
    "__orig_bases__",
    "__parameters__",
}
_C_DESCRIPTORS = (
    types.MemberDescriptorType,
    types.GetSetDescriptorType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
)


def _feed_type(h, cls: type, seen: set) -> None:
    """A class of an installed library by name and version; a user's class (a script's, a
    notebook's) by content: its bases and its namespace (methods by code, class attributes by
    value), so that a class redefined or changed in place is a different key."""
    version = _library_version(cls.__module__)
    h.update(f"type:{cls.__module__}.{cls.__qualname__}:".encode())
    if version is not None:
        h.update(f"{version};".encode())
        return
    if id(cls) in seen:  # a method reading its own class (super(), a global): named only
        h.update(b"recursive;")
        return
    seen.add(id(cls))
    _feed(h, cls.__bases__, seen)
    for name, value in sorted(vars(cls).items()):
        if name in _CLASS_BOOKKEEPING:
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        elif isinstance(value, property):
            value = (value.fget, value.fset, value.fdel)
        elif isinstance(value, _C_DESCRIPTORS):  # __slots__ and the like: their names say it
            value = type(value).__name__
        _feed(h, name, seen)
        _feed(h, value, seen)


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
        if isinstance(obj, type) and _library_version(obj.__module__) is None:
            return _keyed, (content_key_seen(obj, self._seen),)  # a user's class: by content
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
