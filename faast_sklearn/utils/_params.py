"""Parameter bookkeeping shared by the package's estimators, at a fraction of its usual cost.

scikit-learn reads ``__init__``'s signature on every ``get_params`` (each clone, each
parameter check) and rebuilds every constraint on every check: together a third of a one-shot
fit, and a share of each (fold, alpha) pair of a grid search. Neither result can change for a
given class and given parameter values, so both are computed once.
"""

from __future__ import annotations

import functools

from sklearn import get_config
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import validate_parameter_constraints


@functools.cache
def _init_param_names(cls) -> tuple[str, ...]:
    return tuple(BaseEstimator._get_param_names.__func__(cls))


@functools.lru_cache(maxsize=256)
def _validate_params_once(cls, params: tuple) -> None:
    """scikit-learn's parameter check, remembered for hashable parameter values.

    ``params`` holds ``(name, type, value)`` triples: the type keeps 1 and True (equal and of
    one hash, but not both booleans) apart. A failed check raises, and is not remembered.
    """
    validate_parameter_constraints(
        cls._parameter_constraints, {k: v for k, _, v in params}, caller_name=cls.__name__
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
        (as scikit-learn's own estimators do through their fit decorator) and remembered for
        hashable parameter values."""
        if get_config()["skip_parameter_validation"]:
            return
        params = tuple((k, type(v), v) for k, v in self.get_params(deep=False).items())
        try:
            hash(params)
        except TypeError:  # an array alpha, say
            self._validate_params()
            return
        _validate_params_once(type(self), params)
