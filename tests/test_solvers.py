"""Numerics: torch == scipy == scikit-learn / SciPy references."""

import numpy as np
import pytest
import scipy.linalg
from sklearn.linear_model import Ridge

from faast_sklearn import FAASTRegressor
from faast_sklearn.solvers import Statistics, resolve_backend, solve, spectrum
from faast_sklearn.solvers._backends import ScipyBackend, TorchBackend

torch = pytest.importorskip("torch")

SOLVERS = ["scipy", "torch"]


def _problem(rng, n, d, n_targets=3, cond=1e3, rank=None, mean=5.0):
    """Features with a chosen condition number (and rank), far from zero mean."""
    U, _ = np.linalg.qr(rng.normal(size=(n, min(n, d))))
    V, _ = np.linalg.qr(rng.normal(size=(d, min(n, d))))
    k = min(n, d)
    s = np.logspace(0, -np.log10(cond), k)
    if rank is not None:
        s[rank:] = 0.0
    X = (U * s) @ V.T * 10 + mean
    Y = X @ rng.normal(size=(d, n_targets)) + 0.1 * rng.normal(size=(n, n_targets))
    return X, Y


def _rel(a, b):
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n, d", [(300, 40), (30, 80)])  # moments path, kernel path (d > N)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ridge_matches_sklearn(rng, solver, fit_intercept, weighted, n, d, dtype):
    X, Y = _problem(rng, n, d, cond=1e4)
    X = X.astype(dtype)
    w = rng.uniform(0.2, 3.0, size=n) if weighted else None
    ref = Ridge(alpha=0.7, fit_intercept=fit_intercept, solver="svd")
    ref.fit(X.astype(np.float64), Y, sample_weight=w)
    est = FAASTRegressor(alpha=0.7, fit_intercept=fit_intercept, solver=solver, device="cpu")
    est.fit(X, Y, sample_weight=w)
    assert est.solver_ == solver
    assert isinstance(est.coef_, np.ndarray) and est.coef_.dtype == np.float64
    assert _rel(est.coef_, ref.coef_) < 1e-9
    assert _rel(est.intercept_, ref.intercept_) < 1e-9
    Xt = rng.normal(size=(7, d)).astype(dtype)
    np.testing.assert_allclose(est.predict(Xt), ref.predict(Xt.astype(np.float64)), rtol=1e-5)


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("n, d, rank", [(200, 30, None), (200, 30, 12), (25, 60, None)])
def test_truncated_matches_lstsq(rng, solver, fit_intercept, n, d, rank):
    # Clear spectral gaps around the cut-off so that both methods keep the same directions.
    X, Y = _problem(rng, n, d, cond=1e6, rank=rank, mean=0.0 if not fit_intercept else 3.0)
    rtol = 3e-3
    est = FAASTRegressor(alpha=0.0, rtol=rtol, fit_intercept=fit_intercept, solver=solver)
    est.set_params(device="cpu").fit(X, Y)
    if fit_intercept:
        xm, ym = X.mean(0), Y.mean(0)
        W, *_ = scipy.linalg.lstsq(X - xm, Y - ym, cond=rtol)
        b = ym - xm @ W
    else:
        W, *_ = scipy.linalg.lstsq(X, Y, cond=rtol)
        b = np.zeros(Y.shape[1])
    sv = scipy.linalg.svdvals(X - X.mean(0) if fit_intercept else X)
    assert est.rank_ == int((sv > rtol * sv[0]).sum())
    assert _rel(est.coef_.T, W) < 1e-7
    np.testing.assert_allclose(est.intercept_, b, atol=1e-7 * np.abs(b).max() + 1e-10)


@pytest.mark.parametrize("solver", SOLVERS)
def test_min_norm_least_squares_d_greater_than_n(rng, solver):
    # alpha=0 without truncation: the pseudo-inverse (minimum-norm interpolant).
    X, Y = _problem(rng, 20, 50, cond=10, mean=0.0)
    est = FAASTRegressor(alpha=0.0, fit_intercept=False, solver=solver, device="cpu").fit(X, Y)
    assert _rel(est.coef_.T, np.linalg.pinv(X) @ Y) < 1e-9
    np.testing.assert_allclose(est.predict(X), Y, atol=1e-8)


@pytest.mark.parametrize("solver", SOLVERS)
def test_ill_conditioned_and_rank_deficient_ridge(rng, solver):
    X, Y = _problem(rng, 150, 60, cond=1e9, rank=45)
    for alpha in [1e-6, 1e-2, 10.0]:
        ref = Ridge(alpha=alpha, solver="svd").fit(X, Y)
        est = FAASTRegressor(alpha=alpha, solver=solver, device="cpu").fit(X, Y)
        # Compare predictions: coefficients along (near-)null directions are ill-determined.
        np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-6, atol=1e-6)


def test_torch_equals_scipy_statistics(rng):
    X, Y = _problem(rng, 5000, 64)
    w = rng.uniform(0, 2, size=len(X))
    ref = ScipyBackend().moments(X, Y, w, Y.shape[1])
    got = TorchBackend("cpu").moments(torch.from_numpy(X.astype(np.float32)), Y, w, Y.shape[1])
    ref32 = ScipyBackend().moments(X.astype(np.float32), Y, w, Y.shape[1])
    for name in ["mean_x", "mean_y", "cxx", "cxy", "cyy"]:
        assert _rel(getattr(got, name), getattr(ref32, name)) < 1e-12, name
        assert _rel(getattr(ref32, name), getattr(ref, name)) < 1e-5, name


def test_one_hot_class_sums_equal_dense_targets(rng):
    X = rng.normal(size=(400, 12)) + 2
    codes = rng.integers(0, 5, size=400)
    Y = np.eye(5)[codes]
    w = rng.uniform(0, 1, size=400)
    for backend in [ScipyBackend(), TorchBackend("cpu")]:
        a = backend.moments(X, codes, w, 5)
        b = backend.moments(X, Y, w, 5)
        for name in ["mean_y", "cxy", "cyy", "cxx"]:
            np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-10)


def test_chunked_moments_equal_one_block(rng, monkeypatch):
    from faast_sklearn.solvers import _backends

    X, Y = _problem(rng, 1000, 16, mean=1e4)  # large means: the shift must prevent cancellation
    w = rng.uniform(0.5, 1.5, size=1000)
    whole = ScipyBackend().moments(X, Y, w, 3)
    monkeypatch.setitem(_backends._CHUNK_BYTES, "cpu", 8 * 16 * 37)  # 37-row blocks
    chunked = ScipyBackend().moments(X, Y, w, 3)
    for name in ["mean_x", "cxx", "cxy", "cyy"]:
        assert _rel(getattr(chunked, name), getattr(whole, name)) < 1e-10, name
    Xc = (X - np.average(X, axis=0, weights=w)) * np.sqrt(w)[:, None]
    assert _rel(whole.cxx, Xc.T @ Xc) < 1e-10


def test_kernel_and_primal_paths_agree(rng):
    X, Y = _problem(rng, 30, 50)
    w = rng.uniform(0.5, 2, size=30)
    backend = ScipyBackend()
    rows = Statistics(50, 3, 50, rows=(X, Y, w))
    moments = Statistics(50, 3, 50, moments=backend.moments(X, Y, w, 3))
    for fit_intercept in [True, False]:
        a = solve(
            spectrum(rows, backend, fit_intercept=fit_intercept), backend, alpha="auto", rtol=None
        )
        b = solve(
            spectrum(moments, backend, fit_intercept=fit_intercept),
            backend,
            alpha="auto",
            rtol=None,
        )
        np.testing.assert_allclose(a.alpha, b.alpha, rtol=1e-12)
        # The primal residual yy - sum P^2/s cancels where the fit interpolates (tiny alpha):
        # there the two agree to round-off of the targets' scale, not to relative precision,
        # and GCV's 1 / (1 - df / n)^2 (n = 30 rows, df -> 30) amplifies that round-off.
        scale = a.gcv_scores[np.isfinite(a.gcv_scores)].max()
        np.testing.assert_allclose(a.gcv_scores, b.gcv_scores, rtol=1e-6, atol=1e-3 * scale)
        assert _rel(a.coef, b.coef) < 1e-7


def test_gcv_matches_brute_force(rng):
    X, Y = _problem(rng, 80, 10, cond=100)
    alphas = np.logspace(-3, 3, 13)
    est = FAASTRegressor(alpha=alphas, solver="scipy").fit(X, Y)
    n = len(X)
    for a, score in zip(est.alphas_, est.gcv_scores_, strict=True):
        r = Ridge(alpha=a).fit(X, Y)
        rss = ((Y - r.predict(X)) ** 2).sum()
        Xc = X - X.mean(0)
        H = Xc @ np.linalg.solve(Xc.T @ Xc + a * np.eye(10), Xc.T)
        df = np.trace(H) + 1
        np.testing.assert_allclose(score, n * rss / (n - df) ** 2, rtol=1e-8)
    assert est.alpha_ == est.alphas_[np.argmin(est.gcv_scores_)]


def test_auto_alpha_is_scale_invariant(rng):
    X, Y = _problem(rng, 100, 20)
    a = FAASTRegressor().fit(X, Y)
    b = FAASTRegressor().fit(X * 1e3, Y)
    np.testing.assert_allclose(b.alpha_, a.alpha_ * 1e6, rtol=1e-9)
    np.testing.assert_allclose(a.predict(X), b.predict(X * 1e3), rtol=1e-7, atol=1e-9)


def test_resolve_backend():
    assert resolve_backend("scipy", "auto").name == "scipy"
    assert resolve_backend("torch", "cpu").name == "torch"
    assert resolve_backend("auto", "auto", torch.zeros(2, 2)).name == "torch"
    with pytest.raises(ValueError, match="scipy.*CPU"):
        resolve_backend("scipy", "cuda")


def test_auto_solver_without_torch(monkeypatch, rng):
    # Where torch is not installed, "auto" is the NumPy/SciPy solver, and asking for a GPU
    # says what to install.
    import faast_sklearn.solvers as solvers

    monkeypatch.setattr(solvers, "torch_available", lambda: False)
    assert resolve_backend("auto", "auto").name == "scipy"
    with pytest.raises(ValueError, match="pip install faast-sklearn\\[torch\\]"):
        resolve_backend("auto", "cuda")
    X, Y = _problem(rng, 50, 5)
    assert FAASTRegressor().fit(X, Y).solver_ == "scipy"


def test_auto_solves_tiny_host_problems_on_the_host(monkeypatch, rng):
    # On a GPU machine, "auto" sends NumPy problems to the GPU unless the Gram matrix costs
    # fewer flops than a round trip (HOST_FLOPS); tensors always stay on their device.
    import faast_sklearn.solvers as solvers

    monkeypatch.setattr(solvers, "resolve_device", lambda device: "cuda")
    tiny, small = np.zeros((10, 768)), np.zeros((160, 768))
    assert resolve_backend("auto", "auto", tiny).name == "scipy"
    assert resolve_backend("auto", "cuda", tiny).name == "scipy"
    assert resolve_backend("auto", "auto", small).name == "torch"
    assert resolve_backend("auto", "auto", np.zeros((5000, 20))).name == "scipy"
    assert resolve_backend("torch", "auto", tiny).name == "torch"


@pytest.mark.gpu
@pytest.mark.parametrize("n, d", [(3000, 200), (500, 700)])  # moments path, kernel path
@pytest.mark.parametrize("as_tensor", [True, False])
def test_cuda_solver_matches_scipy(rng, n, d, as_tensor):
    X, Y = _problem(rng, n, d)
    Xin = torch.from_numpy(X).cuda() if as_tensor else X
    gpu = FAASTRegressor(device="cuda").fit(Xin, Y)
    cpu = FAASTRegressor(solver="scipy").fit(X, Y)
    assert gpu.solver_ == "torch" and gpu.device_.startswith("cuda")
    assert isinstance(gpu.coef_, np.ndarray)
    assert _rel(gpu.coef_, cpu.coef_) < 1e-8
    assert gpu.alpha_ == pytest.approx(cpu.alpha_, rel=1e-6)
    np.testing.assert_allclose(gpu.predict(Xin), cpu.predict(X), rtol=1e-6, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("n, d", [(3000, 200), (500, 700)])  # moments path, kernel path
def test_solver_device_other_than_the_tensors(rng, n, d):
    # A CUDA tensor solved on the CPU: everything the solve keeps from the rows is moved to
    # the solver's device, whichever path it takes.
    X, Y = _problem(rng, n, d)
    est = FAASTRegressor(solver="torch", device="cpu").fit(torch.from_numpy(X).cuda(), Y)
    assert est.device_ == "cpu"
    assert _rel(est.coef_, FAASTRegressor(solver="scipy").fit(X, Y).coef_) < 1e-8


@pytest.mark.parametrize("n", [300, 3000])
def test_numpy_rows_on_the_torch_solver_match_scipy(rng, n):
    # NumPy rows go to a torch back-end's device whole or in blocks (whatever their size),
    # with the result of the scipy solver; the statistics stay in the back-end's tensors.
    X, Y = _problem(rng, n, 20)
    est = FAASTRegressor(solver="torch", device="cpu", alpha=2.0).fit(X, Y)
    ref = FAASTRegressor(solver="scipy", alpha=2.0).fit(X, Y)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-9)
    assert torch.is_tensor(est.stats_.moments.cxx)
    assert isinstance(ref.stats_.moments.cxx, np.ndarray)
