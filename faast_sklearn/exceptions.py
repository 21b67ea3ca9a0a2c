"""Warnings and errors of faast_sklearn."""

from __future__ import annotations

from sklearn.exceptions import InconsistentVersionWarning as _SklearnVersionWarning

__all__ = ["InconsistentVersionWarning"]


class InconsistentVersionWarning(_SklearnVersionWarning):
    """An estimator was unpickled with a faast_sklearn version other than the one that
    pickled it.

    A subclass of scikit-learn's :class:`~sklearn.exceptions.InconsistentVersionWarning`, so
    one filter silences (or turns into errors) both.

    Parameters
    ----------
    estimator_name : str
        Class name of the estimator.
    current_version : str
        The faast_sklearn version now installed.
    original_version : str
        The faast_sklearn version that pickled the estimator (``"unknown"`` for pickles
        written before versions were recorded).

    Examples
    --------
    >>> import warnings
    >>> from faast_sklearn.exceptions import InconsistentVersionWarning
    >>> warnings.simplefilter("error", InconsistentVersionWarning)  # refuse such pickles
    >>> warnings.resetwarnings()
    """

    def __init__(self, *, estimator_name, current_version, original_version):
        super().__init__(
            estimator_name=estimator_name,
            current_sklearn_version=current_version,
            original_sklearn_version=original_version,
        )
        self.current_version = current_version
        self.original_version = original_version

    def __str__(self):
        return (
            f"Trying to unpickle estimator {self.estimator_name} from faast_sklearn version "
            f"{self.original_version} when using version {self.current_version}. This might "
            "lead to breaking code or invalid results. Use at your own risk. Refit the model, "
            "or move it between versions with faast_sklearn.save and faast_sklearn.load, "
            "which check the file's version."
        )
