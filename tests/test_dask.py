"""fit / partial_fit / predict on Dask inputs, on a local cluster of two worker processes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from faast_sklearn import FAASTClassifier, FAASTRegressor, FeatureExtractor

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def client():
    # No retry after a lost worker: the task that killed it fails at once (KilledWorker).
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
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


@pytest.mark.parametrize("chunks", [400, 100, (7, 193, 0, 200), (150, 50, 200), 20])
def test_array_fit_equals_one_fit_any_partitioning(client, chunks):
    X, y, w = _data()
    whole = FAASTClassifier(solver="scipy").fit(X, y, sample_weight=w)
    est = FAASTClassifier(solver="scipy").fit(
        da.from_array(X, chunks=(chunks, -1)),
        da.from_array(y, chunks=57),  # rechunked to X's partitions
        sample_weight=da.from_array(w, chunks=(chunks,)),
    )
    np.testing.assert_array_equal(est.classes_, whole.classes_)
    assert est.n_samples_seen_ == len(y)
    assert est.alpha_ == pytest.approx(whole.alpha_, rel=1e-10)  # the GCV choice too
    assert _rel(est.coef_, whole.coef_) < 1e-10
    assert _rel(est.intercept_, whole.intercept_) < 1e-10


@pytest.mark.parametrize("npartitions", [1, 3, 7])
def test_dataframe_fit_partial_fit_and_lazy_predict(client, npartitions):
    X, _, w = _data()
    cols = [f"f{i}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=cols)
    target = pd.Series(X[:, 0] * 2 - X[:, 3], name="t")
    whole = FAASTRegressor(alpha=1.0).fit(frame, target, sample_weight=w)
    ddf = dd.from_pandas(frame, npartitions=npartitions)
    est = FAASTRegressor(alpha=1.0).fit(
        ddf,
        dd.from_pandas(target, npartitions=npartitions),
        sample_weight=dd.from_pandas(pd.Series(w), npartitions=npartitions),
    )
    assert _rel(est.coef_, whole.coef_) < 1e-10
    assert list(est.feature_names_in_) == cols
    # partial_fit adds the partitions' rows to a model fitted in memory.
    half = FAASTRegressor(alpha=1.0).fit(frame.iloc[:100], target.iloc[:100], w[:100])
    rest = dd.from_pandas(frame.iloc[100:], npartitions=npartitions)
    half.partial_fit(
        rest,
        dd.from_pandas(target.iloc[100:], npartitions=npartitions),
        sample_weight=dd.from_pandas(pd.Series(w[100:]), npartitions=npartitions),
    )
    assert half.n_samples_seen_ == len(frame)
    assert _rel(half.coef_, whole.coef_) < 1e-10
    pred = est.predict(ddf)
    assert isinstance(pred, dd.Series)
    np.testing.assert_allclose(pred.compute().to_numpy(), whole.predict(frame), rtol=1e-9)


def test_partial_fit_stream_of_dask_arrays_and_new_classes(client):
    X, y, _ = _data()
    est = FAASTClassifier(solver="scipy")
    for rows in np.array_split(np.arange(len(y)), 3):  # later batches bring new classes
        est.partial_fit(da.from_array(X[rows], chunks=(50, -1)), da.from_array(y[rows]))
    whole = FAASTClassifier(solver="scipy").fit(X, y)
    np.testing.assert_array_equal(est.classes_, whole.classes_)
    assert _rel(est.coef_, whole.coef_) < 1e-10
    # Labels declared up front, as for NumPy batches.
    declared = FAASTClassifier().partial_fit(
        da.from_array(X[:100], chunks=(50, -1)), da.from_array(y[:100]), classes=[0, 1, 2, 3, 9]
    )
    np.testing.assert_array_equal(declared.classes_, [0, 1, 2, 3, 9])
    with pytest.raises(ValueError, match="at least 2 classes"):
        FAASTClassifier().fit(da.from_array(X[:50], chunks=(20, -1)), da.from_array(y[:50]))


def test_threaded_scheduler_without_a_cluster():
    X, y, w = _data()
    with dask.config.set(scheduler="threads"):
        est = FAASTRegressor(alpha=1.0).fit(
            da.from_array(X, chunks=(64, -1)),
            da.from_array(X[:, 0] - X[:, 1]),
            sample_weight=da.from_array(w),
        )
    whole = FAASTRegressor(alpha=1.0).fit(X, X[:, 0] - X[:, 1], sample_weight=w)
    assert _rel(est.coef_, whole.coef_) < 1e-10


def test_predict_methods_return_lazy_dask_arrays(client):
    X, y, _ = _data()
    est = FAASTClassifier().fit(da.from_array(X, chunks=(90, -1)), da.from_array(y))
    dX = da.from_array(X, chunks=(120, 5))
    for method in ("predict_proba", "predict_log_proba", "decision_function"):
        out = getattr(est, method)(dX)
        assert isinstance(out, da.Array) and out.shape == (len(X), 4)
        np.testing.assert_allclose(out.compute(), getattr(est, method)(X), rtol=1e-12)
    pred = est.predict(dX)
    assert isinstance(pred, da.Array) and pred.chunks == ((120, 120, 120, 40),)
    np.testing.assert_array_equal(pred.compute(), est.predict(X))


def test_backbone_runs_on_workers(client):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(60, 32, 32, 3), dtype=np.uint8)
    y = np.repeat([0, 1, 2], 20)
    dimages = da.from_array(images, chunks=(25, 32, 32, 3))
    params = {"backbone": "test_tiny", "alpha": 1.0, "device": "cpu", "solver": "scipy"}
    est = FAASTClassifier(**params).fit(dimages, da.from_array(y, chunks=25))
    # The features the workers extract (lazily, by transform), fitted in one process: equal.
    feats = FeatureExtractor("test_tiny", device="cpu").transform(dimages)
    assert isinstance(feats, da.Array)
    feats = feats.compute()
    on_features = FAASTClassifier(**{**params, "backbone": None}).fit(feats, y)
    assert _rel(est.coef_, on_features.coef_) < 1e-10
    # Against extraction in this process: float32 features, equal to float32 round-off.
    whole = FAASTClassifier(**params).fit(images, y)
    assert _rel(est.coef_, whole.coef_) < 1e-4
    pred = est.predict(dimages)
    assert pred.shape == (60,)
    np.testing.assert_array_equal(pred.compute(), est.predict(images))


def _die(block, block_info=None):  # the worker computing partition 1's rows is lost
    if block_info[0]["chunk-location"][0] == 1:
        os._exit(1)
    return block


def test_lost_worker_raises_and_leaves_estimator_unchanged(client):
    X, y, _ = _data()
    est = FAASTClassifier().fit(X[::8], y[::8])
    coef = est.coef_.copy()
    dX = da.from_array(X, chunks=(200, -1)).map_blocks(_die, dtype=X.dtype)
    with pytest.raises(distributed.KilledWorker):
        est.fit(dX, da.from_array(y, chunks=200))
    np.testing.assert_array_equal(est.coef_, coef)
    assert est.n_samples_seen_ == 50
    with pytest.raises(distributed.KilledWorker):
        est.partial_fit(dX, da.from_array(y, chunks=200))
    np.testing.assert_array_equal(est.coef_, coef)
    assert est.n_samples_seen_ == 50
    client.wait_for_workers(2, timeout=60)


def _die_once(block, marker, block_info=None):  # partition 1's first worker is lost
    if block_info[0]["chunk-location"][0] == 1 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return block


def test_lost_worker_is_retried_and_the_model_is_exact(tmp_path):
    # A separate cluster whose scheduler retries a task once after its worker died.
    X, y, _ = _data()
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            distributed.Client(cluster),
        ):
            dX = da.from_array(X, chunks=(100, -1)).map_blocks(
                _die_once, str(tmp_path / "died"), dtype=X.dtype
            )
            est = FAASTClassifier(solver="scipy").fit(dX, da.from_array(y, chunks=100))
    assert (tmp_path / "died").exists()  # a worker was lost
    whole = FAASTClassifier(solver="scipy").fit(X, y)
    assert _rel(est.coef_, whole.coef_) < 1e-10


def test_mismatched_partitions_give_one_clear_error(client):
    X, y, _ = _data()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    # A dataframe whose third partition has a column fewer (its metadata says otherwise).
    parts = [dask.delayed(frame.iloc[i : i + 100]) for i in range(0, 400, 100)]
    parts[2] = dask.delayed(frame.iloc[200:300, :-1])
    ddf = dd.from_delayed(parts, meta=frame.iloc[:0], verify_meta=False)
    target = dd.from_pandas(pd.Series(y), npartitions=4)
    with pytest.raises(ValueError, match="feature widths: partition 2 was fitted on 9"):
        FAASTClassifier().fit(ddf, target)
    # Labels of different types in different partitions.
    labels = pd.Series(y)
    parts = [dask.delayed(labels.iloc[i : i + 100]) for i in range(0, 400, 100)]
    parts[3] = dask.delayed(labels.iloc[300:].map(lambda v: f"class {v}"))
    target = dd.from_delayed(parts, meta=labels.iloc[:0], verify_meta=False)
    with pytest.raises(ValueError, match="labels of different types: partition 3"):
        FAASTClassifier().fit(dd.from_pandas(frame, npartitions=4), target)
    # Multilabel targets in one partition, class labels in the others.
    rows = np.arange(300, 400)
    parts[3] = dask.delayed(pd.DataFrame({"a": rows % 2, "b": (rows % 3 == 0) * 1}, index=rows))
    target = dd.from_delayed(parts, meta=labels.iloc[:0], verify_meta=False)
    with pytest.raises(ValueError, match=r"multilabel targets \(partition 3\)"):
        FAASTClassifier().fit(dd.from_pandas(frame, npartitions=4), target)


def test_input_errors(client):
    X, y, _ = _data()
    dX = da.from_array(X, chunks=(100, -1))
    with pytest.raises(TypeError, match="y must be a dask array"):
        FAASTClassifier().fit(dX, y)
    with pytest.raises(TypeError, match="X must be a dask array"):
        FAASTClassifier().fit(X, da.from_array(y))
    with pytest.raises(ValueError, match="y has 300 rows; X has 400"):
        FAASTClassifier().fit(dX, da.from_array(y[:300]))
    with pytest.raises(ValueError, match="feature widths"):
        FAASTClassifier().fit(X[:, :4], y).partial_fit(dX, da.from_array(y))
    with pytest.raises(ValueError, match="NaN") as info:
        FAASTClassifier().fit(dX * np.nan, da.from_array(y))
    assert "partition" in "".join(getattr(info.value, "__notes__", []))
    with pytest.raises(ValueError, match="class_weight='balanced'"):
        FAASTClassifier(class_weight="balanced").fit(dX, da.from_array(y))
    with pytest.raises(ValueError, match="no rows with a positive sample_weight"):
        FAASTClassifier().fit(dX, da.from_array(y), sample_weight=da.zeros(400, chunks=100))


def test_numpy_fit_imports_no_dask():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from faast_sklearn import FAASTClassifier; "
        "X = np.random.rand(40, 3); FAASTClassifier().fit(X, np.arange(40) % 2).predict(X); "
        "assert 'dask' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def test_partitions_of_bad_or_no_weight_and_missing_classes(client):
    X, y, _ = _data()
    dX, dy = da.from_array(X, chunks=(100, -1)), da.from_array(y, chunks=100)
    w = np.ones(len(y))
    w[150] = np.nan  # a NaN weight is an error, never a dropped partition
    with pytest.raises(ValueError, match="sample_weight contains NaN") as info:
        FAASTClassifier().fit(dX, dy, sample_weight=da.from_array(w, chunks=100))
    assert "partition 1" in "".join(getattr(info.value, "__notes__", []))
    # NaN in a partition of no weight is still an error, as in fit.
    Xn, w = X.copy(), np.r_[np.ones(300), np.zeros(100)]
    Xn[350, 2] = np.nan
    with pytest.raises(ValueError, match="NaN") as info:
        FAASTClassifier().fit(
            da.from_array(Xn, chunks=(100, -1)), dy, sample_weight=da.from_array(w, chunks=100)
        )
    assert "partition 3" in "".join(getattr(info.value, "__notes__", []))
    # A class whose rows all weigh 0 (here: in one partition) is a class, as in fit.
    order = np.argsort(y, kind="stable")
    Xs, ys = X[order], y[order]
    w = np.where(ys == ys.max(), 0.0, 1.0)
    one = FAASTClassifier().fit(Xs, ys, sample_weight=w)
    parts = FAASTClassifier().fit(
        da.from_array(Xs, chunks=(100, -1)),
        da.from_array(ys, chunks=100),
        sample_weight=da.from_array(w, chunks=100),
    )
    np.testing.assert_array_equal(parts.classes_, one.classes_)
    # Class embeddings with partitions that lack classes (rows sorted by label).
    E = np.random.default_rng(3).normal(size=(len(np.unique(y)), 5))
    one = FAASTClassifier(class_embeddings=E).fit(Xs, ys)
    parts = FAASTClassifier(class_embeddings=E).fit(
        da.from_array(Xs, chunks=(100, -1)), da.from_array(ys, chunks=100)
    )
    np.testing.assert_allclose(parts.decision_function(X), one.decision_function(X), atol=1e-8)


def test_dask_fit_checks_class_weight_and_takes_y_of_unknown_chunks(client):
    X, y, _ = _data()
    dX, dy = da.from_array(X, chunks=(100, -1)), da.from_array(y, chunks=100)
    with pytest.raises(ValueError, match="classes \\[9\\] of class_weight are not among"):
        FAASTClassifier(class_weight={0: 1.0, 9: 2.0}).fit(dX, dy)
    unknown = dd.from_pandas(pd.Series(y), npartitions=4).values  # chunk sizes unknown
    one = FAASTClassifier().fit(X, y)
    np.testing.assert_allclose(FAASTClassifier().fit(dX, unknown).coef_, one.coef_, atol=1e-10)
