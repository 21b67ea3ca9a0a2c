"""Solver back-ends: the few dense kernels a fit needs, in NumPy/SciPy or in torch.

Both run one algorithm (:meth:`Backend.moments`, :mod:`._spectral`) where the data lives, in
their native arrays; only small results (k x D at most) travel, in :meth:`Backend.fetch`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.linalg.blas import dsyrk
from scipy.linalg.lapack import dsyevd

from ..utils._torch import import_torch, is_tensor, to_host
from ._stats import Moments

# Bytes per float64 block of the O(N d^2) pass (about three copies a block; never one of all
# of X). On the CPU, 64 MiB (6,553 rows of 1,280 features) keeps the GEMMs efficient.
_CHUNK_BYTES = {"cpu": 2**26, "cuda": 2**30}


class Backend:
    """Dense linear algebra in float64 on one device; subclasses supply the primitives."""

    name: str
    device: str

    def asarray(self, a):  # native float64 array on this backend's device
        raise NotImplementedError

    def to_numpy(self, a) -> np.ndarray:
        raise NotImplementedError

    def to_device(self, a):
        """``a`` as this backend's native array on its device, in its own dtype."""
        raise NotImplementedError

    def class_sums(self, Xw, codes, n_classes: int):
        """``sum_i Xw[i] * onehot(codes[i])`` as a (d, n_classes) array."""
        raise NotImplementedError

    def eigh(self, A, overwrite: bool = False):
        """Eigenvalues (ascending) and eigenvectors of a symmetric matrix, both native; only
        ``A``'s lower triangle is read; ``overwrite``: ``A`` may be destroyed."""
        raise NotImplementedError

    def gram(self, X):
        """A new native array whose lower triangle is that of ``X @ X.T`` (for :meth:`eigh`)."""
        return X @ X.T

    def fetch(self, *arrays) -> tuple[np.ndarray, ...]:
        """Several float64 native arrays as NumPy (on a GPU: one transfer, one wait)."""
        return tuple(self.to_numpy(a) for a in arrays)

    def matmul(self, A, B) -> np.ndarray:
        """``A @ B`` of native or NumPy operands, as NumPy."""
        return self.to_numpy(self.asarray(A) @ self.asarray(B))

    def moments(self, X, targets, w: np.ndarray, n_targets: int) -> Moments:
        """Centred moments of rows ``X`` (NumPy or native) with weights ``w``, as native
        float64 arrays. ``targets``: dense (N, T), or 1-D class codes (one-hot targets, summed
        per class: never an N x T one-hot). Rows go in float64 blocks shifted by the first
        block's mean, so that large feature means cost no precision."""
        n, d = X.shape
        one_hot = targets.ndim == 1
        chunk = max(1, _CHUNK_BYTES["cuda" if self.device.startswith("cuda") else "cpu"] // (8 * d))
        weight = float(w.sum())
        if weight == 0:
            return replace(Moments.empty(d, n_targets), count=n).map(self.asarray)
        shift_x = shift_y = None
        G = B = sx = sy = yy = None
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            wb_np = w[start:stop]
            wb = self.asarray(wb_np)
            Xb = self.asarray(X[start:stop])
            if shift_x is None:
                # The first block's weighted mean (or its first row if all its weights are 0).
                wsum = float(wb_np.sum())
                shift_x = (wb @ Xb) / wsum if wsum > 0 else Xb[0]
            Xb = Xb - shift_x
            # Unit weights (sample_weight=None) need no weighted copy of the block.
            Xw = Xb if (wb_np == 1.0).all() else Xb * wb[:, None]
            if one_hot:
                codes = targets[start:stop]
                Bb = self.class_sums(Xw, codes, n_targets)
                syb = np.bincount(self.to_numpy_codes(codes), weights=wb_np, minlength=n_targets)
                yyb = syb  # one-hot entries square to themselves
            else:
                Yb = self.asarray(targets[start:stop])
                if shift_y is None:
                    wsum = float(wb_np.sum())
                    shift_y = (wb @ Yb) / wsum if wsum > 0 else Yb[0]
                Yb = Yb - shift_y
                Bb = Xw.T @ Yb
                syb = self.to_numpy(wb @ Yb)
                yyb = self.to_numpy(wb @ (Yb * Yb))
            Gb = Xw.T @ Xb
            sxb = Xw.sum(0)
            if G is None:
                G, B, sx, sy, yy = Gb, Bb, sxb, syb, yyb
            else:
                G += Gb  # d x d: in place
                B, sx, sy, yy = B + Bb, sx + sxb, sy + syb, yy + yyb
        # cxx = G - sx sx^T / W where G lives (in place: on a host, each d x d temporary
        # costs as much as the subtraction; on a GPU, so would the round trip).
        G -= sx[:, None] * (sx / weight)[None, :]
        shift_y = self.asarray(np.zeros(n_targets) if shift_y is None else shift_y)
        sy, yy = self.asarray(sy), self.asarray(yy)
        return Moments(
            count=n,
            positive=int(np.count_nonzero(w)),
            weight=weight,
            mean_x=shift_x + sx / weight,
            mean_y=shift_y + sy / weight,
            cxx=G,
            cxy=B - sx[:, None] * (sy / weight)[None, :],
            cyy=(yy - sy * sy / weight).clip(min=0.0),
        )

    def to_numpy_codes(self, codes) -> np.ndarray:
        return np.asarray(self.to_numpy(codes), dtype=np.intp)


class ScipyBackend(Backend):
    """NumPy/SciPy only: the reference implementation."""

    name = "scipy"
    device = "cpu"

    def asarray(self, a):
        return np.asarray(self.to_device(a), dtype=np.float64)

    def to_device(self, a):
        return to_host(a)

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(a)

    def class_sums(self, Xw, codes, n_classes):
        # Sum rows per class: a sparse one-hot (N x C) product, O(N d).
        import scipy.sparse

        codes = self.to_numpy_codes(codes)
        onehot = scipy.sparse.csr_matrix(
            (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_classes, len(codes))
        )
        return np.asarray((onehot @ Xw).T)

    def gram(self, X):
        # BLAS syrk: the lower triangle alone (half the products), into a Fortran array that
        # eigh(overwrite=True) factorises in place.
        return dsyrk(1.0, X.T, trans=1, lower=1)

    def eigh(self, A, overwrite: bool = False):
        # scipy.linalg.eigh(driver="evd") without the wrapper's checks: 30% of a one-shot fit
        # (0.32 against 0.41 ms on 2 cores; benchmarks/results/removed-cpu-2core.json).
        s, V, info = dsyevd(A, compute_v=1, lower=1, overwrite_a=int(overwrite))
        if info != 0:
            raise np.linalg.LinAlgError(
                f"The eigendecomposition did not converge (LAPACK dsyevd info={info})."
            )
        return s, V


class TorchBackend(Backend):
    """torch on any device (CUDA or CPU), imported lazily."""

    name = "torch"

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.torch = import_torch()

    def to_device(self, a):
        if not is_tensor(a):
            a = self.torch.from_numpy(np.ascontiguousarray(a))
        return a.to(device=self.device, non_blocking=True)

    def asarray(self, a):
        # Move, then convert on the device: a float32 array travels as half the bytes of its
        # float64 copy, and the host (slower, and busy) does no conversion.
        return self.to_device(a).to(self.torch.float64)

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(to_host(a))

    def fetch(self, *arrays):
        # Each copy to the host waits for the device: flattened into one buffer, the arrays
        # wait once (a few tens of microseconds each on an H200 host); NumPy views split it.
        if not all(is_tensor(a) and a.dtype == self.torch.float64 for a in arrays):
            return super().fetch(*arrays)
        host = self.torch.cat([a.detach().reshape(-1) for a in arrays]).cpu().numpy()
        out, start = [], 0
        for a in arrays:
            out.append(host[start : start + a.numel()].reshape(a.shape))
            start += a.numel()
        return tuple(out)

    def class_sums(self, Xw, codes, n_classes):
        torch = self.torch
        if not is_tensor(codes):
            codes = torch.from_numpy(np.asarray(codes, dtype=np.int64))
        codes = codes.to(device=self.device, dtype=torch.int64)
        out = torch.zeros((n_classes, Xw.shape[1]), dtype=Xw.dtype, device=Xw.device)
        return out.index_add_(0, codes, Xw).T

    def eigh(self, A, overwrite: bool = False):
        return self.torch.linalg.eigh(self.asarray(A))
