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


def _import(name: str) -> ModuleType:
    """Import and return module ``name``, with an ImportError saying what to install."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # pragma: no cover - exercised only without torch or timm
        raise ImportError(_TORCH_HINT) from exc


def import_torch() -> ModuleType:
    """:mod:`torch`, or an ImportError saying ``pip install faast-sklearn[torch]``."""
    return _import("torch")


def import_timm() -> ModuleType:
    """:mod:`timm`, or an ImportError saying ``pip install faast-sklearn[torch]``."""
    return _import("timm")


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


def to_device(values: Any, device: Any, dtype: Any = None) -> Any:
    """Host values (a list, an array) as a tensor on ``device``; to CUDA through pinned
    memory, without blocking the host until the stream has run what is queued on it (as a
    plain ``torch.tensor(values, device=...)`` does)."""
    torch = import_torch()
    t = torch.as_tensor(values, dtype=dtype)
    if str(device).startswith("cuda"):
        return t.pin_memory().to(device, non_blocking=True)
    return t


@functools.cache
def _torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def torch_available() -> bool:
    """Return True if torch can be imported (without importing it)."""
    return "torch" in sys.modules or _torch_installed()


def resolve_device(device: Any = "auto") -> str:
    """A ``device`` parameter as a torch device string: the one place where ``"auto"``
    (``"cuda"`` when torch and a CUDA device are there, else ``"cpu"``) is resolved; a
    ValueError for a malformed device or an unavailable CUDA."""
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
    module = getattr(torch, dev.type, None)  # torch.cuda, torch.mps, torch.xpu...
    available = getattr(module, "is_available", None)
    if dev.type != "cpu" and (available is None or not available()):
        what = "CUDA" if dev.type == "cuda" else f"the {dev.type!r} device type"
        raise ValueError(
            f"device={device!r} was requested but {what} is not available on this machine; "
            "use device='auto' or device='cpu'."
        )
    return str(dev)
