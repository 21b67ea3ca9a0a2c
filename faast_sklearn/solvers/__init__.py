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


# solver="auto" solves NumPy problems below HOST_FLOPS (in fit_flops) on the host even where
# a GPU is present: transfers, kernel launches and synchronisations cost more than the
# arithmetic there. Measured with benchmarks/bench_fit_overhead.py on an H200 host (16 cores,
# OpenBLAS; results/logs/fit-overhead-h200.json): d = 1280, N = 10 and 50 rows took 1.2 and
# 1.7 ms on the host against 2.3 and 2.5 ms on CUDA; at N = 160 the GPU wins (6.6 vs 4.8 ms).
HOST_FLOPS = 8e6


def fit_flops(n_samples: int, n_features: int) -> float:
    """The Gram matrix's cost, ``min(N, d)^2 max(N, d)``: the measure of a fit's size."""
    return float(min(n_samples, n_features)) ** 2 * max(n_samples, n_features)


# Host linear algebra between SERIAL_FLOPS and ONE_THREAD_FLOPS runs on one BLAS thread: waking
# idle BLAS threads costs more than the products there. Measured side by side: a 50-row fit
# (d = 768, 10 classes) on this project's 2-core CI machine took 32.5 ms with OpenBLAS's 2
# threads and 3.6 ms with one; on an H200 host (16 cores) N = 160 took 14-21 ms against
# 5.6-7.5 ms (benchmarks/results/logs/fit-overhead-h200.json). Below SERIAL_FLOPS OpenBLAS
# runs a GEMM on one thread by itself (m n k <= 65536 x GEMM_MULTITHREAD_THRESHOLD = 4).
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
