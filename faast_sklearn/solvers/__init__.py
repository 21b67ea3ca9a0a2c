"""Fast-weight solvers: sufficient statistics, their spectral solve, and the back-ends."""

from __future__ import annotations

import contextlib
import functools
import threading

from ..utils._torch import is_tensor, resolve_device, torch_available
from ._backends import Backend, ScipyBackend, TorchBackend
from ._spectral import Solution, Spectrum, solve, spectrum
from ._stats import Moments, Statistics

SOLVERS = {"scipy": ScipyBackend, "torch": TorchBackend}


# Sizes in flops (min(N, d)^2 max(N, d), the Gram matrix's cost) where overheads rule a fit.
# Measured with benchmarks/bench_fit_overhead.py on an H200 host (16 cores, OpenBLAS;
# results/logs/fit-overhead-h200.json, and its first version in the git history):
# - HOST_FLOPS: solver="auto" solves smaller NumPy problems on the host even where a GPU is
#   present, as transfers, kernel launches and synchronisations cost more than the arithmetic
#   (d = 1280, N = 10, 50 rows: 1.2, 1.7 ms on the host, 2.3, 2.5 ms on CUDA; N = 160: 6.6
#   vs 4.8 ms);
# - ONE_THREAD_FLOPS: host work below it runs on one BLAS thread, as waking 16 idle BLAS
#   threads costs more than the products (N = 160 on the host: 14-21 ms with 16 threads,
#   5.6-7.5 ms with one, first version; a 200-row prediction in the few-shot runs: 25 against
#   3 us per row). The smallest fits lose a little to setting the limit (N = 10, 50: 1.17,
#   1.59 ms without it, 1.28, 1.70 ms with it), but predictions of that size gain far more;
# - SERIAL_FLOPS: below it the limit is not set, as OpenBLAS runs such products on one thread
#   by itself (a GEMM of m n k <= 65536 x GEMM_MULTITHREAD_THRESHOLD = 4, interface/gemm.c):
#   setting and restoring it would be the N = 10 fit's 0.1 ms loss above, for nothing.
HOST_FLOPS = 8e6
ONE_THREAD_FLOPS = 6e7
SERIAL_FLOPS = 65536 * 4


def fit_flops(n_samples: int, n_features: int) -> float:
    """The Gram matrix's cost, ``min(N, d)^2 max(N, d)``: the measure of a fit's size."""
    return float(min(n_samples, n_features)) ** 2 * max(n_samples, n_features)


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def host_threads(flops: float, device: str = "cpu"):
    """A context in which host linear algebra between ``SERIAL_FLOPS`` and
    ``ONE_THREAD_FLOPS`` runs on one BLAS thread (work on another ``device`` needs no limit).

    Only in the main thread: the BLAS setting is process-wide, and limits set and restored by
    fits overlapping in several threads could restore out of order and leave it at one.
    """
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
    "resolve_backend",
    "solve",
    "spectrum",
]
