"""``ParamsMixin``: what ``features.FeatureExtractor`` still calls, until its rewrite lands.

The memoised checks that lived here are gone (scikit-learn's ``_validate_params`` /
``_fit_context`` instead): this is scikit-learn's own check, as ``_fit_context`` runs it.
Delete this module once ``features/`` no longer imports it.
"""

from __future__ import annotations

from sklearn import get_config


class ParamsMixin:
    def _check_params(self) -> None:
        if not get_config()["skip_parameter_validation"]:
            self._validate_params()
