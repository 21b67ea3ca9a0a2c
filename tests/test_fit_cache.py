"""The fit cache, through the public API: a grid over alpha/rtol reuses each fold's statistics
and spectrum, exactly; it is switched off, sized and cleared by the package's configuration."""

import gc
import pickle
import weakref

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from faast_sklearn import (
    FAASTClassifier,
    FAASTRegressor,
    cache_info,
    clear_cache,
    config_context,
)


@pytest.fixture(autouse=True)
def fresh_cache():
    clear_cache()
    yield
    clear_cache()


def _digits():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600]


def _search(**params):
    grid = {"alpha": list(np.logspace(-2, 3, 4)), "fit_intercept": [True, False]}
    return GridSearchCV(FAASTClassifier(**params), grid, cv=3).fit(*_digits())


@pytest.mark.parametrize("solver", ["scipy", "torch"])
def test_grid_search_reuses_statistics_and_equals_uncached(solver):
    pytest.importorskip("torch") if solver == "torch" else None
    cached = _search(solver=solver, device="cpu")
    info = cache_info()
    # One miss per fold (and the refit); every other (alpha, intercept) of a fold hits.
    assert info["misses"] == 3 + 1
    assert info["hits"] == 3 * (4 * 2 - 1)
    clear_cache()
    with config_context(cache=False):
        uncached = _search(solver=solver, device="cpu")
    assert cache_info() == {"entries": 0, "nbytes": {}, "hits": 0, "misses": 0}
    np.testing.assert_array_equal(
        cached.cv_results_["mean_test_score"], uncached.cv_results_["mean_test_score"]
    )
    assert cached.best_params_ == uncached.best_params_
    np.testing.assert_array_equal(cached.best_estimator_.coef_, uncached.best_estimator_.coef_)


# Kept rows (N <= d) and moments; host fits as small as 12 x 40 are not cached (keying them
# costs more than solving them), so these are larger.
@pytest.mark.parametrize("n, d", [(64, 128), (200, 40)])
def test_hit_equals_miss(n, d):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = np.arange(n) % 3
    miss = FAASTClassifier(alpha=1.0).fit(X, y)
    hit = FAASTClassifier(alpha=1.0).fit(X.copy(), y)
    assert cache_info()["hits"] == 1
    for name in ("coef_", "intercept_", "alpha_", "error_variance_"):
        np.testing.assert_array_equal(getattr(hit, name), getattr(miss, name))
    np.testing.assert_array_equal(hit.predict_proba(X), miss.predict_proba(X))


def test_hit_requires_identical_data_and_targets_and_weights():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 40))
    y = X @ rng.normal(size=40)
    a = FAASTRegressor(alpha=1.0).fit(X, y)
    X2 = X.copy()
    X2[150, 3] += 1e-9
    b = FAASTRegressor(alpha=1.0).fit(X2, y)
    FAASTRegressor(alpha=1.0).fit(X, y + 1e-9)
    c = FAASTRegressor(alpha=1.0).fit(X, y, sample_weight=np.full(200, 2.0))
    FAASTRegressor(alpha=1.0).fit(X.astype(np.float32), y)
    assert cache_info()["hits"] == 0 and cache_info()["misses"] == 5
    assert not np.array_equal(a.coef_, b.coef_)
    assert c.n_samples_seen_ == 200
    # The caller editing its array after a fit cannot poison the cache: its next fit misses.
    X[0, 0] = 100.0
    d = FAASTRegressor(alpha=1.0).fit(X, y)
    assert cache_info()["hits"] == 0
    with config_context(cache=False):
        ref = FAASTRegressor(alpha=1.0).fit(X, y)
    np.testing.assert_array_equal(d.coef_, ref.coef_)


def test_kept_rows_are_a_private_copy():
    # Few rows: the statistics keep the rows themselves; editing the caller's array afterwards
    # changes neither the fitted model nor what a later fit on the original rows gets.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 300)).astype(np.float32)
    y = np.arange(40) % 2
    first = FAASTClassifier(alpha=1.0).fit(X, y)
    coef = first.coef_.copy()
    original = X.copy()
    X[0, 0] += 1.0
    second = FAASTClassifier(alpha=1.0).fit(X, y)
    assert not np.array_equal(coef, second.coef_)
    np.testing.assert_array_equal(first.stats_.rows[0], original)
    again = FAASTClassifier(alpha=1.0).fit(original, y)
    np.testing.assert_array_equal(again.coef_, coef)
    assert cache_info()["hits"] == 1


def test_solvers_do_not_share_entries():
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 60)), rng.normal(size=100)
    FAASTRegressor(solver="scipy").fit(X, y)
    FAASTRegressor(solver="torch", device="cpu").fit(X, y)
    assert cache_info()["hits"] == 0 and cache_info()["entries"] == 2
    FAASTRegressor(solver="scipy", alpha=3.0).fit(X, y)
    assert cache_info()["hits"] == 1


def test_cache_off_keeps_and_looks_up_nothing():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 20)), rng.normal(size=100)
    with config_context(cache=False):
        for alpha in (0.1, 1.0):
            FAASTRegressor(alpha=alpha).fit(X, y)
    assert cache_info() == {"entries": 0, "nbytes": {}, "hits": 0, "misses": 0}


def test_partial_fit_is_not_cached():
    rng = np.random.default_rng(0)
    FAASTRegressor().partial_fit(rng.normal(size=(30, 4)), rng.normal(size=30)).predict(
        rng.normal(size=(3, 4))
    )
    assert cache_info()["entries"] == 0


def test_clear_cache_drops_the_statistics_of_the_data():
    # Regression: the old fit cache kept copies of training data of models long deleted, and
    # no public call dropped them. After clear_cache() nothing of the data is held.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 100))  # few rows: the statistics hold the rows themselves
    y = np.arange(60) % 3
    model = FAASTClassifier().fit(X, y)
    ref = weakref.ref(model.stats_)
    del model
    gc.collect()
    assert ref() is not None  # the cache keeps the statistics after the model is gone
    assert cache_info()["entries"] == 1 and cache_info()["nbytes"]["cpu"] >= X.nbytes
    clear_cache()
    gc.collect()
    assert ref() is None
    assert cache_info() == {"entries": 0, "nbytes": {}, "hits": 0, "misses": 0}


def test_bounded_by_cache_bytes():
    rng = np.random.default_rng(0)
    bound = 200_000
    with config_context(cache_bytes=bound):
        for _ in range(20):
            X = rng.normal(size=(200, 40))
            FAASTRegressor().fit(X, rng.normal(size=200))
            assert 0 < cache_info()["nbytes"]["cpu"] <= bound
        assert cache_info()["entries"] < 20
        # An entry larger than the whole bound is never kept, and the fit still works.
        X = rng.normal(size=(400, 300))
        FAASTRegressor(alpha=1.0).fit(X, rng.normal(size=400))
        assert cache_info()["nbytes"]["cpu"] <= bound


def test_pickle_holds_numpy_and_predicts_alike():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    for n in (10, 200):  # kept rows, moments
        X, y = rng.normal(size=(n, 40)), np.arange(n) % 3
        model = FAASTClassifier(solver="torch", device="cpu").fit(torch.from_numpy(X), y)
        copy = pickle.loads(pickle.dumps(model))
        arrays = copy.stats_.rows if n == 10 else vars(copy.stats_.moments).values()
        assert not any(torch.is_tensor(a) for a in arrays)
        np.testing.assert_allclose(copy.predict_proba(X), model.predict_proba(X), rtol=1e-12)
        # ... and keeps streaming, merged exactly.
        copy.partial_fit(X[:5], y[:5])
        assert copy.n_samples_seen_ == n + 5
