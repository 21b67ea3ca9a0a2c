"""The fit cache: a grid over alpha/rtol reuses each fold's statistics and spectrum, exactly."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from faast_sklearn import FAASTClassifier, FAASTRegressor
from faast_sklearn.solvers import _spectral
from faast_sklearn.solvers._cache import FIT_CACHE, FitCache


@pytest.fixture(autouse=True)
def fresh_cache():
    FIT_CACHE.clear()
    yield
    FIT_CACHE.clear()


def _count_spectra(monkeypatch):
    calls = []
    real = _spectral.spectrum

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    import faast_sklearn._base as base

    monkeypatch.setattr(base, "spectrum", counting)
    return calls


def test_grid_search_decomposes_once_per_fold_and_intercept(monkeypatch):
    calls = _count_spectra(monkeypatch)
    X, y = load_digits(return_X_y=True)
    grid = {"alpha": list(np.logspace(-2, 3, 6)), "fit_intercept": [True, False]}
    search = GridSearchCV(FAASTClassifier(), grid, cv=3).fit(X, y)
    assert len(calls) == 3 * 2 + 1  # folds x intercepts, plus the refit on all rows
    # Cached and uncached fits give the same models.
    FIT_CACHE.clear()
    best = search.best_estimator_
    fresh = FAASTClassifier(**search.best_params_).fit(X, y)
    np.testing.assert_array_equal(fresh.coef_, best.coef_)


def test_hit_requires_identical_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 40))  # 40^2 x 200 flops: large enough to be cached
    y = X @ rng.normal(size=40)
    a = FAASTRegressor(alpha=1.0).fit(X, y)
    X2 = X.copy()
    X2[150, 3] += 1e-9  # not a sampled fingerprint row: the full comparison must catch it
    b = FAASTRegressor(alpha=1.0).fit(X2, y)
    c = FAASTRegressor(alpha=1.0).fit(X, y, sample_weight=np.full(200, 2.0))
    assert FIT_CACHE.hits == 0 and FIT_CACHE.misses == 3
    assert not np.array_equal(a.coef_, b.coef_)
    # The caller mutating its array after a fit cannot poison the cache.
    X[0, 0] = 100.0
    d = FAASTRegressor(alpha=1.0).fit(X, y)
    assert FIT_CACHE.hits == 0
    np.testing.assert_allclose(d.coef_, FAASTRegressor(alpha=1.0, solver="scipy").fit(X, y).coef_)
    assert c is not None


@pytest.mark.parametrize("solver", ["scipy", "torch"])
def test_kept_rows_are_the_private_copy(solver):
    # Few rows: the statistics keep a private copy of X in its own dtype, and the cache
    # compares later fits with that copy. Editing the caller's array must not change either.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 2000)).astype(np.float32)
    y = np.arange(12) % 2
    first = FAASTClassifier(solver=solver, device="cpu").fit(X, y)
    kept = first.stats_.rows[0]
    assert kept.dtype == np.float32 and not np.shares_memory(kept, X)
    original = X[0, 0]
    X[0, 0] += 1.0
    second = FAASTClassifier(solver=solver, device="cpu").fit(X, y)
    assert FIT_CACHE.hits == 0
    assert not np.array_equal(first.coef_, second.coef_)
    assert first.stats_.rows[0][0, 0] == original
    X[0, 0] = original
    again = FAASTClassifier(solver=solver, device="cpu", alpha=1.0).fit(X, y)
    assert FIT_CACHE.hits == 1
    np.testing.assert_allclose(
        again.coef_, FAASTClassifier(solver="scipy", alpha=1.0).fit(X.copy(), y).coef_, rtol=1e-6
    )


def test_tiny_host_fits_skip_the_cache():
    # Below _CACHE_MIN_FLOPS the spectrum costs about what the cache would: nothing is kept,
    # and repeated fits give the same model.
    from faast_sklearn._base import _CACHE_MIN_FLOPS

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 768)), np.arange(10)
    assert 10**2 * 768 < _CACHE_MIN_FLOPS
    a = FAASTClassifier().fit(X, y)
    b = FAASTClassifier().fit(X, y)
    assert len(FIT_CACHE) == 0 and FIT_CACHE.hits == FIT_CACHE.misses == 0
    np.testing.assert_array_equal(a.coef_, b.coef_)
    big = rng.normal(size=(24, 768))  # 24^2 x 768 flops: cached
    assert 24**2 * 768 >= _CACHE_MIN_FLOPS
    FAASTClassifier().fit(big, np.arange(24) % 10)
    assert len(FIT_CACHE) == 1


def test_solvers_do_not_share_entries():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 60)), rng.normal(size=100)
    FAASTRegressor(solver="scipy").fit(X, y)
    FAASTRegressor(solver="torch", device="cpu").fit(X, y)
    assert FIT_CACHE.hits == 0 and len(FIT_CACHE) == 2
    FAASTRegressor(solver="scipy", alpha=3.0).fit(X, y)
    assert FIT_CACHE.hits == 1


def test_bounded_and_partial_fit_untouched():
    cache = FitCache(max_bytes=10_000)
    rng = np.random.default_rng(0)
    from faast_sklearn.solvers import Statistics

    stats = Statistics.empty(4, 1)
    for _ in range(20):
        cache.put("scipy:cpu", rng.normal(size=(50, 4)), np.zeros(50), np.ones(50), stats)
    assert cache._bytes <= cache.max_bytes
    big = rng.normal(size=(1000, 4))  # 32 KB: over a quarter of the budget, never kept
    cache.put("scipy:cpu", big, np.zeros(1000), np.ones(1000), stats)
    key = cache.fingerprint("scipy:cpu", big, np.zeros(1000), np.ones(1000))
    assert cache.lookup("scipy:cpu", big, np.zeros(1000), np.ones(1000), key) is None
    FAASTRegressor().partial_fit(rng.normal(size=(30, 4)), rng.normal(size=30))
    assert len(FIT_CACHE) == 0


def test_fingerprint_same_for_array_and_tensor():
    # Fit fingerprints a NumPy X on the host before moving it to the solver's device: the
    # same rows as a tensor must give the same fingerprint, so both reach the same entries.
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    X, t, w = rng.normal(size=(40, 6)).astype(np.float32), np.arange(40.0), np.ones(40)
    cache = FitCache()
    assert cache.fingerprint("torch:cpu", X, t, w) == cache.fingerprint(
        "torch:cpu", torch.from_numpy(X.copy()), t, w
    )
    # ... and a grid over alpha on the torch back-end reuses the statistics.
    FIT_CACHE.clear()
    X, t, w = rng.normal(size=(60, 100)), np.arange(60.0), np.ones(60)
    for alpha in (0.1, 1.0, 10.0):
        FAASTRegressor(solver="torch", device="cpu", alpha=alpha).fit(X, t)
    assert FIT_CACHE.hits == 2


def test_rows_differing_outside_the_fingerprint_sample_miss():
    # The fingerprint samples X; candidates are compared in full, so rows that differ only
    # where it does not look share a fingerprint but not an entry.
    from faast_sklearn.solvers import Statistics

    rng = np.random.default_rng(0)
    X, t, w = rng.normal(size=(30, 500)), np.zeros(30), np.ones(30)
    Y = X.copy()
    Y[1, 1] += 1.0  # row 1 and column 1 are outside the 8 x 64 sample
    cache = FitCache()
    key = cache.fingerprint("scipy:cpu", X, t, w)
    assert cache.fingerprint("scipy:cpu", Y, t, w) == key
    cache.put("scipy:cpu", X, t, w, Statistics.empty(500, 1), key)
    assert cache.lookup("scipy:cpu", X.copy(), t, w, key) is not None
    assert cache.lookup("scipy:cpu", Y, t, w, key) is None
    # Targets and weights are sampled too (64 of 200 entries here), and compared in full.
    X, t, w = rng.normal(size=(200, 5)), np.zeros(200), np.ones(200)
    t2, w2 = t.copy(), w.copy()
    t2[1], w2[1] = 1.0, 2.0
    key = cache.fingerprint("scipy:cpu", X, t, w)
    assert cache.fingerprint("scipy:cpu", X, t2, w2) == key
    cache.put("scipy:cpu", X, t, w, Statistics.empty(5, 1), key)
    assert cache.lookup("scipy:cpu", X, t.copy(), w.copy(), key) is not None
    assert cache.lookup("scipy:cpu", X, t2, w, key) is None
    assert cache.lookup("scipy:cpu", X, t, w2, key) is None


def test_numpy_hit_is_compared_on_the_host(monkeypatch):
    # A NumPy X is looked up before it moves to a torch back-end's device: a hit (a grid's
    # next alpha) is compared with the cache's host copy and never placed on the device.
    import faast_sklearn._base as base

    placed = []
    real = base._placed
    monkeypatch.setattr(base, "_placed", lambda X, backend: placed.append(1) or real(X, backend))
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 40)), rng.normal(size=200)
    FAASTRegressor(solver="torch", device="cpu", alpha=1.0).fit(X, y)
    hit = FAASTRegressor(solver="torch", device="cpu", alpha=10.0).fit(X.copy(), y)
    assert len(placed) == 1 and FIT_CACHE.hits == 1
    (entry,) = [e for bucket in FIT_CACHE._entries.values() for e in bucket]
    assert isinstance(entry.X, np.ndarray) and not np.shares_memory(entry.X, X)
    FIT_CACHE.clear()
    fresh = FAASTRegressor(solver="torch", device="cpu", alpha=10.0).fit(X, y)
    np.testing.assert_array_equal(hit.coef_, fresh.coef_)
    X[5, 5] += 1.0  # the caller edits its array: a miss, placed (and checked) again
    FAASTRegressor(solver="torch", device="cpu", alpha=10.0).fit(X, y)
    assert len(placed) == 3 and FIT_CACHE.hits == 0


def test_same_bytes():
    from faast_sklearn.utils._arrays import same_bytes

    rng = np.random.default_rng(0)
    for n in (0, 7, 8, 13, 4099):  # with and without a tail past the last 8-byte word
        a = rng.integers(0, 256, n, dtype=np.uint8)
        assert same_bytes(a, a.copy())
        if n:
            for i in (0, n - 1):  # a change in the first word, and in the tail
                b = a.copy()
                b[i] ^= 1
                assert not same_bytes(a, b)
    X = rng.normal(size=(6, 5))
    assert same_bytes(X[:, ::2], np.ascontiguousarray(X[:, ::2]))  # strided views compare
    assert not same_bytes(X, X.astype(np.float32))  # dtypes differ
    assert not same_bytes(X, X.reshape(5, 6))  # shapes differ
    assert not same_bytes(np.zeros(3), -np.zeros(3))  # -0.0 has other bytes: a miss
    # Large arrays are compared in parallel parts: a difference in any part is seen.
    from faast_sklearn.utils._arrays import _PARALLEL_BYTES

    big = rng.integers(0, 256, _PARALLEL_BYTES + 13, dtype=np.uint8)
    assert same_bytes(big, big.copy())
    for i in (0, len(big) // 2, len(big) - 20, len(big) - 1):
        edited = big.copy()
        edited[i] ^= 1
        assert not same_bytes(big, edited)
