"""Bad input: a clear error naming the problem, and the estimator left as it was."""

import pickle

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from faast_sklearn import FAASTClassifier, FAASTRegressor

torch = pytest.importorskip("torch")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    return X, y


def _state(est):
    skip = ("_solution", "_lock")
    return pickle.dumps(sorted((k, v) for k, v in vars(est).items() if k not in skip))


BAD_FIT = [
    ("nan", lambda X, y: (np.where(np.eye(*X.shape, dtype=bool), np.nan, X), y, None), "NaN"),
    ("inf", lambda X, y: (np.where(np.eye(*X.shape, dtype=bool), np.inf, X), y, None), "infinity"),
    ("empty", lambda X, y: (X[:0], y[:0], None), "0 sample"),
    ("lengths", lambda X, y: (X, y[:-1], None), "inconsistent numbers of samples"),
    ("3d", lambda X, y: (X.reshape(60, 2, 2), y, None), "without a backbone"),
    ("negative weight", lambda X, y: (X, y, -np.ones(len(y))), "Negative values"),
    ("zero weights", lambda X, y: (X, y, np.zeros(len(y))), "non-zero"),
    ("wrong features", lambda X, y: (X[:, :3], y, None), "3 features"),
    ("tensor nan", lambda X, y: (torch.full((60, 4), float("nan")), y, None), "NaN"),
    ("tensor 3d", lambda X, y: (torch.zeros(60, 2, 2), y, None), "without a backbone"),
    # Finite, yet the statistics would overflow float64 (issue 14): refused, not merged.
    ("X 1e200", lambda X, y: (X * 1e200, y, None), "overflow float64"),
    ("X 1e155", lambda X, y: (X * 1e155, y, None), "overflow float64"),
    ("weight 1e300", lambda X, y: (X, y, np.full(len(y), 1e300)), "overflow"),
    ("X 1e-160", lambda X, y: (X * 1e-160, y, None), "too small"),
]


@pytest.mark.parametrize("name, make, match", BAD_FIT, ids=[b[0] for b in BAD_FIT])
@pytest.mark.parametrize("Est", [FAASTClassifier, FAASTRegressor])
def test_bad_partial_fit_leaves_state_unchanged(data, name, make, match, Est):
    X, y = data
    est = Est().partial_fit(X, y)
    before = _state(est)
    Xb, yb, w = make(X, y)
    with pytest.raises(ValueError, match=match):
        est.partial_fit(Xb, yb, sample_weight=w)
    assert _state(est) == before
    if name == "wrong features":
        return  # a new fit may change the number of features
    # ... and a failing fit leaves the earlier model in place too.
    with pytest.raises(ValueError, match=match):
        est.fit(Xb, yb, sample_weight=w)
    assert _state(est) == before
    est.predict(X)


@pytest.mark.parametrize("solver", ["scipy", "torch"])
@pytest.mark.parametrize("shape", [(6, 8), (60, 4)], ids=["rows kept", "moments"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_caught_where_the_solver_reads(solver, shape, bad):
    # Fit checks a NumPy X for NaN and infinity where the solver reads it (on a torch
    # back-end's device when the moments pass runs there): every route must still refuse it.
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=shape), np.arange(shape[0]) % 2
    est = FAASTClassifier(solver=solver, device="cpu").fit(X, y)
    before = _state(est)
    X[-1, -1] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        est.fit(X, y)
    assert _state(est) == before


def test_one_class_fit_errors_but_stream_may_start_with_one(data):
    X, y = data
    with pytest.raises(ValueError, match="at least 2 classes"):
        FAASTClassifier().fit(X, np.zeros(60))
    with pytest.raises(ValueError, match="at least 2 classes"):
        FAASTClassifier().fit(X[:1], y[:1])
    FAASTClassifier().partial_fit(X[:1], y[:1])


def test_continuous_target_to_classifier(data):
    X, _ = data
    with pytest.raises(ValueError, match="Unknown label type"):
        FAASTClassifier().fit(X, X[:, 0])


def test_predict_errors(data):
    X, y = data
    for Est in [FAASTClassifier, FAASTRegressor]:
        with pytest.raises(NotFittedError):
            Est().predict(X)
        est = Est().fit(X, y)
        with pytest.raises(ValueError, match="X has 5 features, but .* is expecting 4"):
            est.predict(np.zeros((3, 5)))
        with pytest.raises(ValueError, match="NaN"):
            est.predict(np.full((3, 4), np.nan))
        with pytest.raises(ValueError, match="without a backbone"):
            est.predict(np.zeros((3, 2, 2)))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": [1.0, -2.0]}, "alpha"),
        ({"alpha": []}, "alpha"),
        ({"rtol": 1.5}, "rtol"),
        ({"rtol": "bogus"}, "rtol"),
        ({"solver": "cuml"}, "solver"),
        ({"prior_strength": -3}, "prior_strength"),
    ],
)
def test_bad_parameters(data, params, match):
    X, y = data
    with pytest.raises(ValueError, match=match):
        FAASTClassifier(**params).fit(X, y)


def test_label_type_change_mid_stream(data):
    X, y = data
    clf = FAASTClassifier().partial_fit(X, y)
    before = _state(clf)
    with pytest.raises(ValueError, match="different types"):
        clf.partial_fit(X, np.array(["a"] * 60))
    assert _state(clf) == before


def test_multilabel_then_multiclass_errors(data):
    X, y = data
    Y = np.column_stack([y == 0, y == 1, y == 2]).astype(int)
    clf = FAASTClassifier().partial_fit(X, Y)
    with pytest.raises(ValueError, match="multilabel"):
        clf.partial_fit(X, y)


def test_regressor_target_shape_change(data):
    X, _ = data
    reg = FAASTRegressor().partial_fit(X, X[:, :2])
    with pytest.raises(ValueError, match="target"):
        reg.partial_fit(X, X[:, 0])


def test_cuda_device_without_cuda(data):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    X, y = data
    with pytest.raises(ValueError, match="CUDA is not available"):
        FAASTClassifier(device="cuda").fit(X, y)
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="'mps' device type is not available"):
            FAASTClassifier(device="mps").fit(X, y)


def test_failing_solve_restores_the_previous_model(data, monkeypatch):
    import faast_sklearn._base as base

    X, y = data
    clf = FAASTClassifier().fit(X, y)
    before = _state(clf)
    clf.set_params(alpha=[-1.0])
    with pytest.raises(ValueError, match="alpha"):
        clf.fit(X, y)
    clf.set_params(alpha="auto")
    assert _state(clf) == before

    def broken(*args, **kwargs):
        raise RuntimeError("solver failure")

    monkeypatch.setattr(base, "solve", broken)
    with pytest.raises(RuntimeError, match="solver failure"):
        clf.fit(X[:30], y[:30])
    assert _state(clf) == before


def test_parameter_checks_follow_sklearn_config(data):
    # Like scikit-learn's estimators: invalid parameters are refused, unless the user asked
    # scikit-learn to skip parameter validation.
    from sklearn import config_context
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = data
    for method in ("fit", "partial_fit"):
        with pytest.raises(InvalidParameterError, match="verbose"):
            getattr(FAASTClassifier(verbose="loud"), method)(X, y)
        with config_context(skip_parameter_validation=True):
            getattr(FAASTClassifier(verbose="loud"), method)(X, y).predict(X)


def test_parameter_checks_refuse_on_every_fit(data):
    # A valid fit must not let a later invalid set through, even one equal to it
    # (fit_intercept=1 == True, but is not a boolean).
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = data
    clf = FAASTClassifier(fit_intercept=True).fit(X, y)
    with pytest.raises(InvalidParameterError, match="fit_intercept"):
        clf.set_params(fit_intercept=1).fit(X, y)
    for _ in range(2):  # a failed check fails again
        with pytest.raises(InvalidParameterError, match="alpha"):
            FAASTClassifier(alpha=-1.0).fit(X, y)
    # An array of strengths is checked too.
    FAASTClassifier(alpha=np.array([0.1, 1.0])).fit(X, y)
    with pytest.raises(ValueError, match="alpha"):
        FAASTClassifier(alpha=np.array([0.1, -1.0])).fit(X, y)


def test_fit_keeps_no_prior_alive(data):
    # A prior estimator passed once must be freed with the model that used it (nothing
    # process-wide holds parameters).
    import gc
    import weakref

    from sklearn.linear_model import LogisticRegression

    X, y = data
    prior = LogisticRegression().fit(X, y)
    ref = weakref.ref(prior)
    clf = FAASTClassifier(prior=prior).fit(X, y)
    clf.predict(X)
    del prior, clf
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("as_tensor", [False, True])
def test_finite_check_survives_an_overflowing_sum(as_tensor):
    # Finite float32 values whose float32 sum overflows are accepted (their statistics are
    # float64); NaN and infinity anywhere are refused.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3)).astype(np.float32)
    X[:4] = np.finfo(np.float32).max / 4
    y = np.arange(20) % 2
    wrap = torch.from_numpy if as_tensor else np.asarray
    FAASTClassifier(alpha=1.0, solver="torch" if as_tensor else "scipy").fit(wrap(X), y)
    for bad in (np.nan, np.inf):
        X[12, 1] = bad
        with pytest.raises(ValueError, match="NaN|infinity"):
            FAASTClassifier(alpha=1.0).fit(wrap(X), y)


def test_extractor_parameter_checks_follow_sklearn_config():
    # FeatureExtractor's parameters are checked as the estimators' are: refused when invalid
    # (every time), skipped under skip_parameter_validation.
    from sklearn import config_context
    from sklearn.utils._param_validation import InvalidParameterError

    from faast_sklearn import FeatureExtractor

    X = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    for _ in range(2):
        with pytest.raises(InvalidParameterError, match="batch_size"):
            FeatureExtractor("test_tiny", device="cpu", batch_size=0).transform(X)
    with config_context(skip_parameter_validation=True):
        assert FeatureExtractor("test_tiny", device="cpu", verbose="loud").transform(X).shape == (
            4,
            16,
        )
    assert FeatureExtractor("test_tiny", device="cpu").get_params()["batch_size"] == 64


def test_unnamed_arrays_keep_the_feature_name_bookkeeping(data):
    # Plain 2-D float arrays and tensors forget names on refit, warn when a model fitted with
    # names predicts on them, and give what a list of lists gives.
    pd = pytest.importorskip("pandas")
    X, y = data
    frame = pd.DataFrame(X, columns=list("abcd"))
    est = FAASTClassifier().fit(frame, y)
    assert list(est.feature_names_in_) == list("abcd")
    for unnamed in (X, np.asfortranarray(X.astype(np.float32)), torch.from_numpy(X)):
        with pytest.warns(UserWarning, match="does not have valid feature names"):
            est.predict(unnamed)
    expected = FAASTClassifier().fit(X.tolist(), y).decision_function(X.tolist())
    refit = est.fit(X, y)
    assert not hasattr(refit, "feature_names_in_") and refit.n_features_in_ == 4
    np.testing.assert_allclose(refit.decision_function(X), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="X has 3 features"):
        refit.predict(torch.from_numpy(X[:, :3]))


@pytest.mark.parametrize("n", [3, 30], ids=["rows kept", "moments"])
@pytest.mark.parametrize(
    "scale, weight, match",
    [(1e200, 1.0, "overflow"), (1.0, 1e300, "overflow"), (1e155, 1.0, "overflow")],
)
def test_overflowing_batch_cannot_poison_a_stream(data, n, scale, weight, match):
    # Issue 14: one finite batch at 1e200 used to turn the statistics into inf for good.
    X, y = data
    yr = X @ np.arange(1.0, 5.0)
    stream = FAASTRegressor()
    stream.partial_fit(X[:n], yr[:n])
    with pytest.raises(ValueError, match=match):
        stream.partial_fit(X[n:] * scale, yr[n:], sample_weight=np.full(60 - n, weight))
    stream.partial_fit(X[n:], yr[n:])  # the stream goes on as if the bad batch never came
    whole = FAASTRegressor().fit(X, yr)
    np.testing.assert_allclose(stream.predict(X), whole.predict(X), rtol=1e-8, atol=1e-8)
    assert stream.n_samples_seen_ == 60


def test_huge_targets_refused_and_extreme_scales_never_nan(data):
    X, y = data
    with pytest.raises(ValueError, match="max \\|y\\|"):
        FAASTRegressor().fit(X, X[:, 0] * 1e200)
    for scale in [1e-130, 1e-60, 1e60, 1e140]:  # extreme but representable: they work
        for n in [3, 60]:
            pred = FAASTRegressor().fit(X[:n] * scale, X[:n, 0]).predict(X * scale)
            assert np.isfinite(pred).all(), (scale, n)
            if n == 60:
                assert np.corrcoef(pred, X[:, 0])[0, 1] > 0.999


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_non_finite_rows_are_named(kind):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 5)), np.arange(30) % 3
    X[7, 3], X[9, 0] = np.nan, np.inf
    if kind == "torch":
        X = pytest.importorskip("torch").from_numpy(X)
    msg = r"NaN or infinity: 2 row\(s\), the first row 7 \(nan in column 3\)"
    with pytest.raises(ValueError, match=msg):
        FAASTClassifier().fit(X, y)
    with pytest.raises(ValueError, match=msg):
        FAASTRegressor().partial_fit(X, y.astype(float))
    with pytest.raises(ValueError, match=msg):
        FAASTClassifier().fit(X[:6], y[:6]).predict(X)  # the first 6 rows are finite


def test_class_weight_that_zeroes_classes_is_refused_as_sample_weight_is(data):
    X, y = data
    with pytest.raises(ValueError, match="leaves 0 class\\(es\\) with a positive weight"):
        FAASTClassifier(class_weight={0: 0.0, 1: 0.0, 2: 0.0}).fit(X, y)
    with pytest.raises(ValueError, match="leaves 1 class\\(es\\).*needs two"):
        FAASTClassifier(class_weight={0: 0.0, 1: 0.0}).fit(X, y)


@pytest.mark.parametrize("scale", [1e-150, 1e150])
def test_weights_whose_squares_leave_float64_are_refused(data, scale):
    X, y = data
    with pytest.raises(ValueError, match="largest sample_weight .* rescale sample_weight"):
        FAASTRegressor().fit(X, X[:, 0], sample_weight=np.full(len(y), scale))
    # Within the range, scaling every weight changes nothing (alpha="auto").
    ref = FAASTRegressor().fit(X, X[:, 0])
    scaled = FAASTRegressor().fit(X, X[:, 0], sample_weight=np.full(len(y), scale**0.6))
    np.testing.assert_allclose(scaled.predict(X), ref.predict(X), rtol=1e-8, atol=1e-10)


def test_an_unfitted_prior_names_frozen_estimator(data):
    from sklearn.base import clone
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    X, y = data
    fitted = LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="not fitted.*FrozenEstimator"):
        clone(FAASTClassifier(prior=fitted)).fit(X, y)  # clone unfits the prior
    scores = cross_val_score(FAASTClassifier(prior=FrozenEstimator(fitted)), X, y, cv=3)
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("Est", [FAASTClassifier, FAASTRegressor])
def test_rows_of_zero_weight_are_rows_left_out(Est):
    # scikit-learn's rule, also where it decides between keeping the rows (leave-one-out) and
    # moments (GCV): 8 rows of weight plus 6 of none in 10 dimensions are 8 rows.
    rng = np.random.default_rng(19)
    X, y = rng.normal(size=(14, 10)), np.arange(14) % 3
    w = np.r_[np.ones(8), np.zeros(6)]
    with_zeros = Est().fit(X, y, sample_weight=w)
    without = Est().fit(X[:8], y[:8])
    assert with_zeros.alpha_ == without.alpha_
    out = "predict_proba" if Est is FAASTClassifier else "predict"
    np.testing.assert_allclose(getattr(with_zeros, out)(X), getattr(without, out)(X))
    stream = Est().partial_fit(X[:5], y[:5], sample_weight=w[:5])
    stream.partial_fit(X[5:], y[5:], sample_weight=w[5:])
    np.testing.assert_allclose(stream.coef_, without.coef_, rtol=1e-10, atol=1e-12)
