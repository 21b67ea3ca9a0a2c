"""Feature extraction: a frozen backbone as a cached, batched scikit-learn transformer."""

from ._cache import clear_feature_cache, extraction_stats, reset_extraction_stats
from ._extractor import FeatureExtractor, as_extractor
from ._rows import LazyRows

__all__ = [
    "FeatureExtractor",
    "LazyRows",
    "as_extractor",
    "clear_feature_cache",
    "extraction_stats",
    "reset_extraction_stats",
]
