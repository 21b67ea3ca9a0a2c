"""Compiled backbones (``torch.compile``), one per loaded network and mode in a process.

A loaded backbone is shared per process and device (the model cache of
:func:`~faast_sklearn.backbones.load_backbone`); its compiled modules live on it, one per mode,
so every later call and fit reuses them, and they go with it
(:func:`~faast_sklearn.backbones.clear_backbone_cache`). Clearing the feature cache
(:func:`~faast_sklearn.clear_cache`) keeps them. A compiled module shares the network's
parameters. Batches are padded to one shape (:func:`._forward.backbone_compute`) so that it
compiles once; the first call, which compiles, is timed (``warmup_s``) and reported.
"""

from __future__ import annotations

import threading

from ..backbones import Backbone
from ..utils._torch import import_torch
from ._forward import use_channels_last

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_LOCK = threading.Lock()


def compile_mode(compile: bool | str) -> str | None:
    """The ``torch.compile`` mode of a ``compile=`` parameter (validated by the extractor),
    None for no compilation."""
    return (
        None if compile is False or compile is None else "default" if compile is True else compile
    )


def compiled_model(backbone: Backbone, device: str, mode: str) -> dict:
    """``{"model": compiled module, "warmup_s": seconds of the compiling call or None}`` of
    this loaded backbone (one per process and device) in ``mode``, made once."""
    torch = import_torch()
    use_channels_last(backbone, device)  # before compiling: it changes the weights' strides
    with _LOCK:
        entries = backbone.__dict__.setdefault("_faast_compiled", {})
        entry = entries.get(mode)
        if entry is None:
            model = torch.compile(backbone.model, mode=mode, dynamic=False)
            entry = entries[mode] = {"model": model, "warmup_s": None}
    return entry
