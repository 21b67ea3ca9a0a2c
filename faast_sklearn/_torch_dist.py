"""Fitting under ``torch.distributed``: each rank fits its shard, one all-reduce, one model.

Every rank accumulates the statistics of its own rows (running the backbone on its device),
then the ranks exchange a small header with :func:`torch.distributed.all_gather_object`
(errors, configuration, feature width, classes, row count, weight and means) and sum their
co-moments, shifted to the global means, with one :func:`torch.distributed.all_reduce`. Every
rank then holds the same statistics, hence the same model as one process fitting all the rows.
Any error on any rank (bad input, mismatched configuration, width or labels) is raised on every
rank after the header exchange, so no rank is left waiting in a collective.
"""

from __future__ import annotations

from dataclasses import replace
from functools import reduce

import numpy as np
from sklearn.base import clone

from ._merge import adopt, assemble, check_compatible, check_params, reindexed, union_of_classes
from .solvers import Statistics
from .solvers._stats import Moments
from .utils._torch import import_torch, is_tensor


def _dist(group):
    torch = import_torch()
    dist = torch.distributed
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "distributed_fit needs an initialised torch.distributed process group: call "
            "torch.distributed.init_process_group (torchrun sets its environment) first."
        )
    return torch, dist, dist.get_rank(group), dist.get_world_size(group)


def shard(data, rank=None, world_size=None, *, group=None):
    """This rank's contiguous share of ``data`` (an array, tensor, list or torch Dataset).

    Rows ``[n * rank // world_size, n * (rank + 1) // world_size)``: shares differ by at most
    one row, and a rank may get none. ``rank`` and ``world_size`` default to those of the
    initialised process group (``group``, default the world).

    Examples
    --------
    >>> import numpy as np
    >>> from faast_sklearn import shard
    >>> shard(np.arange(10), rank=2, world_size=3)
    array([6, 7, 8, 9])
    """
    if rank is None or world_size is None:
        _, _, rank, world_size = _dist(group)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}); got {rank}.")
    n = len(data)
    start, stop = n * rank // world_size, n * (rank + 1) // world_size
    if hasattr(data, "iloc"):
        return data.iloc[start:stop]
    if isinstance(data, (list, tuple, np.ndarray)) or is_tensor(data):
        return data[start:stop]
    return import_torch().utils.data.Subset(data, range(start, stop))


def _local_header(estimator, X, y, sample_weight):
    """This rank's fitted shell (no statistics), statistics and small header; never raises."""
    try:
        n = 0 if X is None else len(X)
        if n == 0:
            return clone(estimator), None, {"error": None, "estimator": clone(estimator)}
        local = clone(estimator).partial_fit(X, y, sample_weight=sample_weight)
        stats = local.stats_
        shell = clone(local)
        shell.__dict__.update({k: v for k, v in local.__dict__.items() if k != "_solution"})
        shell.stats_ = Statistics.empty(stats.n_features, stats.n_targets)  # a valid placeholder
        m = stats.to_moments()
        header = {
            "error": None,
            "estimator": shell,
            "count": m.count,
            "positive": m.n_rows,
            "weight": m.weight,
            "mean_x": m.mean_x,
            "mean_y": m.mean_y,
            "rows": stats.rows,
        }
        return shell, stats, header
    except Exception as exc:  # reported on every rank after the exchange
        return None, None, {"error": f"{type(exc).__name__}: {exc}"}


def _check_headers(headers) -> list[int]:
    """Raise the first rank's error (on every rank); return the ranks with rows."""
    for r, h in enumerate(headers):
        if h["error"] is not None:
            raise RuntimeError(f"distributed_fit failed on rank {r}: {h['error']}")
    first = headers[0]["estimator"]
    for r, h in enumerate(headers[1:], start=1):
        check_params(first, h["estimator"], f"rank {r}")
    full = [r for r, h in enumerate(headers) if "count" in h]
    if not full:
        raise ValueError("distributed_fit got no rows on any rank.")
    for r in full[1:]:
        check_compatible(headers[full[0]]["estimator"], headers[r]["estimator"], f"rank {r}")
    return full


def distributed_fit(estimator, X, y, sample_weight=None, *, group=None):
    """Fit ``estimator`` on the rows of every rank of a ``torch.distributed`` process group.

    Call it on every rank of ``group`` (a collective), each with its own rows (see
    :func:`shard`); shares may differ in size and a rank may have none (``X`` of length 0 or
    ``None``). Every rank's ``estimator`` becomes the same fitted model, equal (to float64
    round-off) to ``estimator.fit`` on the concatenation of the shares in rank order. The
    co-moments are all-reduced on the current CUDA device for NCCL, else on the CPU.

    Parameters
    ----------
    estimator : FAASTClassifier or FAASTRegressor
        The same configuration on every rank; fitted in place (its previous fit is replaced).
    X : array-like, images, texts or None
        This rank's rows (features, or backbone input).
    y : array-like or None
        This rank's targets.
    sample_weight : array-like or None, default=None
    group : ProcessGroup or None, default=None
        The process group (default: the world).

    Returns
    -------
    estimator
        The fitted estimator (solved at first use, as after ``partial_fit``).

    Raises
    ------
    RuntimeError
        On every rank, if any rank failed to fit its rows (the message names the rank).
    ValueError
        On every rank, if ranks differ in parameters, feature width or target kind.
    """
    torch, dist, rank, world = _dist(group)
    shell, stats, header = _local_header(estimator, X, y, sample_weight)
    headers = [None] * world
    dist.all_gather_object(headers, header, group=group)
    full = _check_headers(headers)
    template = headers[full[0]]["estimator"]
    states = [headers[r]["estimator"].__dict__ for r in full]
    classes = union_of_classes(states)
    n_samples = sum(headers[r]["count"] for r in full)
    if all(headers[r]["rows"] is not None for r in full) and n_samples <= template.stats_.max_rows:
        # Few rows in all (N <= d): keep them, in rank order, as one process would.
        parts = [
            reindexed({**s, "stats_": replace(s["stats_"], rows=headers[r]["rows"])}, classes)
            for r, s in zip(full, states, strict=True)
        ]
        merged = reduce(Statistics.merge, parts)
    else:
        merged = _all_reduce_moments(torch, dist, group, headers, full, stats, shell, classes)
    return adopt(estimator, assemble(template, merged, n_samples, classes))


def _spread(values: np.ndarray, classes, own) -> np.ndarray:
    if classes is None:
        return values
    out = np.zeros(len(classes))
    out[np.searchsorted(classes, own)] = values
    return out


def _all_reduce_moments(torch, dist, group, headers, full, stats, shell, classes) -> Statistics:
    """Sum of every rank's co-moments about the global means: one all-reduce."""
    d = headers[full[0]]["estimator"].n_features_in_
    weights = np.array([headers[r]["weight"] for r in full])
    weight = float(weights.sum())
    means_y = [
        _spread(headers[r]["mean_y"], classes, headers[r]["estimator"].__dict__.get("classes_"))
        for r in full
    ]
    mean_x = sum(w * headers[r]["mean_x"] for w, r in zip(weights, full, strict=True)) / weight
    mean_y = sum(w * my for w, my in zip(weights, means_y, strict=True)) / weight
    n_targets = len(mean_y)
    if stats is None:  # a rank without rows adds zeros
        cxx, cxy, cyy = np.zeros((d, d)), np.zeros((d, n_targets)), np.zeros(n_targets)
    else:
        m = reindexed({**shell.__dict__, "stats_": stats}, classes).to_moments()
        dx, dy = m.mean_x - mean_x, m.mean_y - mean_y
        cxx = m.cxx + m.weight * np.outer(dx, dx)
        cxy = m.cxy + m.weight * np.outer(dx, dy)
        cyy = m.cyy + m.weight * dy * dy
    flat = np.concatenate([cxx.ravel(), cxy.ravel(), cyy])
    backend = dist.get_backend(group)
    device = f"cuda:{torch.cuda.current_device()}" if backend == "nccl" else "cpu"
    buf = torch.from_numpy(flat).to(device)
    dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=group)
    flat = buf.cpu().numpy()
    moments = Moments(
        count=sum(headers[r]["count"] for r in full),
        positive=sum(headers[r]["positive"] for r in full),
        weight=weight,
        mean_x=mean_x,
        mean_y=mean_y,
        cxx=flat[: d * d].reshape(d, d),
        cxy=flat[d * d : d * d + d * n_targets].reshape(d, n_targets),
        cyy=flat[d * d + d * n_targets :],
    )
    return Statistics(d, n_targets, d, moments=moments)
