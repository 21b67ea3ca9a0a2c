"""Choosing alpha by exact leave-one-out, and predict_proba's leave-one-out temperature."""

import numpy as np
import pytest
from scipy.special import log_softmax
from sklearn.datasets import load_digits
from sklearn.linear_model import Ridge, RidgeClassifierCV
from sklearn.utils.class_weight import compute_sample_weight

from faast_sklearn import FAASTClassifier

ALPHAS = np.logspace(-3, 3, 13)


@pytest.fixture
def few_shot():
    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(0).permutation(len(X))[:60]  # 60 rows <= 64 features
    return X[idx], y[idx]


def test_loo_chooses_as_ridge_classifier_cv(few_shot):
    X, y = few_shot
    ref = RidgeClassifierCV(alphas=ALPHAS).fit(X, y)
    clf = FAASTClassifier(alpha=ALPHAS, alpha_criterion="loo").fit(X, y)
    assert clf.alpha_ == ref.alpha_
    np.testing.assert_array_equal(clf.predict(X), ref.predict(X))


def _brute_loo(X, Y, alpha):
    out = np.empty_like(Y)
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        out[i] = Ridge(alpha=alpha).fit(X[keep], Y[keep]).predict(X[i : i + 1])
    return out


def _loo_temperature(X, y, clf):
    """The scale of ``clf``'s log-odds computed by brute force: the temperature minimising the
    leave-one-out log-loss, shrunk towards GCV's scale (see solvers/_criteria.py)."""
    from scipy.optimize import minimize_scalar

    Y = (y[:, None] == clf.classes_).astype(float)
    loo = _brute_loo(X, Y, clf.alpha_)
    # Rows whose class keeps at least two rows without them, with targets smoothed by a
    # tenth of a pseudo-error (see solvers/_criteria.py).
    rows = Y @ Y.sum(0) >= 3
    assert 0 < rows.sum() < len(y)
    eps = 0.1 / (rows.sum() + 1)
    T = (1 - eps) * Y + eps * (1 - Y) / (Y.shape[1] - 1)

    def log_loss(log_beta):
        return -(log_softmax(np.exp(log_beta) * loo[rows], axis=1) * T[rows]).sum(1).mean()

    fitted = minimize_scalar(log_loss, bounds=(-10, 10), method="bounded", options={"xatol": 1e-9})
    # Shrunk towards GCV's scale as if that had been fitted on n_classes rows.
    n, n0 = rows.sum(), Y.shape[1]
    return np.exp((n * fitted.x - n0 * np.log(clf.error_variance_)) / (n + n0))


@pytest.mark.parametrize("criterion", ["gcv", "loo", "loo_error", "loo_log_loss"])
def test_temperature_minimises_leave_one_out_log_loss(few_shot, criterion):
    X, y = few_shot
    clf = FAASTClassifier(alpha_criterion=criterion).fit(X, y)
    beta = clf.proba_scale_
    np.testing.assert_allclose(beta, _loo_temperature(X, y, clf), rtol=1e-5)
    # predict_proba is the softmax of the linear predictions times that scale.
    raw = clf.decision_function(X) / beta
    np.testing.assert_allclose(clf.predict_log_proba(X), log_softmax(beta * raw, axis=1))


def test_one_strength_is_calibrated_too(few_shot):
    # A single alpha leaves nothing to choose, but the scale is still the leave-one-out one.
    X, y = few_shot
    clf = FAASTClassifier(alpha=10.0).fit(X, y)
    np.testing.assert_allclose(clf.proba_scale_, _loo_temperature(X, y, clf), rtol=1e-5)


def test_two_shots_keep_the_gcv_scale():
    # Left out of a two-shot class, a row is predicted by a one-shot model: its temperature
    # would be the wrong model's. GCV's error variance sets the scale.
    X, y = load_digits(return_X_y=True)
    idx = np.concatenate([np.flatnonzero(y == c)[:2] for c in range(10)])
    clf = FAASTClassifier().fit(X[idx], y[idx])
    np.testing.assert_allclose(clf.proba_scale_, 1.0 / clf.error_variance_)
    idx = np.concatenate([np.flatnonzero(y == c)[:3] for c in range(10)])
    clf = FAASTClassifier().fit(X[idx], y[idx])
    assert not np.isclose(clf.proba_scale_, 1.0 / clf.error_variance_)


def test_separable_rows_get_a_finite_temperature():
    # Every leave-one-out prediction right: the maximum-likelihood temperature would be
    # infinite, and one wrong prediction on new rows would cost tens of nats.
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 50)) * 3
    y = np.repeat([0, 1], 10)
    X = centres[y] + rng.normal(size=(20, 50))
    clf = FAASTClassifier(alpha_criterion="loo").fit(X, y)
    Y = np.eye(2)[y]
    loo = _brute_loo(X, Y, clf.alpha_)
    assert (loo.argmax(1) == y).all()  # separable
    # Confident, not certain: about 0.1 / 21 pseudo-errors per row.
    proba = clf.predict_proba(X)
    assert 1e-4 < (1 - proba.max(1)).mean() < 0.05
    outlier = centres[[1]] + 0.2 * (centres[[0]] - centres[[1]]) * 4  # past the boundary
    assert -clf.predict_log_proba(outlier)[0, 1] < 50


def test_criteria_choose_by_their_own_leave_one_out_scores(few_shot):
    X, y = few_shot
    Y = (y[:, None] == np.unique(y)).astype(float)
    loos = {a: _brute_loo(X, Y, a) for a in ALPHAS}
    sq = {a: ((loos[a] - Y) ** 2).sum(1).mean() for a in ALPHAS}
    err = {a: (loos[a].argmax(1) != Y.argmax(1)).mean() for a in ALPHAS}
    by_sq = FAASTClassifier(alpha=ALPHAS, alpha_criterion="loo").fit(X, y).alpha_
    by_err = FAASTClassifier(alpha=ALPHAS, alpha_criterion="loo_error").fit(X, y).alpha_
    assert np.isclose(sq[by_sq], min(sq.values()))
    assert np.isclose(err[by_err], min(err.values()))


def test_auto_grid_choice_is_the_full_scan_minimum(few_shot):
    # The 56 strengths of alpha="auto" are scanned coarse to fine: the choice must still be
    # the minimum of the leave-one-out error over all of them.
    X, y = few_shot
    clf = FAASTClassifier(alpha_criterion="loo").fit(X, y)
    assert len(clf.alphas_) > 16
    Y = (y[:, None] == clf.classes_).astype(float)
    scored = Y @ Y.sum(0) >= 2  # a one-shot row left out leaves no example of its class
    sq = np.array([((_brute_loo(X, Y, a) - Y)[scored] ** 2).sum(1).mean() for a in clf.alphas_])
    assert np.isclose(sq[np.argmin(np.abs(clf.alphas_ - clf.alpha_))], sq.min(), rtol=1e-9)


def test_stream_with_kept_rows_equals_fit(few_shot):
    X, y = few_shot
    whole = FAASTClassifier(alpha_criterion="loo").fit(X, y)
    stream = FAASTClassifier(alpha_criterion="loo")
    for part in np.array_split(np.arange(len(X)), 4):
        stream.partial_fit(X[part], y[part], classes=np.arange(10))
    assert stream.alpha_ == whole.alpha_
    np.testing.assert_allclose(stream.predict_proba(X), whole.predict_proba(X), atol=1e-9)


def test_moments_fall_back_on_gcv():
    X, y = load_digits(return_X_y=True)  # 1797 rows > 64 features: moments only
    gcv = FAASTClassifier().fit(X, y)
    loo = FAASTClassifier(alpha_criterion="loo").fit(X, y)
    assert loo.alpha_ == gcv.alpha_
    np.testing.assert_allclose(loo.proba_scale_, 1.0 / gcv.error_variance_)


def test_one_shot_falls_back_on_gcv():
    # Left out, a one-shot row leaves no example of its class: its leave-one-out prediction
    # tells nothing, so GCV chooses and scales, as before.
    X, y = load_digits(return_X_y=True)
    idx = np.array([np.flatnonzero(y == c)[0] for c in range(10)])
    gcv = FAASTClassifier().fit(X[idx], y[idx])
    loo = FAASTClassifier(alpha_criterion="loo").fit(X[idx], y[idx])
    assert loo.alpha_ == gcv.alpha_
    np.testing.assert_allclose(gcv.proba_scale_, 1.0 / gcv.error_variance_)


@pytest.mark.parametrize("criterion", ["gcv", "loo", "loo_log_loss"])
def test_torch_solver_equals_scipy(few_shot, criterion):
    # The torch back-end keeps the rows as tensors: the same strength, coefficients and
    # calibrated probabilities as the reference.
    pytest.importorskip("torch")
    X, y = few_shot
    fits = [
        FAASTClassifier(alpha_criterion=criterion, solver=solver, device="cpu").fit(X, y)
        for solver in ("scipy", "torch")
    ]
    np.testing.assert_allclose(fits[1].alpha_, fits[0].alpha_, rtol=1e-10)  # same grid point
    np.testing.assert_allclose(fits[1].proba_scale_, fits[0].proba_scale_, rtol=1e-8)
    np.testing.assert_allclose(fits[1].predict_proba(X), fits[0].predict_proba(X), atol=1e-10)


def test_noise_gives_uniform_probabilities():
    # Rows with no relation to their labels: the leave-one-out predictions are no better than
    # chance, the log-loss is smallest at temperature infinity, and every class is as likely.
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((50, 768)), np.arange(50) % 10
    clf = FAASTClassifier(alpha_criterion="loo_log_loss").fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X[:5]), 0.1, rtol=1e-9)
    # Every strength is as bad (temperature 0, loss log 10 exactly): the tie goes to the
    # strongest, not to round-off.
    assert clf.alpha_ == clf.alphas_[-1]


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_integer_weights_choose_as_repeated_rows(few_shot, fit_intercept):
    # A sample weight counts as repetitions: leaving one unit of a weight-2 row out scores
    # as leaving one of its two copies out (the squared error is computed from the residuals
    # alone, never from formed predictions: it must still be the repeated rows' criterion).
    X, y = few_shot[0][:30], few_shot[1][:30]
    k = np.random.default_rng(1).integers(1, 3, len(y))
    kw = dict(alpha=ALPHAS, alpha_criterion="loo", fit_intercept=fit_intercept)
    weighted = FAASTClassifier(**kw).fit(X, y, sample_weight=k)
    repeated = FAASTClassifier(**kw).fit(np.repeat(X, k, axis=0), np.repeat(y, k))
    assert weighted.alpha_ == repeated.alpha_
    # The same fit (its probability scale counts rows, not weights: compare the predictions).
    raw = {m: m.decision_function(X) / m.proba_scale_ for m in (weighted, repeated)}
    np.testing.assert_allclose(raw[weighted], raw[repeated], atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_solve_leaves_the_kept_rows_as_they_were(few_shot, dtype, fit_intercept):
    # The solve centres and weights a copy of the rows in place: never the rows kept in
    # stats_ (a float64 batch is kept as it is), which later batches and pickles need.
    X, y = few_shot[0].astype(dtype), few_shot[1]
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(y))
    clf = FAASTClassifier(fit_intercept=fit_intercept).fit(X, y, sample_weight=w)
    before = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.stats_.rows[0], X)
    again = FAASTClassifier(fit_intercept=fit_intercept).fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(again.predict_proba(X), before)


def _shots(n, extra=0):
    """``n`` digits of each class (``n + extra`` of class 0)."""
    X, y = load_digits(return_X_y=True)
    idx = np.concatenate(
        [np.flatnonzero(y == c)[: n + (extra if c == 0 else 0)] for c in range(10)]
    )
    return X[idx], y[idx]


@pytest.mark.parametrize(
    "sample_weight, class_weight",
    [(None, None), (0.5, None), (None, {0: 3.0, 4: 0.5}), (None, "balanced")],
)
def test_one_shot_is_gcv_exactly(sample_weight, class_weight):
    # One copy of one row per class (a row no heavier than its class weight is left out
    # whole): leave-one-out has nothing to score, so the strength is GCV's (the strongest of
    # least score), the log-odds are scaled by 1 / error_variance_, and the linear map is
    # ridge's at that strength.
    X, y = _shots(1)
    sw = None if sample_weight is None else np.full(len(y), sample_weight)
    clf = FAASTClassifier(alpha_criterion="loo", class_weight=class_weight)
    clf.fit(X, y, sample_weight=sw)
    gcv = clf.gcv_scores_
    assert clf.alpha_ == clf.alphas_[len(gcv) - 1 - np.argmin(gcv[::-1])]
    assert clf.proba_scale_ == 1.0 / clf.error_variance_
    w = (np.ones(len(y)) if sw is None else sw) * compute_sample_weight(class_weight, y)
    ridge = Ridge(alpha=clf.alpha_).fit(X, np.eye(10)[y], sample_weight=w)
    np.testing.assert_allclose(clf.coef_ / clf.proba_scale_, ridge.coef_, rtol=1e-6, atol=1e-9)
    raw = clf.decision_function(X) / clf.proba_scale_
    np.testing.assert_allclose(raw, ridge.predict(X), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("criterion", ["loo", "loo_error"])
def test_one_shot_rows_of_weight_two_are_two_copies(criterion):
    # A row of sample weight 2 counts as two copies: left out one at a time, its class keeps
    # one, so leave-one-out scores it at one shot too, and chooses as on the rows repeated.
    X, y = _shots(1)
    weighted = FAASTClassifier(alpha_criterion=criterion).fit(X, y, sample_weight=np.full(10, 2.0))
    twice = FAASTClassifier(alpha_criterion=criterion).fit(np.repeat(X, 2, 0), np.repeat(y, 2))
    by_gcv = FAASTClassifier(alpha_criterion="gcv").fit(X, y, sample_weight=np.full(10, 2.0))
    assert not np.isclose(weighted.alpha_, by_gcv.alpha_)  # scored, not left to GCV
    np.testing.assert_allclose(weighted.alpha_, twice.alpha_, rtol=1e-12)
    # The same linear map (the log-odds' scale is GCV's, which counts rows, not weights).
    np.testing.assert_allclose(
        weighted.coef_ / weighted.proba_scale_, twice.coef_ / twice.proba_scale_, atol=1e-12
    )


@pytest.mark.parametrize("shots", [1, 2, 3])
@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_few_shot_stream_equals_fit(shots, class_weight):
    # fit hands the criterion its own targets and weights; a stream's model is solved from
    # the statistics alone: the same strength, scale and probabilities.
    X, y = _shots(shots, extra=1)
    whole = FAASTClassifier(class_weight=class_weight).fit(X, y)
    stream = FAASTClassifier(class_weight=class_weight)
    for part in np.array_split(np.random.default_rng(0).permutation(len(y)), 3):
        stream.partial_fit(X[part], y[part], classes=np.arange(10))
    np.testing.assert_allclose(stream.alpha_, whole.alpha_, rtol=1e-12)
    np.testing.assert_allclose(stream.proba_scale_, whole.proba_scale_, rtol=1e-9)
    np.testing.assert_allclose(stream.predict_proba(X), whole.predict_proba(X), atol=1e-9)
