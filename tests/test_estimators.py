"""Estimator behaviour on features: targets, probabilities, priors, scikit-learn integration."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_multilabel_classification
from sklearn.linear_model import LogisticRegression, RidgeClassifierCV
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from faast_sklearn import FAASTClassifier, FAASTRegressor


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.4, random_state=0, stratify=y)


def test_accuracy_and_probabilities_on_digits(digits):
    Xtr, Xte, ytr, yte = digits
    clf = FAASTClassifier().fit(Xtr, ytr)
    ref = RidgeClassifierCV().fit(Xtr, ytr)
    assert clf.score(Xte, yte) >= ref.score(Xte, yte) - 0.01
    proba = clf.predict_proba(Xte)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(1)], clf.predict(Xte))
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(Xte)), proba, atol=1e-12)
    np.testing.assert_allclose(Xte @ clf.coef_.T + clf.intercept_, clf.decision_function(Xte))
    # Probabilities are usable: log-loss far below the uniform guess's log(10) = 2.3.
    assert log_loss(yte, proba) < 0.6
    assert clf.alphas_.shape == clf.gcv_scores_.shape
    assert clf.alpha_ in clf.alphas_


def test_binary_shapes_and_consistency():
    X, y = load_iris(return_X_y=True)
    mask = y > 0
    X, y = X[mask], np.where(y[mask] == 1, "versicolor", "virginica")
    clf = FAASTClassifier().fit(X, y)
    dec = clf.decision_function(X)
    assert dec.shape == (len(X),) and clf.coef_.shape == (1, 4) and clf.intercept_.shape == (1,)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(dec > 0).astype(int)])
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-dec)))
    assert clf.score(X, y) > 0.9


def test_multilabel():
    X, Y = make_multilabel_classification(n_samples=300, n_classes=4, random_state=0)
    clf = FAASTClassifier().fit(X, Y)
    pred = clf.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    assert (pred == Y).mean() > 0.8


def test_class_embeddings_cosine_and_zero_shot():
    rng = np.random.default_rng(0)
    d = 16
    E = rng.normal(size=(4, d))  # four classes; "d" never appears in training
    labels = np.array(["a", "b", "c", "d"])
    codes = rng.integers(0, 3, size=300)
    X = E[codes] / np.linalg.norm(E[codes], axis=1, keepdims=True)
    X = X + 0.05 * rng.normal(size=X.shape)
    y = labels[codes]
    emb = dict(zip(labels, E, strict=True))
    clf = FAASTClassifier(class_embeddings=emb).fit(X, y)
    assert list(clf.classes_) == list(labels)
    assert clf.score(X, y) > 0.95
    # Array form (rows follow the sorted labels of y) gives the same model.
    clf2 = FAASTClassifier(class_embeddings=E[:3]).fit(X, y)
    np.testing.assert_allclose(
        clf2.decision_function(X),
        clf.decision_function(X)[:, :3] - 0 * clf.decision_function(X)[:, :3],
        rtol=1e-6,
        atol=1e-6,
    )
    # Zero-shot: with the identity prior, an unseen class is predicted from its embedding.
    zs = FAASTClassifier(class_embeddings=emb, prior="identity", prior_strength=1e9)
    zs.fit(X, y)
    Xd = E[3] / np.linalg.norm(E[3]) + 0.05 * rng.normal(size=(20, d))
    assert (zs.predict(Xd) == "d").mean() > 0.9


def test_class_embedding_errors():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="no vector for labels"):
        FAASTClassifier(class_embeddings={0: [1.0, 0.0]}).fit(X, y)
    with pytest.raises(ValueError, match="3 rows but there are 2 classes"):
        FAASTClassifier(class_embeddings=np.eye(3)).fit(X, y)
    with pytest.raises(ValueError, match="all-zero rows"):
        FAASTClassifier(class_embeddings=np.zeros((2, 2))).fit(X, y)


def test_identity_prior_blend_ratio():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    Y = X @ rng.normal(size=(3, 3))
    plain = FAASTRegressor(alpha=1.0).fit(X, Y)
    blended = FAASTRegressor(alpha=1.0, prior="identity", prior_strength=150.0).fit(X, Y)
    r = 50 / (150 + 50)
    np.testing.assert_allclose(blended.predict(X), (1 - r) * X + r * plain.predict(X))
    np.testing.assert_allclose(blended.coef_, (1 - r) * np.eye(3) + r * plain.coef_)


def test_user_prior_estimator_and_callable(digits):
    Xtr, Xte, ytr, yte = digits
    prior = LogisticRegression(max_iter=2000).fit(Xtr[:200], ytr[:200])
    few = FAASTClassifier(prior=prior, prior_strength=100.0).fit(Xtr[:30], ytr[:30])
    r = 30 / 130
    base = FAASTClassifier().fit(Xtr[:30], ytr[:30])
    # 30 rows do not show every class: the prior's columns are matched to ours.
    cols = np.searchsorted(prior.classes_, base.classes_)
    # The prior's share is scaled by GCV's error variance; the base's own log-odds by its
    # calibrated scale (a temperature fitted on its leave-one-out predictions).
    raw = base.decision_function(Xte) / base.proba_scale_
    expected = raw / base.error_variance_ * r + (1 - r) * prior.predict_proba(Xte)[:, cols] / (
        base.error_variance_
    )
    np.testing.assert_allclose(few.decision_function(Xte), expected, rtol=1e-8)
    as_callable = FAASTClassifier(
        prior=lambda X: prior.predict_proba(X)[:, cols], prior_strength=100.0
    )
    np.testing.assert_allclose(
        as_callable.fit(Xtr[:30], ytr[:30]).decision_function(Xte), expected, rtol=1e-8
    )
    # A prior learnt on more data helps the few-shot model.
    assert few.score(Xte, yte) >= base.score(Xte, yte)
    # Its classes_ need not be sorted.
    shuffled = LogisticRegression(max_iter=2000).fit(Xtr[:200], ytr[:200])
    order = np.random.default_rng(0).permutation(len(shuffled.classes_))
    shuffled.classes_, shuffled.coef_ = shuffled.classes_[order], shuffled.coef_[order]
    shuffled.intercept_ = shuffled.intercept_[order]
    moved = FAASTClassifier(prior=shuffled, prior_strength=100.0).fit(Xtr[:30], ytr[:30])
    np.testing.assert_allclose(moved.decision_function(Xte), expected, rtol=1e-8)
    # With class embeddings, a prior that all but outweighs the rows predicts as it does.
    E = dict(enumerate(np.random.default_rng(1).normal(size=(10, 6))))
    held = FAASTClassifier(prior=prior, prior_strength=1e12, class_embeddings=E)
    np.testing.assert_array_equal(held.fit(Xtr[:30], ytr[:30]).predict(Xte), prior.predict(Xte))
    with pytest.raises(ValueError, match="prior returned NaN or infinity"):
        FAASTClassifier(prior=lambda X: np.full((len(X), 10), np.nan)).fit(Xtr, ytr).predict(Xte)


def test_array_alpha_picks_gcv_best_and_fixed_alpha(digits):
    Xtr, _, ytr, _ = digits
    grid = [0.01, 1.0, 100.0, 1e4]
    clf = FAASTClassifier(alpha=grid).fit(Xtr, ytr)
    np.testing.assert_allclose(clf.alphas_, grid)
    assert clf.alpha_ == grid[int(np.argmin(clf.gcv_scores_))]
    fixed = FAASTClassifier(alpha=clf.alpha_).fit(Xtr, ytr)
    np.testing.assert_allclose(fixed.coef_, clf.coef_)


def test_paper_rule(digits):
    Xtr, _, ytr, _ = digits
    paper = FAASTClassifier(alpha=0.0, rtol="paper", fit_intercept=False).fit(Xtr, ytr)
    explicit = FAASTClassifier(alpha=0.0, rtol=len(Xtr) ** -0.8, fit_intercept=False)
    np.testing.assert_allclose(paper.coef_, explicit.fit(Xtr, ytr).coef_)


def test_pipeline_gridsearch_cross_val_pickle(digits):
    Xtr, Xte, ytr, yte = digits
    pipe = make_pipeline(StandardScaler(), FAASTClassifier())
    scores = cross_val_score(pipe, Xtr, ytr, cv=3)
    assert scores.mean() > 0.9
    search = GridSearchCV(
        FAASTClassifier(), {"alpha": [0.1, 10.0, 1000.0], "rtol": [None, 1e-3]}, cv=3
    ).fit(Xtr, ytr)
    assert search.best_score_ > 0.9
    est = search.best_estimator_
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(Xte), est.predict(Xte))
    cl = clone(est)
    assert "stats_" not in vars(cl)
    reg = FAASTRegressor().fit(Xtr, ytr.astype(float))
    np.testing.assert_allclose(pickle.loads(pickle.dumps(reg)).predict(Xte), reg.predict(Xte))


def test_pandas_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = load_iris(return_X_y=True, as_frame=True)
    clf = FAASTClassifier().fit(X, y)
    np.testing.assert_array_equal(clf.feature_names_in_, X.columns)
    with pytest.warns(UserWarning, match="feature names"):
        clf.predict(X.to_numpy())
    reg = FAASTRegressor().fit(X, pd.DataFrame({"a": y, "b": -y}))
    assert reg.predict(X).shape == (150, 2)


def test_torch_tensor_input_cpu(digits):
    torch = pytest.importorskip("torch")
    Xtr, Xte, ytr, _ = digits
    ref = FAASTClassifier(solver="scipy").fit(Xtr, ytr)
    clf = FAASTClassifier().fit(torch.from_numpy(Xtr).float(), torch.from_numpy(ytr))
    assert clf.solver_ == "torch" and clf.device_ == "cpu"
    assert isinstance(clf.coef_, np.ndarray)
    np.testing.assert_allclose(clf.coef_, ref.coef_, rtol=1e-4, atol=1e-6)
    pred = clf.predict(torch.from_numpy(Xte).float())
    assert isinstance(pred, np.ndarray)
    np.testing.assert_array_equal(pred, ref.predict(Xte))


def test_multioutput_regressor_and_sample_weight_equals_repetition():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6))
    Y = X @ rng.normal(size=(6, 3)) + rng.normal(size=(40, 3))
    w = rng.integers(0, 4, size=40)
    # A fixed alpha keeps Ridge's meaning, where weight k == k copies; alpha="auto" counts rows
    # (weight scaling must not move it), so there k copies are k rows (tests/test_invariances).
    a = FAASTRegressor(alpha=0.7).fit(X, Y, sample_weight=w)
    b = FAASTRegressor(alpha=0.7).fit(np.repeat(X, w, axis=0), np.repeat(Y, w, axis=0))
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-8, atol=1e-10)
    assert a.coef_.shape == (3, 6) and a.intercept_.shape == (3,)
    one = FAASTRegressor().fit(X, Y[:, 0])
    assert one.coef_.shape == (6,) and isinstance(one.intercept_, float)
    assert one.predict(X).shape == (40,)


@pytest.mark.gpu
def test_cuda_tensor_classifier(digits):
    import torch

    Xtr, Xte, ytr, _ = digits
    clf = FAASTClassifier().fit(torch.from_numpy(Xtr).float().cuda(), ytr)
    assert clf.device_.startswith("cuda")
    ref = FAASTClassifier(solver="scipy").fit(Xtr.astype(np.float32), ytr)
    np.testing.assert_allclose(clf.coef_, ref.coef_, rtol=1e-6, atol=1e-8)
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict(Xte), ref.predict(Xte))


def test_error_variance_is_gcv_estimate_even_when_nearly_interpolating():
    # 20 rows, 384 features: GCV picks a nearly interpolating fit (n - df < 1). The error
    # variance behind the probabilities must still be GCV's own estimate (score / n_targets),
    # not a clamped value that collapses to the floor.
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 384))
    y = np.arange(20) % 4
    X = centers[y] + 0.8 * rng.normal(size=(20, 384))
    clf = FAASTClassifier(alpha_criterion="gcv").fit(X, y)
    assert clf.alpha_ < 1e-6 * clf.alphas_[-1]
    np.testing.assert_allclose(clf.error_variance_, clf.gcv_scores_.min() / 4, rtol=1e-10)


def test_one_shot_fit_does_not_warn():
    import warnings

    X = np.random.default_rng(0).normal(size=(20, 30))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FAASTClassifier().fit(X, np.arange(20))  # one example per class


def test_score_is_accuracy_score():
    from sklearn.metrics import accuracy_score

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 6))
    labels = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    w = rng.uniform(0.5, 2.0, 80)
    for y in (labels, labels.astype(np.int32), np.array(["a", "b", "c"])[labels], labels > 0):
        clf = FAASTClassifier(alpha=10.0).fit(X[:40], y[:40])
        pred = clf.predict(X[40:])
        assert clf.score(X[40:], y[40:]) == accuracy_score(y[40:], pred)
        assert clf.score(X[40:], list(y[40:])) == accuracy_score(y[40:], pred)
        assert clf.score(X[40:], y[40:], w[40:]) == accuracy_score(
            y[40:], pred, sample_weight=w[40:]
        )
    multi = np.column_stack([labels > 0, labels > 1]).astype(int)
    clf = FAASTClassifier().fit(X[:40], multi[:40])
    assert clf.score(X[40:], multi[40:]) == accuracy_score(multi[40:], clf.predict(X[40:]))
    with pytest.raises(ValueError):  # scikit-learn's refusal of mixed label types stays
        FAASTClassifier().fit(X, labels).score(X, np.array(["a", "b", "c"])[labels])
