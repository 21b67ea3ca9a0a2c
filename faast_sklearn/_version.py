"""The package version, in one place (read by ``__init__``, pickles and saved files)."""

import warnings

from .exceptions import InconsistentVersionWarning

__version__ = "0.1.0.dev0"

# Key of the version in an estimator's pickled state.
PICKLE_KEY = "_faast_sklearn_version"


def pop_pickled_version(state: dict, estimator_name: str) -> dict:
    """``state`` less its version, warning if another faast_sklearn version pickled it."""
    state = dict(state)
    version = state.pop(PICKLE_KEY, "unknown")
    if version != __version__:
        warnings.warn(
            InconsistentVersionWarning(
                estimator_name=estimator_name,
                current_version=__version__,
                original_version=version,
            ),
            stacklevel=3,
        )
    return state
