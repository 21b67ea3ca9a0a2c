"""FeatureExtractor(compile=...): torch.compile'd backbones, on the CPU with a tiny model."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from sklearn.base import clone  # noqa: E402

from faast_sklearn import FAASTClassifier  # noqa: E402
from faast_sklearn.features import FeatureExtractor  # noqa: E402


@pytest.mark.slow
def test_compiled_backbone_matches_eager_and_is_reused():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 255, (10, 32, 32, 3), dtype=np.uint8)
    y = np.arange(10) % 2
    eager = FeatureExtractor("test_tiny", device="cpu", batch_size=4, cache=False)
    compiled = FeatureExtractor("test_tiny", device="cpu", batch_size=4, cache=False, compile=True)
    # 10 rows in batches of 4: the last batch is padded to 4, one shape throughout.
    np.testing.assert_allclose(compiled.transform(X), eager.transform(X), rtol=1e-4, atol=1e-5)
    assert compiled.compile_warmup_s_ > 0
    first = compiled.compile_warmup_s_
    # An estimator takes it as its backbone; a clone reuses the compiled network (the warm-up
    # is not paid again: the reported figure is the first one's).
    clf = FAASTClassifier(backbone=clone(compiled)).fit(X[:7], y[:7])
    assert clf.backbone.compile_warmup_s_ == first
    assert clf.predict(X).shape == (10,)


def test_compile_mode_is_validated():
    with pytest.raises(ValueError, match="compile"):
        FeatureExtractor("test_tiny", device="cpu", compile="fastest").transform(
            np.zeros((1, 8, 8, 3), np.uint8)
        )
