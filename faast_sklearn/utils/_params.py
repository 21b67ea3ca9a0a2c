"""Parameter bookkeeping shared by the package's estimators, at a fraction of its usual cost.

scikit-learn reads ``__init__``'s signature on every ``get_params`` (each clone, each
parameter check) and rebuilds every constraint on every check: together a third of a one-shot
fit, and a share of each (fold, alpha) pair of a grid search. Neither result can change for a
given class and given parameter values, so both are computed once. Measured worth: without
it a one-shot fit takes 0.51 instead of 0.32 ms (min of 101 on a 2-core CPU,
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
    """scikit-learn's parameter check, remembered for scalar parameter values.

    ``params`` holds ``(name, type, value)`` triples of the checked parameters: the type
    keeps 1 and True (equal and of one hash, but not both booleans) apart. A failed check
    raises, and is not remembered.
    """
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
        """``_validate_params``, skipped under ``set_config(skip_parameter_validation=True)``
        (as scikit-learn's own estimators do through their fit decorator) and remembered when
        every checked parameter is a scalar (parameters marked "no_validation", such as a
        backbone object, take no part in the check)."""
        if get_config()["skip_parameter_validation"]:
            return
        values = [(k, getattr(self, k)) for k in _checked_names(type(self))]
        params = tuple((k, type(v), v) for k, v in values)
        if all(isinstance(v, _SCALARS) for _, v in values):
            _validate_params_once(type(self), params)
        else:  # an array alpha, a prior estimator...
            self._validate_params()
