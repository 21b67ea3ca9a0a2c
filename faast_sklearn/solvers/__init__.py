"""Fast-weight solvers: sufficient statistics, their spectral solve, and the back-ends."""

from __future__ import annotations

from ..utils._torch import is_tensor, resolve_device, torch_available
from ._backends import Backend, ScipyBackend, TorchBackend
from ._spectral import Solution, Spectrum, solve, spectrum
from ._stats import Moments, Statistics

SOLVERS = {"scipy": ScipyBackend, "torch": TorchBackend}


# solver="auto" solves NumPy problems below this many flops (min(N, d)^2 max(N, d), the Gram
# matrix's cost) on the host even where a GPU is present: there, transfers, kernel launches
# and synchronisations cost more than the arithmetic. Measured on an H200 host (d = 768 and
# 1280): scipy 1.6-3.3 ms vs CUDA 2.4-4.3 ms at N <= 50 (< 3.3e6 flops), CUDA ahead from
# N = 160 (2e7 flops) on.
HOST_FLOPS = 8e6


def resolve_backend(solver: str, device, X=None) -> Backend:
    """The one place where ``solver="auto"`` and ``device="auto"`` are resolved.

    - ``"auto"``: torch when the data is a torch tensor or the device resolves to CUDA
      (on a GPU machine, NumPy features are solved on the GPU too, unless the problem is so
      small that the round trip would cost more than the solve: see ``HOST_FLOPS``); scipy
      otherwise, and always where torch is not installed.
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
    if solver == "auto" and tensor_device is None:
        if not resolved.startswith("cuda") or (X is not None and _tiny(X.shape)):
            return SOLVERS["scipy"]()
    return SOLVERS["torch"](resolved)


def _tiny(shape) -> bool:
    n, d = (shape[0], 1) if len(shape) < 2 else shape[:2]
    return min(n, d) ** 2 * max(n, d) < HOST_FLOPS


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
