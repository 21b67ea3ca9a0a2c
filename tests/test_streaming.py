"""partial_fit over any split of the rows equals one fit; classes arrive mid-stream."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from faast_sklearn import FAASTClassifier, FAASTRegressor


def _splits(rng, n, n_parts):
    cuts = np.sort(rng.choice(np.arange(1, n), size=n_parts - 1, replace=False))
    return np.split(np.arange(n), cuts)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("solver", ["scipy", "torch"])
def test_classifier_partial_fit_equals_fit(seed, solver):
    rng = np.random.default_rng(seed)
    X, y = load_digits(return_X_y=True)
    idx = rng.permutation(len(X))[:400]
    X, y = X[idx], y[idx]
    w = rng.uniform(0.1, 2.0, size=len(X))
    n_parts = int(rng.integers(1, 51))
    whole = FAASTClassifier(solver=solver, device="cpu").fit(X, y, sample_weight=w)
    stream = FAASTClassifier(solver=solver, device="cpu")
    for part in _splits(rng, len(X), n_parts):
        stream.partial_fit(X[part], y[part], sample_weight=w[part])
    assert stream.n_samples_seen_ == len(X)
    np.testing.assert_array_equal(stream.classes_, whole.classes_)
    np.testing.assert_allclose(stream.alpha_, whole.alpha_, rtol=1e-10)
    np.testing.assert_allclose(stream.coef_, whole.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(stream.intercept_, whole.intercept_, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(stream.predict(X), whole.predict(X))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_regressor_partial_fit_equals_fit_few_and_many_rows(seed, fit_intercept):
    # 40 features: the stream crosses from kept rows (kernel solve) to moments.
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 40)) + 3
    Y = X @ rng.normal(size=(40, 2)) + rng.normal(size=(120, 2))
    whole = FAASTRegressor(fit_intercept=fit_intercept).fit(X, Y)
    stream = FAASTRegressor(fit_intercept=fit_intercept)
    for part in _splits(rng, len(X), int(rng.integers(2, 51))):
        stream.partial_fit(X[part], Y[part])
    np.testing.assert_allclose(stream.coef_, whole.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(stream.predict(X), whole.predict(X), rtol=1e-8, atol=1e-8)


def test_new_classes_mid_stream_equal_fit():
    X, y = load_digits(return_X_y=True)
    X, y = X[:600], y[:600]
    order = np.argsort(y, kind="stable")  # classes arrive one after another
    X, y = X[order], y[order]
    stream = FAASTClassifier()
    seen = []
    for part in np.array_split(np.arange(len(X)), 17):
        stream.partial_fit(X[part], y[part])
        seen = np.union1d(seen, y[part])
        np.testing.assert_array_equal(stream.classes_, seen)
        assert set(stream.predict(X[:50])) <= set(seen)
    whole = FAASTClassifier().fit(X, y)
    np.testing.assert_allclose(stream.coef_, whole.coef_, rtol=1e-7, atol=1e-9)


def test_string_labels_arriving_out_of_order():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 5))
    y = np.array(["zebra", "ant", "moth"])[np.arange(90) % 3]
    X[:, 0] += 3 * (y == "zebra")
    X[:, 1] += 3 * (y == "ant")
    stream = FAASTClassifier()
    stream.partial_fit(X[y == "zebra"], y[y == "zebra"])  # one class: a valid start
    assert list(stream.predict(X[:3])) == ["zebra"] * 3
    np.testing.assert_allclose(stream.predict_proba(X[:3]), 1.0)
    stream.partial_fit(X[y != "zebra"], y[y != "zebra"])
    assert list(stream.classes_) == ["ant", "moth", "zebra"]
    whole = FAASTClassifier().fit(
        np.vstack([X[y == "zebra"], X[y != "zebra"]]),
        np.concatenate([y[y == "zebra"], y[y != "zebra"]]),
    )
    np.testing.assert_allclose(stream.coef_, whole.coef_, rtol=1e-7, atol=1e-9)


def test_classes_declared_up_front():
    X, y = load_digits(return_X_y=True)
    clf = FAASTClassifier().partial_fit(X[:20], y[:20], classes=np.arange(12))
    assert list(clf.classes_) == list(range(12))
    assert clf.predict_proba(X[:2]).shape == (2, 12)


def test_statistics_memory_does_not_grow_with_rows():
    rng = np.random.default_rng(0)
    d = 16
    sizes = []
    clf = FAASTClassifier()
    for _ in range(30):
        X = rng.normal(size=(500, d))
        clf.partial_fit(X, rng.integers(0, 4, size=500))
        m = clf.stats_.moments
        sizes.append(sum(a.nbytes for a in (m.mean_x, m.mean_y, m.cxx, m.cxy, m.cyy)))
    assert clf.stats_.rows is None
    assert len(set(sizes)) == 1
    assert sizes[0] <= 8 * (d * d + 2 * d * 4 + d + 8)


def test_partial_fit_defers_the_solve():
    X, y = load_digits(return_X_y=True)
    clf = FAASTClassifier().partial_fit(X[:200], y[:200])
    assert clf._solution is None
    clf.predict(X[:5])
    assert clf._solution is not None
    clf.partial_fit(X[200:300], y[200:300])
    assert clf._solution is None


def test_streamed_model_pickles_before_its_deferred_solve():
    import pickle

    X, y = load_digits(return_X_y=True)
    clf = FAASTClassifier().partial_fit(X[:300], y[:300])
    back = pickle.loads(pickle.dumps(clf))  # unsolved statistics travel; solved on first use
    assert back._solution is None
    np.testing.assert_array_equal(back.predict(X[300:]), clf.predict(X[300:]))
