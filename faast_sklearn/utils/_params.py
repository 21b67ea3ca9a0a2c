"""Parameter bookkeeping shared by the estimators, at a fraction of its usual cost.

scikit-learn reads ``__init__``'s signature on every ``get_params`` and rebuilds every
constraint on every check; neither can change for a class and given scalar values, so both
are computed once (a one-shot fit: 0.32 instead of 0.51 ms, min of 101 on a 2-core CPU,
benchmarks/results/removed-cpu-2core.json).
"""

from __future__ import annotations

import functools

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import validate_parameter_constraints


@functools.cache
def _init_param_names(cls) -> tuple[str, ...]:
    return tuple(BaseEstimator._get_param_names.__func__(cls))


@functools.cache
def _checked_names(cls) -> tuple[str, ...]:
    """Parameters with a constraint other than "no_validation"."""
    constraints = cls._parameter_constraints
    return tuple(
        k for k in _init_param_names(cls) if k in constraints and constraints[k] != "no_validation"
    )


# Values remembered by the check: immutable scalars only. An object (a prior estimator, a
# callable, a joblib.Memory) would be kept alive by the memo, so its checks are not remembered.
_SCALARS = (bool, int, float, str, np.generic, type(None))


@functools.lru_cache(maxsize=256)
def _validate_params_once(cls, params: tuple) -> None:
    """scikit-learn's parameter check, remembered for ``(name, type, value)`` triples (the
    type keeps 1 and True apart); a failed check raises, and is not remembered."""
    validate_parameter_constraints(
        {k: cls._parameter_constraints[k] for k, _, _ in params},
        {k: v for k, _, v in params},
        caller_name=cls.__name__,
    )


class ParamsMixin:
    """``get_params`` names read once per class, and :meth:`_check_params`.

    Goes left of :class:`~sklearn.base.BaseEstimator` in the bases.
    """

    @classmethod
    def _get_param_names(cls):
        return list(_init_param_names(cls))

    def _check_params(self) -> None:
        """``_validate_params``, skipped under scikit-learn's
        ``skip_parameter_validation=True`` and remembered when every checked parameter is a
        scalar."""
        if get_config()["skip_parameter_validation"]:
            return
        values = [(k, getattr(self, k)) for k in _checked_names(type(self))]
        params = tuple((k, type(v), v) for k, v in values)
        if all(isinstance(v, _SCALARS) for _, v in values):
            _validate_params_once(type(self), params)
        else:  # an array alpha, a prior estimator...
            self._validate_params()
