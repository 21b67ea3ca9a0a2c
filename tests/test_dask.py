"""dask_fit / dask_predict on a local cluster of two worker processes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from faast_sklearn import FAASTClassifier, FAASTRegressor, dask_fit, dask_predict

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def client():
    # One retry after a lost worker: the lost-worker test then fails in seconds.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        with distributed.Client(cluster) as c:
            yield c
        cluster.close()


def _data(n=400, d=10, n_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + 2.0
    y = rng.integers(n_classes, size=n)
    X[np.arange(n), y] += 1.5
    order = np.argsort(y, kind="stable")  # partitions see different class subsets
    return X[order], y[order], rng.uniform(0.5, 2.0, size=n)


def _rel(a, b):
    return float(np.abs(np.asarray(a) - b).max() / np.abs(b).max())


@pytest.mark.parametrize("chunks", [400, 100, (7, 193, 0, 200), (150, 50, 200)])
def test_array_fit_equals_one_fit_any_partitioning(client, chunks):
    X, y, w = _data()
    whole = FAASTClassifier(solver="scipy").fit(X, y, sample_weight=w)
    est = dask_fit(
        FAASTClassifier(solver="scipy"),
        da.from_array(X, chunks=(chunks, -1)),
        da.from_array(y, chunks=57),  # rechunked to X's partitions
        da.from_array(w, chunks=(chunks,)),
        split_every=2,
    )
    np.testing.assert_array_equal(est.classes_, whole.classes_)
    assert est.n_samples_seen_ == len(y)
    assert _rel(est.coef_, whole.coef_) < 1e-10
    assert _rel(est.intercept_, whole.intercept_) < 1e-10


def test_dataframe_fit_partial_fit_and_lazy_predict(client):
    X, _, w = _data()
    cols = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=cols)
    target = pd.Series(X[:, 0] * 2 - X[:, 3], name="t")
    whole = FAASTRegressor(alpha=1.0).fit(frame, target)
    ddf = dd.from_pandas(frame, npartitions=3)
    est = dask_fit(FAASTRegressor(alpha=1.0), ddf, dd.from_pandas(target, npartitions=3))
    assert _rel(est.coef_, whole.coef_) < 1e-10
    assert list(est.feature_names_in_) == cols
    # partial=True adds rows to a model fitted in memory.
    half = FAASTRegressor(alpha=1.0).fit(frame.iloc[:100], target.iloc[:100])
    rest = dd.from_pandas(frame.iloc[100:], npartitions=2)
    dask_fit(half, rest, dd.from_pandas(target.iloc[100:], npartitions=2), partial=True)
    assert half.n_samples_seen_ == len(frame)
    assert _rel(half.coef_, whole.coef_) < 1e-10
    pred = dask_predict(est, ddf)
    assert isinstance(pred, dd.Series)
    np.testing.assert_allclose(pred.compute().to_numpy(), whole.predict(frame), rtol=1e-9)


def test_array_predict_proba_is_lazy_dask_array(client):
    X, y, _ = _data()
    est = dask_fit(FAASTClassifier(), da.from_array(X, chunks=(90, -1)), da.from_array(y))
    dX = da.from_array(X, chunks=(120, 5))
    proba = dask_predict(est, dX, method="predict_proba")
    assert isinstance(proba, da.Array) and proba.shape == (len(X), 4)
    np.testing.assert_allclose(proba.compute(), est.predict_proba(X), rtol=1e-12)
    np.testing.assert_array_equal(dask_predict(est, dX).compute(), est.predict(X))


def test_backbone_runs_on_workers(client):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(60, 32, 32, 3), dtype=np.uint8)
    y = np.repeat([0, 1, 2], 20)
    est = dask_fit(
        FAASTClassifier(backbone="test_tiny", alpha=1.0, device="cpu"),
        da.from_array(images, chunks=(25, 32, 32, 3)),
        da.from_array(y, chunks=25),
    )
    whole = FAASTClassifier(backbone="test_tiny", alpha=1.0, device="cpu").fit(images, y)
    # Features are float32 from another process (thread count): equal to float32 precision.
    assert _rel(est.coef_, whole.coef_) < 1e-4
    feats = dask_predict(est, da.from_array(images, chunks=(25, 32, 32, 3)), method="predict")
    assert feats.shape == (60,)
    assert (feats.compute() == whole.predict(images)).mean() > 0.95


def test_lost_worker_raises_and_leaves_estimator_unchanged(client):
    X, y, _ = _data()
    est = FAASTClassifier().fit(X[::8], y[::8])
    coef = est.coef_.copy()

    def die(block):  # the worker computing this partition's rows is lost
        if block[0, 0] > -np.inf:
            os._exit(1)
        return block

    dX = da.from_array(X, chunks=(200, -1)).map_blocks(die, dtype=X.dtype)
    with pytest.raises(distributed.KilledWorker):
        dask_fit(est, dX, da.from_array(y, chunks=200))
    np.testing.assert_array_equal(est.coef_, coef)
    assert est.n_samples_seen_ == 50


def test_input_errors(client):
    X, y, _ = _data()
    dX = da.from_array(X, chunks=(100, -1))
    with pytest.raises(TypeError, match="y must be a dask array"):
        dask_fit(FAASTClassifier(), dX, y)
    with pytest.raises(ValueError, match="y has 300 rows; X has 400"):
        dask_fit(FAASTClassifier(), dX, da.from_array(y[:300]))
    with pytest.raises(ValueError, match="feature widths"):
        dask_fit(FAASTClassifier().fit(X[:, :4], y), dX, da.from_array(y), partial=True)
    with pytest.raises(ValueError, match="NaN"):
        dask_fit(FAASTClassifier(), dX * np.nan, da.from_array(y))
