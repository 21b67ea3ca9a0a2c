"""faast_sklearn: forward-only adaptation of pretrained models with closed-form fast weights."""

from ._classifier import FAASTClassifier
from ._regressor import FAASTRegressor
from .backbones import BackboneSpec, list_backbones, register_backbone
from .features import FeatureExtractor, LazyRows

__version__ = "0.1.0.dev0"

__all__ = [
    "BackboneSpec",
    "FAASTClassifier",
    "FAASTRegressor",
    "FeatureExtractor",
    "LazyRows",
    "__version__",
    "list_backbones",
    "register_backbone",
]
