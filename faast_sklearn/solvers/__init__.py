"""Fast-weight solvers: sufficient statistics, their spectral solve, and the back-ends."""

from __future__ import annotations

from ..utils._torch import is_tensor, resolve_device, torch_available
from ._backends import Backend, ScipyBackend, TorchBackend
from ._spectral import Solution, Spectrum, solve, spectrum
from ._stats import Moments, Statistics

SOLVERS = {"scipy": ScipyBackend, "torch": TorchBackend}


def resolve_backend(solver: str, device, X=None) -> Backend:
    """The one place where ``solver="auto"`` and ``device="auto"`` are resolved.

    - ``"auto"``: torch when the data is a torch tensor or the device resolves to CUDA
      (on a GPU machine, NumPy features are solved on the GPU too); scipy otherwise, and
      always where torch is not installed.
    - ``"torch"``: on ``device`` (``"auto"``: the tensor's own device, else CUDA if present).
    - ``"scipy"``: NumPy/SciPy on the CPU (tensors are copied to host memory).
    """
    tensor_device = str(X.device) if is_tensor(X) else None
    if solver == "scipy":
        if device not in ("auto", "cpu"):
            raise ValueError(f"solver='scipy' runs on the CPU; got device={device!r}.")
        return SOLVERS["scipy"]()
    if solver == "auto" and not torch_available():
        if device not in ("auto", "cpu"):
            raise ValueError(
                f"device={device!r} needs PyTorch, which is not installed: "
                "pip install faast-sklearn[torch]"
            )
        return SOLVERS["scipy"]()
    if device == "auto" and tensor_device is not None:
        resolved = tensor_device
    else:
        resolved = resolve_device(device)
    if solver == "auto" and tensor_device is None and not resolved.startswith("cuda"):
        return SOLVERS["scipy"]()
    return SOLVERS["torch"](resolved)


__all__ = [
    "SOLVERS",
    "Backend",
    "Moments",
    "Solution",
    "Spectrum",
    "Statistics",
    "resolve_backend",
    "solve",
    "spectrum",
]
