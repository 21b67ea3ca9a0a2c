"""scikit-learn conformance of both estimators in feature mode (no backbone)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from faast_sklearn import FAASTClassifier, FAASTRegressor

# Expected failures, each with its reason (none so far).
EXPECTED_FAILED_CHECKS: dict = {}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(
    [FAASTClassifier(), FAASTRegressor()], expected_failed_checks=_expected_failed_checks
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
