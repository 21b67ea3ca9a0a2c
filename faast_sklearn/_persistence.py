"""Save and load estimators as data only: loading a file runs none of its content.

A saved model is one ``.npz`` archive: ``metadata.json`` (versions, class name, parameters and
the fitted state as JSON, arrays as references ``{"__array__": "a3"}``, a SHA-256 digest) and
the arrays ``a0.npy``... read with ``allow_pickle=False`` (see :ref:`persistence`). The state
is ``__getstate__`` less the solution, solved again at first use. Only JSON values, arrays of
numbers, booleans or strings, dtypes, tuples, dicts and ``_DATACLASSES`` are written.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import secrets
import zipfile
from typing import Any

import numpy as np
import sklearn
from numpy.lib import format as npy_format
from sklearn.utils.fixes import parse_version

from ._version import PICKLE_KEY, __version__
from .backbones import BackboneSpec
from .solvers._stats import Moments, Statistics
from .utils._content_key import content_key
from .utils._torch import to_host

__all__ = ["load", "save"]

FORMAT = "faast_sklearn"
FORMAT_VERSION = 1
_METADATA = "metadata.json"
# Solved again from stats_ at first use; also a pickle's version key, checked here instead.
_NOT_SAVED = ("_solution", PICKLE_KEY)
_DATACLASSES = {cls.__name__: cls for cls in (Statistics, Moments, BackboneSpec)}
_HINTS = {
    "backbone": "Register it with faast_sklearn.register_backbone and pass its name.",
    "prior": "Save the prior model separately and set prior=None or 'identity' here.",
    "classes_": "Labels must be numbers, booleans or strings: fit on y.astype(str), say.",
    "_label_dtype": "Labels must be numbers, booleans or strings: fit on y.astype(str), say.",
}


def _estimator_classes() -> dict[str, type]:
    from ._classifier import FAASTClassifier
    from ._regressor import FAASTRegressor

    return {cls.__name__: cls for cls in (FAASTClassifier, FAASTRegressor)}


class _Encoder:
    """Turns a value into JSON, moving its arrays to ``self.arrays``."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def _add(self, a: np.ndarray) -> str:
        name = f"a{len(self.arrays)}"
        self.arrays[name] = a
        return name

    def __call__(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, np.generic) and value.dtype.kind in "biufU":
            return value.item()
        value = to_host(value)
        if isinstance(value, np.ndarray) and value.dtype.kind in "biufcUS":
            return {"__array__": self._add(value)}
        if isinstance(value, np.ndarray) and all(type(v) is str for v in value.flat):
            # Strings in an object array (feature names, labels from pandas): stored as text.
            return {"__array__": self._add(value.astype(str)), "object": True}
        if isinstance(value, np.dtype) and value.kind in "biufcUSO":  # a dtype holds no data
            return {"__dtype__": value.str}
        if isinstance(value, (list, tuple)):
            items = [self(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return items if isinstance(value, list) else {"__tuple__": items}
        if isinstance(value, dict):
            return {
                "__dict__": [[self(k, where), self(v, f"{where}[{k!r}]")] for k, v in value.items()]
            }
        known = _DATACLASSES.get(type(value).__name__)
        if known is type(value) and dataclasses.is_dataclass(value):
            fields = {
                f.name: self(getattr(value, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(value)
            }
            return {"__dataclass__": type(value).__name__, "fields": fields}
        what = (
            f"an array of dtype {value.dtype}"
            if hasattr(value, "dtype")
            else f"a {type(value).__name__}"
        )
        root = where.split(".")[0].split("[")[0]
        raise TypeError(
            f"faast_sklearn.save stores data only, and {where} is {what}. "
            f"{_HINTS.get(root, '')} For files you trust, pickle or joblib can store any "
            "model (loading a pickle runs code)."
        )


def _decode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        a = arrays[value["__array__"]]
        return a.astype(object) if value.get("object") else a
    if "__dtype__" in value:
        dtype = np.dtype(value["__dtype__"])
        if dtype.kind not in "biufcUSO":
            raise ValueError(f"Unexpected dtype {dtype} in a saved model.")
        return dtype
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in value["__dict__"]}
    cls = _DATACLASSES[value["__dataclass__"]]
    return cls(**{k: _decode(v, arrays) for k, v in value["fields"].items()})


def _digest(metadata: dict, arrays: dict[str, np.ndarray]) -> str:
    """Content digest of the metadata (less the digest) and every array, by name."""
    text = json.dumps({k: v for k, v in metadata.items() if k != "sha256"}, sort_keys=True)
    return content_key(text, sorted(arrays.items())).hex()


def save(estimator, path) -> None:
    """Save a faast_sklearn estimator to a file that loads without running code.

    The ``.npz`` archive holds the parameters and the fitted statistics: the model loaded by
    :func:`load` predicts as this one and continues ``partial_fit`` exactly. The write is
    atomic: an interrupted save leaves a previous file at ``path`` intact.

    Parameters
    ----------
    estimator : FAASTClassifier or FAASTRegressor
        Fitted or not.
    path : str or os.PathLike
        Where to write (conventionally ending in ``.npz``); an existing file is replaced.

    Raises
    ------
    TypeError
        If the estimator is not one of this package's, or holds something that is not plain
        data (a callable ``backbone`` or ``prior``, an estimator ``prior``, object labels).

    See Also
    --------
    load : Read a file written by ``save``.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_digits
    >>> from faast_sklearn import FAASTClassifier, load, save
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = FAASTClassifier().partial_fit(X[:500], y[:500])
    >>> path = os.path.join(tempfile.mkdtemp(), "digits.npz")
    >>> save(clf, path)
    >>> loaded = load(path).partial_fit(X[500:1000], y[500:1000])  # the stream goes on
    >>> round(loaded.score(X[1000:], y[1000:]), 2)
    0.9
    """
    name = type(estimator).__name__
    if _estimator_classes().get(name) is not type(estimator):
        raise TypeError(
            f"faast_sklearn.save stores this package's estimators "
            f"({', '.join(_estimator_classes())}); got {name}. Use skops or joblib for others."
        )
    encode = _Encoder()
    params = estimator.get_params(deep=False)
    state = {
        k: v for k, v in estimator.__getstate__().items() if k not in params and k not in _NOT_SAVED
    }
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "faast_sklearn_version": __version__,
        "sklearn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "class": name,
        "params": {k: encode(v, k) for k, v in params.items()},
        "state": {k: encode(v, k) for k, v in state.items()},
    }
    metadata["sha256"] = _digest(metadata, encode.arrays)
    _write_atomic(os.fspath(path), metadata, encode.arrays)


def _write_atomic(path: str, metadata: dict, arrays: dict[str, np.ndarray]) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    # Beside the target (os.replace renames on one file system), with a new file's usual
    # permissions (mkstemp's would be owner-only).
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                zf.writestr(_METADATA, json.dumps(metadata, indent=1))
                for key, a in arrays.items():
                    with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                        npy_format.write_array(member, a, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # the rename itself on disk (POSIX)
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load(path):
    """Load an estimator written by :func:`save`, running no code from the file.

    Only this package's estimators are built, from JSON values and NumPy arrays read with
    ``allow_pickle=False``, after the file's SHA-256 digest is checked.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.

    Returns
    -------
    estimator : FAASTClassifier or FAASTRegressor

    Raises
    ------
    ValueError
        If the file is not a faast_sklearn model, is corrupt or modified, or was written in
        another format version or by a newer faast_sklearn.

    See Also
    --------
    save : Write an estimator to a file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from faast_sklearn import FAASTRegressor, load, save
    >>> X = np.arange(20.0).reshape(10, 2)
    >>> reg = FAASTRegressor(alpha=1.0).fit(X, X.sum(axis=1))
    >>> path = os.path.join(tempfile.mkdtemp(), "reg.npz")
    >>> save(reg, path)
    >>> np.array_equal(load(path).predict(X), reg.predict(X))
    True
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"PK\x03\x04"):
        raise ValueError(
            f"{path} is not a faast_sklearn model file (not an .npz archive). If it is a "
            "pickle, load it with pickle or joblib only if you trust its origin: unpickling "
            "runs code."
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        metadata = json.loads(archive.read(_METADATA))
    except KeyError:
        raise ValueError(f"{path} is an .npz archive but not a faast_sklearn model file.") from None
    except (zipfile.BadZipFile, EOFError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path} is truncated or corrupt ({exc}).") from exc
    _check_header(metadata, path)
    arrays = {}
    try:
        for member in archive.namelist():
            if member != _METADATA:
                _check_array_size(archive, member)
                with archive.open(member) as f:
                    key = member.removesuffix(".npy")
                    arrays[key] = npy_format.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ValueError(f"{path} is truncated or corrupt ({exc}).") from exc
    if metadata.get("sha256") != _digest(metadata, arrays):
        raise ValueError(
            f"{path} was modified after it was written: its content does not match the "
            "SHA-256 digest it records. Refusing to load it."
        )
    try:
        cls = _estimator_classes()[metadata["class"]]
        params, state = (
            {k: _decode(v, arrays) for k, v in metadata[part].items()}
            for part in ("params", "state")
        )
        estimator = cls(**params)
        if not all(k.isidentifier() and (k[0] == "_" or k[-1] == "_") for k in state):
            raise ValueError("fitted state names must start or end with an underscore")
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path} holds a model this faast_sklearn cannot build ({exc}).") from exc
    estimator.__setstate__({**state, PICKLE_KEY: __version__})
    return estimator


def _check_array_size(archive: zipfile.ZipFile, member: str) -> None:
    """A ValueError where an array's header declares more bytes than its member holds (before
    any memory is allocated for it)."""
    with archive.open(member) as f:
        version = npy_format.read_magic(f)
        read = (
            npy_format.read_array_header_1_0
            if version == (1, 0)
            else npy_format.read_array_header_2_0
        )
        shape, _, dtype = read(f)
    if math.prod(shape) * dtype.itemsize > archive.getinfo(member).file_size:
        raise ValueError(f"array {member!r} declares shape {shape}, more than the file holds")


def _check_header(metadata: Any, path: str) -> None:
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is an .npz archive but not a faast_sklearn model file.")
    version = metadata.get("format_version")
    written_by = metadata.get("faast_sklearn_version", "unknown")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} is in faast_sklearn file format version {version!r} (written by "
            f"faast_sklearn {written_by}); this faast_sklearn ({__version__}) reads format "
            f"version {FORMAT_VERSION}. Install the version that wrote it."
        )
    try:
        newer = parse_version(str(written_by)) > parse_version(__version__)
    except ValueError:  # packaging's InvalidVersion
        newer = True
    if newer:
        raise ValueError(
            f"{path} was written by faast_sklearn {written_by}, newer than the installed "
            f"{__version__}: upgrade faast_sklearn to load it."
        )
