"""distributed_fit under torch.distributed (gloo, CPU): every rank gets the single-fit model."""

from __future__ import annotations

import pickle
import socket

import numpy as np
import pytest

from faast_sklearn import FAASTClassifier, FAASTRegressor, distributed_fit, shard

torch = pytest.importorskip("torch")
mp = pytest.importorskip("torch.multiprocessing")


def _data(n=240, d=12, n_classes=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 2.0
    y = rng.integers(n_classes, size=n)
    X[np.arange(n), y] += 1.5
    w = rng.uniform(0.5, 2.0, size=n)
    order = np.argsort(y, kind="stable")  # ranks see different class subsets
    return X[order], y[order], w[order]


def _cuts(n, sizes):
    edges = np.cumsum([0, *sizes])
    assert edges[-1] == n
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _scenarios(world):
    """(name, estimator factory, rows per rank) run in one process group."""
    n = 240
    equal = [n // world] * world
    unequal = [n - 10 * (world - 1)] + [10] * (world - 1)
    empty = [0] + [n // (world - 1)] * (world - 1)
    return [
        ("equal", lambda: FAASTClassifier(solver="scipy"), equal),
        ("unequal", lambda: FAASTClassifier(alpha=0.7), unequal),
        ("empty", lambda: FAASTClassifier(), empty),
        ("regressor", lambda: FAASTRegressor(alpha=1.0), unequal),
    ]


def _worker(rank, world, port, out):
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    X, y, w = _data()
    results = {}
    for name, make, sizes in _scenarios(world):
        part = _cuts(len(y), sizes)[rank]
        target = X[part, 0] if name == "regressor" else y[part]
        est = distributed_fit(make(), X[part], target, sample_weight=w[part])
        results[name] = (est.coef_, est.intercept_, getattr(est, "classes_", None))
    # Every rank raises the same clear error, none hangs.
    errors = {}
    for name, est, Xr in [
        ("param", FAASTClassifier(alpha=1.0 + (rank == 1)), X),
        ("width", FAASTClassifier(), X[:, : 12 - (rank == world - 1)]),
        ("input", FAASTClassifier(), np.where(rank == 1, np.nan, X)),
    ]:
        try:
            distributed_fit(est, Xr[rank::world], y[rank::world])
        except (ValueError, RuntimeError) as exc:
            errors[name] = str(exc)
    results["errors"] = errors
    results["shard"] = shard(np.arange(10)).tolist()
    with open(f"{out}/{rank}.pkl", "wb") as f:
        pickle.dump(results, f)
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("world", [2, 3])
def test_gloo_ranks_equal_single_fit(world, tmp_path):
    mp.spawn(_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=True)
    results = [pickle.load(open(tmp_path / f"{r}.pkl", "rb")) for r in range(world)]
    X, y, w = _data()
    for name, make, _ in _scenarios(world):
        target = X[:, 0] if name == "regressor" else y
        whole = make().fit(X, target, sample_weight=w)
        for res in results:
            coef, intercept, classes = res[name]
            # Identical on every rank, equal to one fit on all rows.
            np.testing.assert_array_equal(coef, results[0][name][0])
            scale = np.abs(whole.coef_).max()
            assert np.abs(coef - whole.coef_).max() / scale < 1e-10, name
            np.testing.assert_allclose(intercept, whole.intercept_, rtol=1e-10, atol=1e-12)
            if classes is not None:
                np.testing.assert_array_equal(classes, whole.classes_)
    for rank, res in enumerate(results):
        errors = res["errors"]
        assert "rank 1 has alpha=2.0" in errors["param"]
        assert f"rank {world - 1} was fitted on 11 features" in errors["width"]
        assert "failed on rank 1" in errors["input"] and "NaN" in errors["input"]
        cuts = [10 * r // world for r in range(world + 1)]
        assert res["shard"] == list(range(cuts[rank], cuts[rank + 1]))


def test_needs_a_process_group():
    X, y, _ = _data()
    with pytest.raises(RuntimeError, match="init_process_group"):
        distributed_fit(FAASTClassifier(), X, y)


def test_shard_covers_every_row_once():
    data = list(range(11))
    parts = [shard(data, r, 4) for r in range(4)]
    assert sum(parts, []) == data
    assert [len(p) for p in parts] == [2, 3, 3, 3]
    ds = torch.utils.data.TensorDataset(torch.arange(5))
    assert [int(ds_item[0]) for ds_item in shard(ds, 1, 2)] == [2, 3, 4]
    with pytest.raises(ValueError, match="rank must be in"):
        shard(data, 4, 4)
