"""Feature extraction: a frozen backbone as a cached, batched scikit-learn transformer."""

from ._extractor import FeatureExtractor, as_extractor
from ._rows import LazyRows
from ._store import extraction_stats, reset_extraction_stats

__all__ = [
    "FeatureExtractor",
    "LazyRows",
    "as_extractor",
    "extraction_stats",
    "reset_extraction_stats",
]
