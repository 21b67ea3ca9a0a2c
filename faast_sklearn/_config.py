"""Package configuration, in scikit-learn's style: ``set_config``, ``get_config``,
``config_context``.

Settings are global defaults copied into each thread on first use, so a ``config_context`` in
one thread leaves the others alone (scikit-learn's own ``sklearn._config`` works this way).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_DEFAULTS = {
    "cache": True,
    "cache_bytes": 2 * 1024**3,
    "device_cache_bytes": 2 * 1024**3,
}
_global = dict(_DEFAULTS)
_local = threading.local()
# Called after a bound changed (the cache registers its shrink here: this module imports
# nothing of the package, so the import graph stays one-way).
_on_bounds_changed: list = []


def _config() -> dict:
    if not hasattr(_local, "config"):
        _local.config = dict(_global)
    return _local.config


def get_config() -> dict:
    """The current values of the settings that :func:`set_config` changes.

    Returns
    -------
    config : dict
        Keys are the parameter names of :func:`set_config`.

    Examples
    --------
    >>> import faast_sklearn
    >>> faast_sklearn.get_config()["cache"]
    True
    """
    return dict(_config())


def set_config(cache=None, cache_bytes=None, device_cache_bytes=None) -> None:
    """Set the package's settings (only those passed; ``None`` leaves a setting as it is).

    Parameters
    ----------
    cache : bool, default=None
        Keep extracted features and per-fold fit statistics in memory and reuse them (see the
        user guide's "Caching" page). ``False`` turns caching off; what is held stays until
        :func:`clear_cache` or eviction. Default at start-up: ``True``.
    cache_bytes : int, default=None
        Bound on the host memory the cache holds, every byte counted (features, statistics,
        keys and indexes). Default at start-up: 2 GiB.
    device_cache_bytes : int, default=None
        Bound on the memory the cache holds on each GPU, counted per device. Entries on a
        device are dropped first when that device runs out of memory. Default at start-up:
        2 GiB.

    See Also
    --------
    config_context : Change settings for a block of code only.
    clear_cache : Drop everything the cache holds.

    Examples
    --------
    >>> import faast_sklearn
    >>> faast_sklearn.set_config(cache_bytes=512 * 1024**2)
    >>> faast_sklearn.get_config()["cache_bytes"]
    536870912
    >>> faast_sklearn.set_config(cache_bytes=2 * 1024**3)
    """
    new = {"cache": cache, "cache_bytes": cache_bytes, "device_cache_bytes": device_cache_bytes}
    for name, value in new.items():
        if value is None:
            continue
        if name == "cache":
            if not isinstance(value, bool):
                raise TypeError(f"cache must be True or False; got {value!r}.")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative number of bytes; got {value!r}.")
        _config()[name] = value
        # A setting made outside any context is the new default of threads started later.
        if not getattr(_local, "depth", 0):
            _global[name] = value
    if new["cache_bytes"] is not None or new["device_cache_bytes"] is not None:
        for hook in _on_bounds_changed:
            hook()


@contextmanager
def config_context(*, cache=None, cache_bytes=None, device_cache_bytes=None):
    """Change the package's settings inside a ``with`` block, in this thread only.

    Parameters
    ----------
    cache, cache_bytes, device_cache_bytes
        As in :func:`set_config`.

    Examples
    --------
    >>> import faast_sklearn
    >>> with faast_sklearn.config_context(cache=False):
    ...     faast_sklearn.get_config()["cache"]
    False
    """
    old = get_config()
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        set_config(cache=cache, cache_bytes=cache_bytes, device_cache_bytes=device_cache_bytes)
        yield
    finally:
        _local.depth -= 1
        _config().update(old)
