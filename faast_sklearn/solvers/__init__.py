"""Fast-weight solvers: sufficient statistics, their spectral solve, and the back-ends."""

from __future__ import annotations

import contextlib
import functools
import threading

from ..utils._torch import is_tensor, resolve_device, torch_available
from ._backends import Backend, ScipyBackend, TorchBackend
from ._spectral import Solution, Spectrum, no_rows_solution, solve, spectrum
from ._stats import Moments, Statistics

SOLVERS = {"scipy": ScipyBackend, "torch": TorchBackend}


# solver="auto" solves NumPy problems below HOST_FLOPS (in fit_flops) on the host even where a
# GPU is present (H200 host, d = 1280: N = 50 took 1.7 ms on the host, 2.5 on CUDA; N = 160,
# 6.6 against 4.8; benchmarks/results/logs/fit-overhead-h200.json).
HOST_FLOPS = 8e6


def fit_flops(n_samples: int, n_features: int) -> float:
    """The Gram matrix's cost, ``min(N, d)^2 max(N, d)``: the measure of a fit's size."""
    return float(min(n_samples, n_features)) ** 2 * max(n_samples, n_features)


# Host linear algebra between SERIAL_FLOPS and ONE_THREAD_FLOPS runs on one BLAS thread (a
# 50-row fit, d = 768, on 2 cores: 32.5 ms on 2 threads, 3.6 on one; H200 host, N = 160: 14-21
# against 5.6-7.5 ms). Below SERIAL_FLOPS OpenBLAS runs a GEMM on one thread by itself.
SERIAL_FLOPS = 65536 * 4
ONE_THREAD_FLOPS = 6e7


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def host_threads(flops: float, device: str = "cpu"):
    """A context in which host work of ``flops`` (between ``SERIAL_FLOPS`` and
    ``ONE_THREAD_FLOPS``) runs on one BLAS thread; a no-op elsewhere, on another ``device``,
    and outside the main thread (the BLAS setting is process-wide: limits set and restored by
    threads overlapping could restore out of order)."""
    if (
        device != "cpu"
        or not SERIAL_FLOPS < flops < ONE_THREAD_FLOPS
        or threading.current_thread() is not threading.main_thread()
    ):
        return contextlib.nullcontext()
    return _blas_controller().limit(limits=1, user_api="blas")


def resolve_backend(solver: str, device, X=None) -> Backend:
    """The one place where ``solver="auto"`` and ``device="auto"`` are resolved: torch for a
    tensor or a CUDA device (but scipy below ``HOST_FLOPS``), scipy otherwise and wherever
    torch is not installed; ``device="auto"`` is the tensor's own, else CUDA if present."""
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
    return fit_flops(n, d) < HOST_FLOPS


__all__ = [
    "SOLVERS",
    "Backend",
    "Moments",
    "Solution",
    "Spectrum",
    "Statistics",
    "fit_flops",
    "host_threads",
    "no_rows_solution",
    "resolve_backend",
    "solve",
    "spectrum",
]
