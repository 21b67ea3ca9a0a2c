"""faast_sklearn: forward-only adaptation of pretrained models with closed-form fast weights."""

from ._classifier import FAASTClassifier
from ._config import config_context, get_config, set_config
from ._merge import merge_models
from ._persistence import load, save
from ._regressor import FAASTRegressor
from ._torch_dist import distributed_fit, shard
from ._version import __version__
from .backbones import BackboneSpec, list_backbones, register_backbone
from .features import FeatureExtractor, LazyRows
from .utils._cache import cache_info, clear_cache

__all__ = [
    "BackboneSpec",
    "FAASTClassifier",
    "FAASTRegressor",
    "FeatureExtractor",
    "LazyRows",
    "__version__",
    "cache_info",
    "clear_cache",
    "config_context",
    "distributed_fit",
    "get_config",
    "list_backbones",
    "load",
    "merge_models",
    "register_backbone",
    "save",
    "set_config",
    "shard",
]
