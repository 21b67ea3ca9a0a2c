"""class_weight: as scikit-learn's RidgeClassifier in fit, and exact in a stream."""

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import RidgeClassifier
from sklearn.metrics import balanced_accuracy_score

from faast_sklearn import FAASTClassifier, merge_models


def _imbalanced(rng, n, d, n_classes=4):
    p = np.array([0.6, 0.2, 0.15, 0.05])[:n_classes]
    y = rng.choice(n_classes, size=n, p=p / p.sum())
    X = rng.normal(size=(n, d)) + 0.7 * y[:, None] * rng.normal(size=d)
    return X, y


def _assert_proportional(a, b):
    a, b = np.ravel(a), np.ravel(b)
    scale = float((a * b).sum() / (b * b).sum())
    np.testing.assert_allclose(a, scale * b, rtol=1e-7, atol=1e-9 * np.abs(a).max())


@pytest.mark.parametrize("n, d", [(40, 60), (300, 20)])
@pytest.mark.parametrize("class_weight", [None, "balanced", {0: 0.5, 1: 3.0}])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_class_weight_matches_ridge_classifier(n, d, class_weight, n_classes):
    # RidgeClassifier regresses {-1, 1} targets: its decision function is an affine image of
    # ours (a common scale), so coefficients are proportional and predictions equal.
    rng = np.random.default_rng(n + d)
    X, y = _imbalanced(rng, n, d, n_classes)
    sw = rng.uniform(0.5, 2.0, size=n)
    ref = RidgeClassifier(alpha=1.0, class_weight=class_weight).fit(X, y, sample_weight=sw)
    clf = FAASTClassifier(alpha=1.0, class_weight=class_weight).fit(X, y, sample_weight=sw)
    np.testing.assert_array_equal(clf.predict(X), ref.predict(X))
    _assert_proportional(ref.coef_, clf.coef_)
    # Intercepts: {-1, 1} targets are 2 y - 1, a shift of every class's score alike.
    ref_scores, scores = ref.decision_function(X), clf.decision_function(X)
    shift = (ref_scores - scores * (ref.coef_.ravel()[0] / clf.coef_.ravel()[0])).mean()
    if n_classes == 2:
        shift = 0.0
    _assert_proportional(ref_scores - shift, scores)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("class_weight", ["balanced", {1: 4.0, 3: 0.25}])
def test_class_weight_partial_fit_equals_fit(seed, class_weight):
    # 64 features, 300 rows: per-class statistics cross from kept rows to moments; the rare
    # classes arrive late, so the balanced factors change with every batch.
    rng = np.random.default_rng(seed)
    X, y = load_digits(return_X_y=True)
    keep = np.flatnonzero(y < 4)
    X, y = X[keep], y[keep]
    idx = np.concatenate([np.flatnonzero(y == c)[: [200, 60, 30, 10][c]] for c in range(4)])
    idx = idx[np.argsort(rng.permutation(len(idx)) + 1000 * (y[idx] == 3))]  # class 3 last
    X, y = X[idx], y[idx]
    w = rng.uniform(0.1, 2.0, size=len(X))
    whole = FAASTClassifier(class_weight=class_weight).fit(X, y, sample_weight=w)
    stream = FAASTClassifier(class_weight=class_weight)
    cuts = np.sort(rng.choice(np.arange(1, len(X)), size=int(rng.integers(1, 30)), replace=False))
    for part in np.split(np.arange(len(X)), cuts):
        stream.partial_fit(X[part], y[part], sample_weight=w[part])
    np.testing.assert_allclose(stream.alpha_, whole.alpha_, rtol=1e-10)
    np.testing.assert_allclose(stream.coef_, whole.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(stream.intercept_, whole.intercept_, rtol=1e-7, atol=1e-9)


def test_balanced_raises_balanced_accuracy():
    rng = np.random.default_rng(0)
    X, y = _imbalanced(rng, 2000, 30)
    Xt, yt = X[1000:], y[1000:]
    plain = FAASTClassifier().fit(X[:1000], y[:1000])
    balanced = FAASTClassifier(class_weight="balanced").fit(X[:1000], y[:1000])
    assert balanced_accuracy_score(yt, balanced.predict(Xt)) > balanced_accuracy_score(
        yt, plain.predict(Xt)
    )


def test_class_weight_errors():
    X, y = load_digits(return_X_y=True)
    with pytest.raises(ValueError, match=r"classes \[11\] of class_weight"):
        FAASTClassifier(class_weight={11: 2.0}).fit(X, y)
    with pytest.raises(ValueError, match=r"class_weight\[3\] must be"):
        FAASTClassifier(class_weight={3: -1.0}).fit(X, y)
    with pytest.raises(ValueError, match="multilabel"):
        FAASTClassifier(class_weight="balanced").fit(X, np.eye(10)[y][:, :3].astype(int))
    with pytest.raises(ValueError, match="class_weight"):
        FAASTClassifier(class_weight="unbalanced").fit(X, y)
    clf = FAASTClassifier().partial_fit(X[:100], y[:100])
    clf.set_params(class_weight="balanced")
    with pytest.raises(ValueError, match="middle of a stream"):
        clf.partial_fit(X[100:200], y[100:200])
    # A mapping may name a class the stream has not seen yet.
    FAASTClassifier(class_weight={11: 2.0}).partial_fit(X[:10], y[:10]).predict(X[:3])


def test_balanced_stream_on_torch_equals_scipy_fit():
    # Per-class statistics on the torch back-end (tensors), merged batch by batch, against
    # one scipy fit; and the stream continues after a round trip through pickle.
    pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    X, y = _imbalanced(rng, 200, 30)
    whole = FAASTClassifier(alpha=1.0, class_weight="balanced", solver="scipy").fit(X, y)
    stream = FAASTClassifier(alpha=1.0, class_weight="balanced", solver="torch", device="cpu")
    for part in np.array_split(np.arange(100), 4):
        stream.partial_fit(X[part], y[part], classes=np.arange(4))
    stream = pickle.loads(pickle.dumps(stream))
    stream.partial_fit(X[100:], y[100:])
    np.testing.assert_allclose(stream.coef_, whole.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(stream.intercept_, whole.intercept_, rtol=1e-7, atol=1e-9)


def test_merge_models_refuses_balanced_and_merges_a_mapping_exactly():
    rng = np.random.default_rng(3)
    X, y = _imbalanced(rng, 300, 20)
    halves = (slice(0, 150), slice(150, 300))
    with pytest.raises(ValueError, match="class_weight='balanced'"):
        merge_models([FAASTClassifier(class_weight="balanced").fit(X[h], y[h]) for h in halves])
    cw = {0: 0.5, 3: 4.0}
    merged = merge_models(
        [FAASTClassifier(alpha=1.0, class_weight=cw).fit(X[h], y[h]) for h in halves]
    )
    whole = FAASTClassifier(alpha=1.0, class_weight=cw).fit(X, y)
    np.testing.assert_allclose(merged.coef_, whole.coef_, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 0.5, 3: 6.0}])
def test_leave_one_out_with_class_weight_chooses_as_ridge_classifier_cv(class_weight):
    # A class weight is how much a row counts, not how many copies of it there are: the
    # whole row is left out, as RidgeClassifierCV does. (Leaving one unit out of a minority
    # row of weight ~4 kept most of it in the fit, and the least ridge always won.)
    from sklearn.linear_model import RidgeClassifierCV

    alphas = np.logspace(-2, 6, 17)
    X, y = _imbalanced(np.random.default_rng(1), 48, 80)  # classes of 30, 9, 5 and 4 rows
    ref = RidgeClassifierCV(alphas=alphas, class_weight=class_weight).fit(X, y)
    clf = FAASTClassifier(alpha=alphas, alpha_criterion="loo", class_weight=class_weight)
    clf.fit(X, y)
    assert alphas[0] < ref.alpha_ < alphas[-1]
    assert clf.alpha_ == ref.alpha_


@pytest.mark.parametrize("solver", ["scipy", "torch"])
def test_balanced_fit_then_partial_fit_equals_fit(solver):
    # fit on fewer rows than features keeps them: a stream continues from them exactly, the
    # balanced factors recomputed from all the rows seen. More rows than features: a clear error.
    if solver == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    X, y = _imbalanced(rng, 200, 60)
    whole = FAASTClassifier(class_weight="balanced", solver=solver).fit(X, y)
    clf = FAASTClassifier(class_weight="balanced", solver=solver).fit(X[:50], y[:50])
    for part in np.array_split(np.arange(50, 200), 3):
        clf.partial_fit(X[part], y[part])
    np.testing.assert_allclose(clf.alpha_, whole.alpha_, rtol=1e-10)
    np.testing.assert_allclose(clf.coef_, whole.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(clf.intercept_, whole.intercept_, rtol=1e-7, atol=1e-9)
    merged = FAASTClassifier(class_weight="balanced", solver=solver).fit(X[:100], y[:100])
    before = merged.coef_.copy()
    with pytest.raises(ValueError, match="more rows than features"):
        merged.partial_fit(X[100:], y[100:])
    np.testing.assert_array_equal(merged.coef_, before)  # left as it was
