"""merge_models: estimators fitted on disjoint rows combine into the model of one fit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faast_sklearn import FAASTClassifier, FAASTRegressor, merge_models


def _rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _data(rng, n=300, d=8, n_classes=4):
    X = rng.normal(size=(n, d)) + 3.0
    y = rng.integers(n_classes, size=n)
    X[np.arange(n), y % d] += 2.0
    return X, y


def _split(n, cuts):
    edges = [0, *sorted(cuts), n]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(1, 299), min_size=1, max_size=4, unique=True))
def test_classifier_any_split_equals_one_fit(cuts):
    X, y = _data(np.random.default_rng(1))
    w = np.random.default_rng(2).uniform(0.5, 2.0, size=len(y))
    whole = FAASTClassifier(solver="scipy").fit(X, y, sample_weight=w)
    parts = [
        FAASTClassifier(solver="scipy").partial_fit(X[s], y[s], sample_weight=w[s])
        for s in _split(len(y), cuts)
    ]
    merged = merge_models(parts)
    np.testing.assert_array_equal(merged.classes_, whole.classes_)
    assert merged.n_samples_seen_ == len(y)
    assert _rel(merged.coef_, whole.coef_) < 1e-10
    assert _rel(merged.intercept_, whole.intercept_) < 1e-10
    assert merged.alpha_ == pytest.approx(whole.alpha_, rel=1e-10)
    np.testing.assert_array_equal(merged.predict(X), whole.predict(X))


def test_class_sets_are_unioned(rng):
    X, y = _data(rng, n_classes=5)
    a, b = y < 3, y >= 2  # classes {0, 1, 2} and {2, 3, 4}: disjoint rows, overlapping classes
    b &= ~a
    whole = FAASTClassifier(alpha=0.5).fit(X, y)
    merged = merge_models(
        [FAASTClassifier(alpha=0.5).fit(X[a], y[a]), FAASTClassifier(alpha=0.5).fit(X[b], y[b])]
    )
    np.testing.assert_array_equal(merged.classes_, np.arange(5))
    assert _rel(merged.coef_, whole.coef_) < 1e-10
    assert _rel(merged.predict_proba(X), whole.predict_proba(X)) < 1e-9


def test_regressor_multioutput_and_few_rows(rng):
    # Few rows (N <= d: rows are kept) merged with many rows (moments).
    X = rng.normal(size=(60, 20))
    Y = X @ rng.normal(size=(20, 3)) + rng.normal(size=(60, 3))
    whole = FAASTRegressor(alpha=2.0).fit(X, Y)
    merged = merge_models(
        [FAASTRegressor(alpha=2.0).fit(X[:7], Y[:7]), FAASTRegressor(alpha=2.0).fit(X[7:], Y[7:])]
    )
    assert _rel(merged.coef_, whole.coef_) < 1e-10
    assert _rel(merged.intercept_, whole.intercept_) < 1e-10


def test_merged_model_streams_on_and_inputs_unchanged(rng):
    X, y = _data(rng)
    a = FAASTClassifier().fit(X[:100], y[:100])
    coef_a = a.coef_.copy()
    merged = merge_models([a, FAASTClassifier().fit(X[100:200], y[100:200])])
    merged.partial_fit(X[200:], y[200:])
    assert _rel(merged.coef_, FAASTClassifier().fit(X, y).coef_) < 1e-10
    np.testing.assert_array_equal(a.coef_, coef_a)
    assert a.n_samples_seen_ == 100


def test_multilabel_merge(rng):
    X = rng.normal(size=(200, 6))
    Y = (X[:, :3] + rng.normal(size=(200, 3)) > 0).astype(int)
    whole = FAASTClassifier(alpha=1.0).fit(X, Y)
    merged = merge_models(
        [
            FAASTClassifier(alpha=1.0).fit(X[:90], Y[:90]),
            FAASTClassifier(alpha=1.0).fit(X[90:], Y[90:]),
        ]
    )
    assert _rel(merged.coef_, whole.coef_) < 1e-10


@pytest.mark.parametrize(
    ("second", "match"),
    [
        (lambda X, y: FAASTClassifier(alpha=2.0).fit(X, y), "alpha=2.0"),
        (lambda X, y: FAASTClassifier().fit(X[:, :5], y), "feature widths.*5 features"),
        (lambda X, y: FAASTRegressor().fit(X, y.astype(float)), "Cannot merge a FAASTRegressor"),
        (lambda X, y: FAASTClassifier().fit(X, np.array(list("abcd"))[y]), "labels of different"),
        (lambda X, y: FAASTClassifier(), "estimator 1 .*not a fitted"),
        (lambda X, y: FAASTClassifier().fit(X, np.eye(4, dtype=int)[y]), "multilabel"),
    ],
)
def test_mismatches_are_named(rng, second, match):
    X, y = _data(rng)
    first = FAASTClassifier().fit(X, y)
    with pytest.raises((ValueError, TypeError), match=match):
        merge_models([first, second(X, y)])


def test_regressor_target_mismatch(rng):
    X = rng.normal(size=(50, 4))
    with pytest.raises(
        ValueError,
        match=r"estimator 1 was fitted on 2 target\(s\) \(2-D y\), the first on 1 \(1-D y\)",
    ):
        merge_models([FAASTRegressor().fit(X, X[:, 0]), FAASTRegressor().fit(X, X[:, :2])])


def test_placement_parameters_may_differ(rng):
    X, y = _data(rng)
    merged = merge_models(
        [
            FAASTClassifier(device="cpu", batch_size=8).fit(X[:150], y[:150]),
            FAASTClassifier(batch_size=64).fit(X[150:], y[150:]),
        ]
    )
    assert _rel(merged.coef_, FAASTClassifier(device="cpu", batch_size=8).fit(X, y).coef_) < 1e-10


def test_empty_list():
    with pytest.raises(ValueError, match="at least one"):
        merge_models([])


def test_merges_tensor_statistics_with_an_unpickled_copy():
    # A model fitted here keeps torch statistics; one that was pickled (a Dask worker's, a
    # file's) holds NumPy arrays: they merge into the model of one fit.
    import pickle

    pytest.importorskip("torch")
    X, y = _data(np.random.default_rng(4))
    here = FAASTClassifier(solver="torch").fit(X[:150], y[:150])
    shipped = pickle.loads(pickle.dumps(FAASTClassifier(solver="torch").fit(X[150:], y[150:])))
    merged = merge_models([here, shipped])
    whole = FAASTClassifier(solver="torch").fit(X, y)
    assert _rel(merged.coef_, whole.coef_) < 1e-8


def test_parameters_equal_in_value_merge():
    X, y = _data(np.random.default_rng(5))
    a = FAASTClassifier(alpha=1, class_weight={0: 3}).fit(X[:150], y[:150])
    b = FAASTClassifier(alpha=np.float64(1.0), class_weight={0: 3.0}).fit(X[150:], y[150:])
    whole = FAASTClassifier(alpha=1.0, class_weight={0: 3.0}).fit(X, y)
    assert _rel(merge_models([a, b]).coef_, whole.coef_) < 1e-8
    with pytest.raises(ValueError, match="different parameters"):
        merge_models([a, FAASTClassifier(alpha=2.0, class_weight={0: 3}).fit(X, y)])
