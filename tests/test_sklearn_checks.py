"""scikit-learn conformance of both estimators in feature mode (no backbone)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from faast_sklearn import FAASTClassifier, FAASTRegressor

# Expected failures, each with its reason.
EXPECTED_FAILED_CHECKS: dict = {
    "FAASTClassifier": {
        # predict_proba's temperature is fitted on leave-one-out predictions, which treat an
        # integer weight exactly as repetitions (one unit of weight out), but in the check's
        # near-interpolating fit (alpha ~ 1e-8, 15 rows, 30 features) each is a ratio of two
        # quantities of order alpha, and weights and repetitions agree to 1e-6, not 1e-7.
        "check_sample_weight_equivalence_on_dense_data": (
            "leave-one-out temperature agrees to 1e-6 (round-off of 1 - h) near interpolation"
        ),
    }
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(
    [FAASTClassifier(), FAASTRegressor()], expected_failed_checks=_expected_failed_checks
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
