"""scikit-learn conformance of both estimators in feature mode (no backbone)."""

from sklearn.utils.estimator_checks import (
    check_sample_weight_equivalence_on_dense_data,
    parametrize_with_checks,
)

from faast_sklearn import FAASTClassifier, FAASTRegressor

# Expected failures, each with its reason.
_WEIGHTS = (
    "alpha='auto' counts rows, not total weight, so that scaling every sample_weight never "
    "moves it (issue 14); k copies of a row are then k rows, not one row of weight k. Both "
    "cannot hold at once. A fixed alpha keeps Ridge's meaning: the regressor then passes "
    "this check (test_fixed_alpha_weight_equals_repetition); the classifier's predict_proba "
    "still uses GCV's error estimate, whose sample size counts rows."
)
EXPECTED_FAILED_CHECKS: dict = {
    name: {"check_sample_weight_equivalence_on_dense_data": _WEIGHTS}
    for name in ("FAASTClassifier", "FAASTRegressor")
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(
    [FAASTClassifier(), FAASTRegressor()], expected_failed_checks=_expected_failed_checks
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_fixed_alpha_weight_equals_repetition():
    check_sample_weight_equivalence_on_dense_data("FAASTRegressor", FAASTRegressor(alpha=1.0))
