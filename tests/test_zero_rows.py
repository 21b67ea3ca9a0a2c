"""Predicting before any training row: ``partial_fit`` on zero rows with declared classes.

With no rows, ``r = N / (N0 + N) = 0``: the prior alone predicts (CLIP's zero-shot classifier
with ``prior="identity"`` and class embeddings). Zero rows are refused everywhere else.
"""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from faast_sklearn import FAASTClassifier, FAASTRegressor

CLASSES = np.array(["bird", "cat", "dog"])


def _problem(seed=0, n=60, d=6):
    rng = np.random.default_rng(seed)
    E = rng.normal(size=(len(CLASSES), d))
    y = rng.choice(CLASSES, n)
    X = E[np.searchsorted(CLASSES, y)] + rng.normal(scale=1.5, size=(n, d))
    return X, y, dict(zip(CLASSES, E, strict=True))


def _cosine_argmax(X, E):
    rows = np.stack([E[c] / np.linalg.norm(E[c]) for c in CLASSES])
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    return CLASSES[(Xn @ rows.T).argmax(axis=1)]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("empty_y", ["sliced", "list"])
def test_zero_rows_predict_the_cosine_argmax(seed, empty_y):
    X, y, E = _problem(seed)
    clf = FAASTClassifier(class_embeddings=E, prior="identity")
    clf.partial_fit(X[:0], y[:0] if empty_y == "sliced" else [], classes=list(CLASSES))
    assert clf.n_samples_seen_ == 0 and clf.n_features_in_ == X.shape[1]
    np.testing.assert_array_equal(clf.classes_, CLASSES)
    pred = clf.predict(X)
    np.testing.assert_array_equal(pred, _cosine_argmax(X, E))
    assert (pred != pred[0]).any()  # a real classifier, not a constant
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(CLASSES[proba.argmax(axis=1)], pred)
    # The coefficients are the prior's alone: the class embeddings, scaled.
    rows = np.stack([E[c] / np.linalg.norm(E[c]) for c in CLASSES])
    np.testing.assert_allclose(clf.coef_ / np.linalg.norm(clf.coef_), rows / np.linalg.norm(rows))
    np.testing.assert_array_equal(clf.intercept_, 0.0)


def test_a_mapping_declares_the_classes_and_tensors_work():
    torch = pytest.importorskip("torch")
    X, y, E = _problem(3)
    clf = FAASTClassifier(class_embeddings=E, prior="identity")
    clf.partial_fit(torch.as_tensor(X[:0]), y[:0])  # the mapping names the classes
    np.testing.assert_array_equal(clf.predict(torch.as_tensor(X)), _cosine_argmax(X, E))


@pytest.mark.parametrize("splits", [[60], [1, 59], [20, 0, 40]])
def test_partial_fit_after_zero_rows_equals_fit(splits):
    X, y, E = _problem(4)
    params = {"class_embeddings": E, "prior": "identity", "prior_strength": 30.0}
    stream = FAASTClassifier(**params).partial_fit(X[:0], y[:0], classes=CLASSES)
    start = 0
    for size in splits:
        stream.partial_fit(X[start : start + size], y[start : start + size])
        start += size
    whole = FAASTClassifier(**params).fit(X, y)
    assert stream.n_samples_seen_ == 60
    np.testing.assert_allclose(
        stream.decision_function(X), whole.decision_function(X), rtol=1e-7, atol=1e-9
    )
    assert stream.alpha_ == pytest.approx(whole.alpha_, rel=1e-12)


def test_many_rows_after_zero_rows_give_the_fast_weights():
    X, y, E = _problem(5, n=400)
    stream = FAASTClassifier(class_embeddings=E, prior="identity", prior_strength=1e-9)
    stream.partial_fit(X[:0], y[:0], classes=CLASSES).partial_fit(X, y)
    fast = FAASTClassifier(class_embeddings=E).fit(X, y)
    np.testing.assert_allclose(
        stream.decision_function(X), fast.decision_function(X), rtol=1e-6, atol=1e-8
    )
    assert not np.array_equal(stream.predict(X), _cosine_argmax(X, E))


def test_zero_rows_with_a_fitted_estimator_as_prior():
    X, y, _ = _problem(6)
    prior = LogisticRegression().fit(X, y)
    clf = FAASTClassifier(prior=prior).partial_fit(X[:0], y[:0], classes=CLASSES)
    np.testing.assert_array_equal(clf.predict(X), prior.predict(X))


def test_zero_rows_keep_the_class_types_and_new_classes_later():
    X, y, E = _problem(7)
    E["fish"] = np.ones(X.shape[1])  # declared by the mapping, never seen in training
    clf = FAASTClassifier(class_embeddings=E, prior="identity").partial_fit(X[:0], [])
    np.testing.assert_array_equal(clf.classes_, sorted(E))
    clf.partial_fit(X[:0], [])  # an empty batch later changes nothing
    clf.partial_fit(X[:10], y[:10])
    assert clf.n_samples_seen_ == 10 and "fish" in clf.classes_


def test_zero_rows_are_refused_elsewhere_with_the_reason():
    X, y, E = _problem(8)
    with pytest.raises(ValueError, match="0 sample.*FAASTClassifier.fit.*partial_fit\\(X\\[:0\\]"):
        FAASTClassifier(class_embeddings=E, prior="identity").fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="0 sample.*only from a prior, and prior=None"):
        FAASTClassifier(class_embeddings=E).partial_fit(X[:0], y[:0], classes=CLASSES)
    with pytest.raises(ValueError, match="0 sample.*no classes are known: pass classes="):
        FAASTClassifier(prior=LogisticRegression().fit(X, y)).partial_fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="0 sample.*FAASTRegressor"):
        FAASTRegressor(prior=lambda Z: Z[:, :1]).partial_fit(X[:0], np.zeros(0))
    with pytest.raises(ValueError, match="Expected 2D array"):
        FAASTClassifier(class_embeddings=E, prior="identity").partial_fit(
            np.zeros(0), [], classes=CLASSES
        )  # no feature dimension: refused by scikit-learn's validation
    with pytest.raises(ValueError, match="at least one non-zero|zero for every sample"):
        FAASTClassifier(prior="identity", class_embeddings=E).partial_fit(
            X[:3], y[:3], sample_weight=np.zeros(3)
        )


def test_alpha_before_any_row():
    X, y, E = _problem(9)
    auto = FAASTClassifier(class_embeddings=E, prior="identity").partial_fit(X[:0], y[:0])
    assert np.isnan(auto.alpha_) and auto.rank_ == 0
    given = FAASTClassifier(alpha=0.5, class_embeddings=E, prior="identity")
    assert given.partial_fit(X[:0], y[:0]).alpha_ == 0.5


def test_a_zero_row_model_pickles_saves_and_merges(tmp_path):
    import pickle

    import faast_sklearn

    X, y, E = _problem(10)
    clf = FAASTClassifier(class_embeddings=E, prior="identity").partial_fit(X[:0], [])
    expected = clf.predict(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict(X), expected)
    faast_sklearn.save(clf, tmp_path / "zero.npz")
    np.testing.assert_array_equal(faast_sklearn.load(tmp_path / "zero.npz").predict(X), expected)
    fitted = FAASTClassifier(class_embeddings=E, prior="identity").fit(X, y)
    merged = faast_sklearn.merge_models([clf, fitted])
    np.testing.assert_allclose(merged.decision_function(X), fitted.decision_function(X))


@pytest.mark.parametrize("class_weight", ["balanced", {"cat": 3.0}])
def test_class_weights_after_zero_rows_equal_fit(class_weight):
    X, y, E = _problem(11)
    params = {"class_embeddings": E, "prior": "identity", "class_weight": class_weight}
    stream = FAASTClassifier(**params).partial_fit(X[:0], y[:0], classes=CLASSES)
    np.testing.assert_array_equal(stream.predict(X), _cosine_argmax(X, E))
    stream.partial_fit(X[:25], y[:25]).partial_fit(X[25:], y[25:])
    whole = FAASTClassifier(**params).fit(X, y)
    np.testing.assert_allclose(
        stream.decision_function(X), whole.decision_function(X), rtol=1e-7, atol=1e-9
    )


@pytest.mark.gpu
def test_zero_rows_on_cuda():
    torch = pytest.importorskip("torch")
    X, y, E = _problem(12)
    Xc = torch.as_tensor(X, device="cuda")
    clf = FAASTClassifier(class_embeddings=E, prior="identity", device="cuda")
    clf.partial_fit(Xc[:0], y[:0], classes=CLASSES)
    np.testing.assert_array_equal(clf.predict(Xc), _cosine_argmax(X, E))
    clf.partial_fit(Xc, y)
    cpu = FAASTClassifier(class_embeddings=E, prior="identity").fit(X, y)
    np.testing.assert_allclose(clf.decision_function(Xc), cpu.decision_function(X), rtol=1e-4)
