"""Lazy torch helpers.

torch is an optional dependency of faast_sklearn (the scipy solver needs only NumPy), so no
module imports it at import time; everything that needs it goes through :func:`import_torch`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

_TORCH_HINT = (
    "faast_sklearn needs PyTorch (and timm for image backbones) for this feature. "
    "Install them with: pip install faast-sklearn[torch]"
)


def import_torch() -> ModuleType:
    """Import and return :mod:`torch`, with an actionable error if it is missing.

    Returns
    -------
    torch : module
        The imported :mod:`torch` module.

    Raises
    ------
    ImportError
        If torch is not installed; the message says ``pip install faast-sklearn[torch]``.
    """
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(_TORCH_HINT) from exc
    return torch


def import_timm() -> ModuleType:
    """Import and return :mod:`timm`, with an actionable error if it is missing."""
    try:
        import timm
    except ImportError as exc:  # pragma: no cover - exercised only without timm
        raise ImportError(_TORCH_HINT) from exc
    return timm


@functools.cache
def _gpu_driver_present() -> bool:
    """False only where no GPU can exist: on Linux, no NVIDIA or ROCm device node.

    CUDA needs the NVIDIA driver's ``/dev/nvidiactl`` (ROCm, ``/dev/kfd``), so their absence
    answers ``torch.cuda.is_available()`` without importing torch. Elsewhere, True (ask torch).
    Probed once per process, as torch probes CUDA once.
    """
    if not sys.platform.startswith("linux"):
        return True
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd"))


def is_tensor(x: Any) -> bool:
    """Return True if ``x`` is a :class:`torch.Tensor`, without importing torch.

    If torch has not been imported by anyone, ``x`` cannot be a tensor, so the check never
    pays torch's import time.
    """
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def to_host(a):
    """``a`` as NumPy (a tensor is copied from its device); anything else as it is."""
    return a.detach().cpu().numpy() if is_tensor(a) else a


@functools.cache
def _torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def torch_available() -> bool:
    """Return True if torch can be imported (without importing it)."""
    return "torch" in sys.modules or _torch_installed()


def resolve_device(device: Any = "auto") -> str:
    """Resolve a ``device`` parameter to a concrete torch device string.

    This is the one place where ``"auto"`` is resolved.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}, str or torch.device, default="auto"
        ``"auto"`` means ``"cuda"`` when torch is installed and a CUDA device is available,
        otherwise ``"cpu"``. Other values are validated and returned as strings
        (e.g. ``"cuda:1"``).

    Returns
    -------
    device : str
        A device string accepted by :func:`torch.device`.

    Raises
    ------
    ValueError
        If the device string is malformed, or CUDA is requested but not available.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        if not torch_available() or not _gpu_driver_present():
            return "cpu"  # without importing torch (+670 MB resident) for a NumPy fit
        torch = import_torch()
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not isinstance(device, str) and type(device).__name__ != "device":
        raise TypeError(f"device must be 'auto', a string or a torch.device; got {device!r}.")
    name = str(device)
    if name == "cpu":
        return name
    torch = import_torch()
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"Invalid device {device!r}: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this machine; "
            "use device='auto' or device='cpu'."
        )
    return str(dev)
