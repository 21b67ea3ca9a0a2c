"""Compiled backbones (``torch.compile``), one per network, device and mode in a process.

The compiled module is kept in the package's one cache (:data:`~faast_sklearn.utils._cache.
STORE`) under the network's content key, its device and the mode, so that every fit in the
process reuses it; it shares the parameters of the loaded backbone, so it declares no bytes
of its own. Batches are padded to one shape (:func:`._forward.backbone_compute`) so that it
compiles once; the first call, which compiles, is timed (``warmup_s``) and reported.
"""

from __future__ import annotations

from ..backbones import Backbone
from ..utils._cache import STORE, content_key
from ..utils._torch import import_torch
from ._forward import use_channels_last

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(compile: bool | str) -> str | None:
    """The ``torch.compile`` mode of a ``compile=`` parameter, None for no compilation."""
    if compile is False or compile is None:
        return None
    if compile is True:
        return "default"
    if compile not in MODES:
        raise ValueError(f"compile must be a bool or one of {MODES}; got {compile!r}.")
    return compile


def compiled_model(backbone: Backbone, model_key: bytes, device: str, mode: str) -> dict:
    """``{"model": compiled module, "warmup_s": seconds of the compiling call or None}``,
    made once per ``model_key`` (the network's content key), device and mode."""
    torch = import_torch()
    channels_last = use_channels_last(backbone, device)  # before compiling: it changes strides
    key = content_key("compiled backbone", model_key, str(device), mode, channels_last)
    entry = STORE.get(key)
    if entry is None or entry["source"] is not backbone.model:
        model = torch.compile(backbone.model, mode=mode, dynamic=False)
        entry = {"model": model, "warmup_s": None, "source": backbone.model}
        STORE.put(key, entry, nbytes=0)
    return entry


def warmup_seconds(entry: dict | None) -> float:
    """Seconds the compiling call took in this process (0.0 when there was none)."""
    return float(entry["warmup_s"] or 0.0) if entry is not None else 0.0


__all__ = ["MODES", "compile_mode", "compiled_model", "warmup_seconds"]
