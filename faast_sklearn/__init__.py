"""faast_sklearn: forward-only adaptation of pretrained models with closed-form fast weights."""

from ._classifier import FAASTClassifier
from ._regressor import FAASTRegressor

__version__ = "0.1.0.dev0"

__all__ = ["FAASTClassifier", "FAASTRegressor", "__version__"]
